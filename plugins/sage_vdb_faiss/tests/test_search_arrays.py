"""``search_arrays``: the same answers as ``search``, as one structured array, also through batching."""

from __future__ import annotations

from concurrent.futures import wait

import numpy as np
import pytest
from sage_vdb_faiss import VDBService

from sage_core.services.registry import ServiceRegistry


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((300, 16)).astype(np.float32)


@pytest.fixture
def store(vectors: np.ndarray) -> VDBService:
    service = VDBService(16, index="Flat", metric="cosine")
    service.add(vectors, ids=[f"v{i}" for i in range(len(vectors))], metadata=[{"even": i % 2 == 0} for i in range(len(vectors))])
    return service


def test_arrays_hold_the_ids_and_scores_of_search(store: VDBService, vectors: np.ndarray) -> None:
    arrays = store.search_arrays(vectors[:5], top_k=7)
    hits = store.search(vectors[:5], top_k=7)
    assert arrays.shape == (5, 7)
    assert [list(row) for row in arrays["id"]] == [[h.id for h in row] for row in hits]
    np.testing.assert_allclose(arrays["score"], [[h.score for h in row] for row in hits], atol=1e-6)


def test_short_answers_are_padded_and_filters_apply(store: VDBService, vectors: np.ndarray) -> None:
    padded = store.search_arrays(vectors[0], top_k=400)
    assert padded.shape == (400,) and padded["id"][299] is not None and padded["id"][300] is None
    assert padded["score"][300] == -np.inf
    filtered = store.search_arrays(vectors[1], top_k=5, filter={"even": True})
    assert all(int(i[1:]) % 2 == 0 for i in filtered["id"])


def test_concurrent_callers_get_their_own_rows_through_batching(vectors: np.ndarray) -> None:
    manager = ServiceRegistry(job_name="arrays")
    manager.register("vdb", lambda: VDBService(16, index="Flat"), batch={"max_size": 256, "max_wait_ms": 5})
    try:
        manager.sync["vdb"].add(vectors, ids=[f"v{i}" for i in range(len(vectors))])
        futures = [manager.async_["vdb"].search_arrays(query=vectors[i], top_k=1) for i in range(64)]
        wait(futures)
        assert [f.result()["id"][0] for f in futures] == [f"v{i}" for i in range(64)]
        assert manager.metrics()["vdb"]["batch"]["search_arrays"]["mean_rows"] > 1
    finally:
        manager.close()


def test_searches_in_flight_during_writes_return_only_ids_that_existed(vectors: np.ndarray) -> None:
    manager = ServiceRegistry(job_name="arrays-writes")
    manager.register("vdb", lambda: VDBService(16, index="Flat"), batch={"max_size": 64, "max_wait_ms": 1})
    known = {f"v{i}" for i in range(100)}
    try:
        manager.sync["vdb"].add(vectors[:100], ids=sorted(known))
        searches = [manager.async_["vdb"].search_arrays(query=vectors[i % 300], top_k=5) for i in range(600)]
        for step in range(100, 300, 20):  # upserts and deletes race the searches in flight
            batch = [f"v{i}" for i in range(step, step + 20)]
            manager.sync["vdb"].upsert(vectors[step : step + 20], ids=batch)
            known.update(batch)
            manager.sync["vdb"].delete([f"v{step - 100}"])
        wait(searches)
        returned = {i for f in searches for i in f.result()["id"] if i is not None}
        assert returned and returned <= known
        assert all(np.isfinite(f.result()["score"]).all() for f in searches)
    finally:
        manager.close()


def test_a_search_before_the_first_add_returns_empty_slots() -> None:
    store = VDBService(index="Flat")
    empty = store.search_arrays(np.ones((2, 8), dtype=np.float32), top_k=3)
    assert empty.shape == (2, 3) and all(i is None for i in empty["id"].ravel())
    store.add(np.ones((1, 8), dtype=np.float32), ids=["a"])
    with pytest.raises(ValueError, match="dimension 4"):
        store.search_arrays(np.ones(4, dtype=np.float32))


def test_a_cpu_store_keeps_one_stacked_search_in_flight(vectors: np.ndarray) -> None:
    manager = ServiceRegistry(job_name="arrays-in-flight")
    manager.register("vdb", lambda: VDBService(16, index="Flat", device="cpu"))
    try:
        manager.start()
        [replica] = manager.service("vdb").tiers[0].replicas
        assert not replica.backend.on_gpu
        assert {name: len(q._threads) for name, q in replica._batchers.items()} == {"search": 1, "search_arrays": 1}
    finally:
        manager.close()
