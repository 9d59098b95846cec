"""Fixtures for the vLLM plugin tests: one tiny random Llama and ONE CPU engine per session.

The engine settings follow what was measured fast on 2-core machines: an eager engine with one
OpenMP thread (threads floating over both cores were about 20x slower). The environment is set
before torch or vLLM load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from pathlib import Path  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import pytest  # noqa: E402

from sage_core import LocalEnvironment  # noqa: E402
from sage_llm_vllm.engine import cuda_available  # noqa: E402
from sage_llm_vllm.models import build_random_llama  # noqa: E402

CPU_ENGINE = {"enforce_eager": True, "dtype": "float32", "max_model_len": 512}
"""Options of the session's CPU engine (float32: vLLM's CPU kernels and exact greedy repeats)."""


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Llama (hidden 64, 2 heads of 32, 2 layers) and its word-level tokenizer, built here."""
    return build_random_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def llm_env(tiny_llama: Path) -> Iterator[LocalEnvironment]:
    """An environment whose ``llm`` service asks for vLLM on cuda and falls back to vLLM on cpu.

    On a GPU-less machine the primary is absent, so the fallback, the session's one CPU engine,
    serves every call: the tests exercise the fallback chain and the engine at once.
    """
    if cuda_available():
        pytest.skip("a GPU is present: the CPU engine tests run on GPU-less machines (use -m gpu here)")
    env = LocalEnvironment("vllm-tests")
    env.register_service(
        "llm",
        kind="llm",
        backend="vllm",
        device="cuda",
        options={"model": str(tiny_llama), **CPU_ENGINE},
        fallback=[{"backend": "vllm", "device": "cpu"}],
        timeout_s=120,
    )
    env.services.start()
    yield env
    env.close()


@pytest.fixture(scope="session")
def llm(llm_env: LocalEnvironment) -> Any:
    """The blocking proxy of the session's ``llm`` service."""
    return llm_env.services.sync["llm"]


@pytest.fixture(scope="session")
def llm_async(llm_env: LocalEnvironment) -> Any:
    """The future-returning proxy of the session's ``llm`` service."""
    return llm_env.services.async_["llm"]
