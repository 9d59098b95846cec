"""The ``VectorStore`` contract suite from ``sage_core.testing``, on Flat, HNSW and IVF configs (CPU)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from sage_core.testing import VectorStoreContract
from sage_vdb_faiss import VDBService


class TestFlatContract(VectorStoreContract):
    """Exact flat index, dimension given up front."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="Flat", device="cpu")


class TestFlatLearnsDimContract(VectorStoreContract):
    """The seed's form, ``VDBService()``: dimension learnt from the first vectors."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService()


class TestHnswContract(VectorStoreContract):
    """Graph index: deletes become tombstones."""

    exact = False
    min_recall = 0.95

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="HNSW16", metric="ip", device="cpu")


class TestIvfContract(VectorStoreContract):
    """IVF that trains once 20 vectors arrived and probes half of its lists (recall@10 about 0.8)."""

    exact = False
    min_recall = 0.75

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="IVF4,Flat", train_min=20, nprobe=2, device="cpu")


class TestIvfL2Contract(VectorStoreContract):
    """IVF with the l2 metric, probing every list (so exact)."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="IVF4,Flat", metric="l2", train_min=20, nprobe=4, device="cpu")
