"""Through the service layer: concurrent searches are coalesced into few FAISS calls, bad requests
fail alone, and a config naming a GPU on a machine without one falls back."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sage_vdb_faiss import VDBService, gpu_count

from sage_core.errors import ServiceError
from sage_core.services.registry import ServiceRegistry
from sage_core.testing import unit_vectors


@pytest.fixture
def services():
    manager = ServiceRegistry(job_name="faiss-test")
    yield manager
    manager.close()


@pytest.fixture
def loaded(services, data):
    """A flat FAISS store registered as service ``vdb`` (batches of up to 64, 20 ms wait), holding ``data``."""
    store = VDBService(16, device="cpu")
    services.register("vdb", lambda: store, batch={"max_size": 64, "max_wait_ms": 20})
    services.sync["vdb"].add(data, ids=[f"d{i}" for i in range(len(data))])
    return store


def test_concurrent_searches_are_coalesced_into_few_faiss_calls(services, loaded, data):
    before = loaded.stats()["faiss_calls"]
    barrier = threading.Barrier(64)
    results: dict[int, list] = {}

    def caller(i: int) -> None:
        barrier.wait()
        results[i] = services.async_["vdb"].search(query=data[i], top_k=3).result(timeout=30)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i][0].id for i in range(64)] == [f"d{i}" for i in range(64)]
    calls = loaded.stats()["faiss_calls"] - before
    assert calls <= 16, f"64 concurrent searches took {calls} FAISS calls"
    assert services.metrics()["vdb"]["batch"]["search"]["max_rows"] > 1


def test_one_bad_query_in_a_batch_fails_alone(services, loaded, data):
    futures = [services.async_["vdb"].search(query=data[i], top_k=1) for i in range(20)]
    bad = services.async_["vdb"].search(query=np.ones(7, dtype=np.float32), top_k=1)
    futures += [services.async_["vdb"].search(query=data[i], top_k=1) for i in range(20, 40)]
    assert [f.result(timeout=30)[0].id for f in futures] == [f"d{i}" for i in range(40)]
    with pytest.raises(ServiceError, match="dimension 7"):
        bad.result(timeout=30)
    assert services.sync["vdb"].count() == 600


def test_searches_with_different_filters_are_answered_per_filter(services, data):
    store = VDBService(16, device="cpu")
    services.register("vdb", lambda: store, batch={"max_size": 64, "max_wait_ms": 20})
    services.sync["vdb"].add(data, ids=[f"d{i}" for i in range(600)], metadata=[{"p": i % 2} for i in range(600)])
    futures = [services.async_["vdb"].search(query=data[i], top_k=2, filter={"p": i % 2}) for i in range(30)]
    for i, future in enumerate(futures):
        hits = future.result(timeout=30)
        assert hits[0].id == f"d{i}" and all(h.metadata["p"] == i % 2 for h in hits)


def test_config_by_backend_name_creates_a_faiss_store(services, data):
    services.register("vdb", kind="vdb", backend="faiss", device="cpu", options={"index": "HNSW16", "metric": "ip"})
    services.sync["vdb"].add(data[:100], ids=[f"d{i}" for i in range(100)])
    assert services.sync["vdb"].search(query=data[9], top_k=1)[0].id == "d9"
    assert services.metrics()["vdb"]["served_by"]["faiss"] >= 1


@pytest.mark.skipif(gpu_count() > 0, reason="checks the fallback on a machine without a GPU")
def test_cuda_config_without_gpu_falls_back_to_the_numpy_store(services):
    services.register("vdb", kind="vdb", backend="faiss", device="cuda", options={"dim": 8}, fallback=["numpy"])
    vectors = unit_vectors(5, 8)
    services.sync["vdb"].add(vectors, ids=list("abcde"))
    assert services.sync["vdb"].search(query=vectors[2], top_k=1)[0].id == "c"
    assert services.metrics()["vdb"]["served_by"]["numpy"] >= 1
