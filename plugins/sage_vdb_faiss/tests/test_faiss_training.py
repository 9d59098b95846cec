"""Untrained indexes (IVF, IVF-PQ) answer exactly from the buffered rows, then train themselves."""

from __future__ import annotations

import pytest

from sage_core import ConfigError
from sage_core.testing import unit_vectors


def test_ivf_answers_exactly_from_buffer_until_train_min(make_vdb, data, brute_force):
    store = make_vdb(16, index="IVF8,Flat", metric="ip", train_min=300, nprobe=1)
    store.add(data[:299], ids=[f"d{i}" for i in range(299)])
    assert store.stats()["trained"] is False
    query = unit_vectors(1, 16, seed=99)[0]
    expected = [f"d{i}" for i in brute_force(data[:299], query, 10)]
    assert [h.id for h in store.search(query, top_k=10)] == expected


def test_ivf_trains_when_threshold_crossed_and_keeps_every_row(make_vdb, data):
    store = make_vdb(16, index="IVF8,Flat", metric="ip", train_min=300, nprobe=8)
    for start in range(0, 600, 50):  # small batches, as a stream would add them
        store.add(data[start : start + 50], ids=[f"d{i}" for i in range(start, start + 50)])
        assert store.stats()["trained"] is (start + 50 >= 300)
    assert store.count() == 600
    results = store.search(data[::37], top_k=1)
    assert [hits[0].id for hits in results] == [f"d{i}" for i in range(0, 600, 37)]


def test_rows_deleted_before_training_stay_deleted_after(make_vdb, data):
    store = make_vdb(16, index="IVF8,Flat", train_min=300, nprobe=8)
    store.add(data[:250], ids=[f"d{i}" for i in range(250)])
    store.delete(["d3", "d4"])
    store.add(data[250:], ids=[f"d{i}" for i in range(250, 600)])
    assert store.stats()["trained"] and store.count() == 598
    found = {h.id for h in store.search(data[3], top_k=600)}
    assert "d3" not in found and "d4" not in found and len(found) == 598


def test_ivf_pq_trains_and_finds_stored_vectors(make_vdb):
    vectors = unit_vectors(3000, 32, seed=3)
    store = make_vdb(32, index="IVF16,PQ8x4", metric="ip", train_min=1000, train_max=2000, nprobe=16)
    store.add(vectors, ids=[f"p{i}" for i in range(3000)])
    assert store.stats()["trained"]
    results = store.search(vectors[:100], top_k=10)
    found = sum(f"p{i}" in {h.id for h in hits} for i, hits in enumerate(results))
    assert found >= 80  # 4-bit PQ codes are lossy; the stored vector is among the top 10


def test_search_with_too_few_candidates_in_probed_lists_is_completed_exactly(make_vdb, data):
    store = make_vdb(16, index="IVF8,Flat", train_min=300, nprobe=1)
    store.add(data, ids=[f"d{i}" for i in range(600)])
    assert all(len(hits) == 400 for hits in store.search(data[:4], top_k=400))


def test_train_min_below_what_the_index_needs_is_a_config_error(make_vdb):
    with pytest.raises(ConfigError, match="train_min=4 is too small"):
        make_vdb(16, index="IVF8,Flat", train_min=4)


def test_default_train_min_follows_faiss_advice_of_39_per_centroid(make_vdb):
    store = make_vdb(16, index="IVF64,Flat")
    store.add(unit_vectors(2495, 16), ids=None)
    assert store.stats()["trained"] is False
    store.add(unit_vectors(1, 16, seed=5))
    assert store.stats()["trained"] is True and store.count() == 2496
