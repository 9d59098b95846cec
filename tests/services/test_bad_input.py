"""Bad input through a running service: the caller gets a clear error, everyone else an answer."""

from __future__ import annotations

from concurrent.futures import wait

import numpy as np
import pytest

from sage_core.errors import ServiceError
from sage_core.services.registry import ServiceRegistry
from sage_core.testing import unit_vectors


@pytest.fixture
def vdb(manager: ServiceRegistry) -> ServiceRegistry:
    manager.register("vdb", kind="vdb", backend="numpy", options={"dim": 8}, batch={"max_wait_ms": 20})
    manager.sync["vdb"].add(unit_vectors(20, 8), ids=[f"v{i}" for i in range(20)])
    return manager


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.ones(5, dtype=np.float32), "dimension 5"),
        (np.array([np.nan] * 8, dtype=np.float32), "NaN"),
        (np.array(["a"] * 8), "numeric"),
        (np.ones((2, 2, 8), dtype=np.float32), "1-D.*2-D"),
    ],
)
def test_bad_query_in_a_batch_fails_only_its_caller(vdb: ServiceRegistry, query: np.ndarray, message: str) -> None:
    good = unit_vectors(20, 8)
    futures = [vdb.async_["vdb"].search(query=good[i], top_k=1) for i in range(10)]
    bad = vdb.async_["vdb"].search(query=query, top_k=1)
    futures += [vdb.async_["vdb"].search(query=good[i], top_k=1) for i in range(10, 20)]
    wait(futures + [bad], timeout=10)
    assert [f.result()[0].id for f in futures] == [f"v{i}" for i in range(20)]
    with pytest.raises(ServiceError, match=message) as info:
        bad.result()
    assert isinstance(info.value.cause, ValueError)


def test_empty_batch_and_oversized_top_k_give_correct_results(vdb: ServiceRegistry) -> None:
    assert vdb.sync["vdb"].search(query=np.zeros((0, 8), dtype=np.float32), top_k=3) == []
    assert len(vdb.sync["vdb"].search(query=unit_vectors(1, 8)[0], top_k=500)) == 20


def test_float64_and_list_queries_are_converted(vdb: ServiceRegistry) -> None:
    target = unit_vectors(20, 8)[4]
    assert vdb.sync["vdb"].search(query=target.astype(np.float64), top_k=1)[0].id == "v4"
    assert vdb.sync["vdb"].search(query=target.tolist(), top_k=1)[0].id == "v4"


def test_bad_writes_leave_the_store_unchanged(vdb: ServiceRegistry) -> None:
    with pytest.raises(ServiceError, match="already stored"):
        vdb.sync["vdb"].add(unit_vectors(1, 8), ids=["v3"])
    with pytest.raises(ServiceError, match="2 ids for 1 vectors"):
        vdb.sync["vdb"].add(unit_vectors(1, 8), ids=["x", "y"])
    assert vdb.sync["vdb"].count() == 20
