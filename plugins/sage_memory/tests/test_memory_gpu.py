"""The memory on a GPU: ``device="cuda"`` reaches the vector store (FAISS), the other stores stay on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sage_core import ConfigError
from sage_core.plugin import BackendUnavailable
from sage_memory import MemoryService


@pytest.mark.gpu
def test_memory_on_cuda_keeps_its_vectors_on_the_gpu_and_persists(tmp_path: Path, unit) -> None:
    config = {"device": "cuda", "vector": {"backend": "faiss"}, "path": tmp_path}
    try:
        memory = MemoryService(**config)
    except (BackendUnavailable, ConfigError) as exc:
        pytest.skip(f"no GPU vector store here: {exc}")
    with memory:
        for i in range(64):
            memory.store_memory(f"memory {i}", vector=unit(i % 15, noise=0.05, seed=i))
        anchor = memory.store_memory("anchor", vector=unit(0))
        linked = memory.store_memory("linked", vector=unit(15))
        memory.link(anchor, linked)
        found = [r["id"] for r in memory.retrieve_memories(vector=unit(0), top_k=3, hops=1)]
        assert memory.stores.vector.device.startswith("cuda")
        assert found[0] == anchor and linked in found

    with MemoryService(**config) as reopened:
        assert reopened.count() == 66
        assert reopened.stores.vector.device.startswith("cuda")
        assert reopened.retrieve_memories(vector=unit(0), top_k=1)[0]["id"] == anchor
