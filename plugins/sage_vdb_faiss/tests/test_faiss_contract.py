"""The ``VectorStore`` contract suite from ``sage_core.testing``, on Flat, HNSW and IVF configs (CPU)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from sage_core.testing import VectorStoreContract
from sage_vdb_faiss import VDBService


class _FaissContract(VectorStoreContract):
    """The suite with the FAISS store's known defect marked."""

    @pytest.mark.xfail(
        strict=True,
        reason="metadata copied shallowly, nested lists/dicts shared with the caller: sage_vdb_faiss/inputs.py "
        "as_metadata (dict(item), add/upsert), service.py get (dict(table.metadata[row] or {})), and "
        "sage_core/services/hits.py Hits._list (dict(entry)) for search hits",
    )
    def test_stored_metadata_is_isolated_from_the_callers_objects(self, store: Any) -> None:
        super().test_stored_metadata_is_isolated_from_the_callers_objects(store)


class TestFlatContract(_FaissContract):
    """Exact flat index, dimension given up front."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="Flat", device="cpu")


class TestFlatLearnsDimContract(_FaissContract):
    """The seed's form, ``VDBService()``: dimension learnt from the first vectors."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService()


class TestHnswContract(_FaissContract):
    """Graph index: deletes become tombstones."""

    exact = False
    min_recall = 0.95

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="HNSW16", metric="ip", device="cpu")


class TestIvfContract(_FaissContract):
    """IVF that trains once 20 vectors arrived and probes half of its lists (recall@10 about 0.8)."""

    exact = False
    min_recall = 0.75

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="IVF4,Flat", train_min=20, nprobe=2, device="cpu")


class TestIvfL2Contract(_FaissContract):
    """IVF with the l2 metric, probing every list (so exact)."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="IVF4,Flat", metric="l2", train_min=20, nprobe=4, device="cpu")
