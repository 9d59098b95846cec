"""Device resolution: auto picks a GPU only when the backend supports one and one is present."""

from __future__ import annotations

from typing import Iterator

import pytest

from sage_core.services.devices import gpu_count, resolve_device
from sage_core.errors import BackendUnavailable


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    gpu_count.cache_clear()
    yield
    gpu_count.cache_clear()


def test_auto_is_cpu_without_a_gpu(no_gpu: None) -> None:
    assert resolve_device("auto", ("cpu", "cuda")) == "cpu"


def test_cuda_without_a_gpu_is_unavailable_with_a_hint(no_gpu: None) -> None:
    with pytest.raises(BackendUnavailable, match="no NVIDIA GPU"):
        resolve_device("cuda", ("cpu", "cuda"))


def test_a_device_the_backend_does_not_support_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="supports devices cpu, not 'cuda:1'"):
        resolve_device("cuda:1", ("cpu",))


@pytest.mark.gpu
def test_auto_picks_the_gpu_and_replicas_spread_over_gpus() -> None:
    gpu_count.cache_clear()
    count = gpu_count()
    if count == 0:
        pytest.skip("no NVIDIA GPU visible (nvidia-ml-py found none)")
    assert resolve_device("auto", ("cpu", "cuda")) == "cuda:0"
    assert [resolve_device("cuda", ("cuda",), i) for i in range(count + 1)][-1] == "cuda:0"
    assert resolve_device("auto", ("cpu",)) == "cpu"
