"""Fixtures for the memory plugin's tests: memories on the built-in backends and a consistency check."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pytest

from sage_memory import MemoryService

KEY_PREFIX = "memory:"


class ManualClock:
    """A clock that moves only when the test says (``MemoryService(clock=...)``): distinct timestamps without waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    """A :class:`ManualClock` at a fixed moment."""
    return ManualClock()


@pytest.fixture
def memory(clock: ManualClock) -> Iterator[MemoryService]:
    """A memory with every default, timed by ``clock``, closed after the test."""
    service = MemoryService(clock=clock)
    yield service
    service.close()


@pytest.fixture
def unit() -> Callable[..., np.ndarray]:
    """``unit(i, dim=16, noise=0.0, seed=0)``: the i-th basis vector, optionally perturbed."""

    def make(i: int, dim: int = 16, noise: float = 0.0, seed: int = 0) -> np.ndarray:
        vector = np.zeros(dim, dtype=np.float32)
        vector[i] = 1.0
        if noise:
            vector += np.random.default_rng(seed).normal(0, noise, dim).astype(np.float32)
        return vector / np.linalg.norm(vector)

    return make


def stored_ids(service: MemoryService) -> set[str]:
    """Memory ids the KV store holds."""
    return {key[len(KEY_PREFIX) :] for key in service.stores.kv.keys(KEY_PREFIX)}


@pytest.fixture
def assert_stores_agree() -> Callable[[MemoryService], set[str]]:
    """Check that KV, vector and graph stores hold exactly the same memories; returns their ids."""

    def check(service: MemoryService) -> set[str]:
        ids = stored_ids(service)
        stores = service.stores
        assert stores.vector.count() == len(ids), "vector store and KV store disagree on the number of memories"
        assert stores.graph.count() == len(ids), "graph store and KV store disagree on the number of memories"
        ordered = sorted(ids)
        for memory_id, entry in zip(ordered, stores.vector.get(ordered) if ordered else []):
            assert entry is not None, f"memory {memory_id} is in the KV store but not the vector store"
            record = stores.kv.get(KEY_PREFIX + memory_id)
            assert entry["metadata"]["session_id"] == record["session_id"]
            assert stores.graph.has_node(memory_id), f"memory {memory_id} is in the KV store but not the graph"
        return ids

    return check
