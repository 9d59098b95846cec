"""Fixtures for the FAISS vector store tests: store factories that close what they made."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pytest

from sage_core.testing import unit_vectors
from sage_vdb_faiss import VDBService


@pytest.fixture
def make_vdb() -> Iterator[Callable[..., VDBService]]:
    """``make_vdb(dim, **options)`` builds a CPU store (unless ``device`` is given), closed after the test."""
    made: list[VDBService] = []

    def make(dim: int | None = 16, **options: Any) -> VDBService:
        options.setdefault("device", "cpu")
        store = VDBService(dim, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def data() -> np.ndarray:
    """600 unit vectors of dimension 16 (fixed seed)."""
    return unit_vectors(600, 16, seed=7)


@pytest.fixture
def brute_force() -> Callable[..., list[int]]:
    """``brute_force(vectors, query, k, rows=None)``: row numbers of the exact top-k by inner product."""

    def top_k(vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[int]:
        candidates = np.arange(len(vectors)) if rows is None else np.asarray(rows)
        scores = vectors[candidates] @ query
        return [int(candidates[i]) for i in np.argsort(-scores, kind="stable")[:k]]

    return top_k
