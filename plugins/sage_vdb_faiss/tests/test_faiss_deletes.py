"""Deletes and upserts on every index type, HNSW included (which FAISS cannot remove from):
dead rows never show up, and the store compacts and rebuilds once they pass rebuild_ratio."""

from __future__ import annotations

import numpy as np
import pytest

INDEXES = {
    "flat": {"index": "Flat"},
    "hnsw": {"index": "HNSW16", "ef_search": 64},
    "ivf": {"index": "IVF8,Flat", "train_min": 200, "nprobe": 8},
}


@pytest.fixture(params=sorted(INDEXES))
def options(request):
    return dict(INDEXES[request.param], metric="ip")


def test_deleted_ids_never_appear_in_results(make_vdb, data, options):
    store = make_vdb(16, rebuild_ratio=0.9, **options)
    store.add(data, ids=[f"d{i}" for i in range(600)])
    gone = [f"d{i}" for i in range(0, 600, 5)]
    assert store.delete(gone) == 120
    assert store.stats()["dead_rows"] == 120  # tombstones, not yet compacted
    results = store.search(data[:50], top_k=20)
    assert all(len(hits) == 20 for hits in results)
    assert not {h.id for hits in results for h in hits} & set(gone)
    assert store.search(data[5], top_k=1)[0].id != "d5"


def test_upsert_moves_id_to_new_vector(make_vdb, data, options):
    store = make_vdb(16, **options)
    store.add(data, ids=[f"d{i}" for i in range(600)])
    store.upsert(data[10:11], ids=["d0"], metadata=[{"moved": True}])
    assert store.count() == 600
    top = store.search(data[10], top_k=2)
    assert {h.id for h in top} == {"d0", "d10"}
    assert store.search(data[0], top_k=1)[0].id != "d0"
    assert store.get(["d0"])[0]["metadata"] == {"moved": True}


def test_compaction_drops_dead_rows_and_keeps_answers(make_vdb, data, options):
    store = make_vdb(16, rebuild_ratio=0.25, **options)
    store.add(data, ids=[f"d{i}" for i in range(600)])
    store.delete([f"d{i}" for i in range(100)])
    assert store.stats()["dead_rows"] == 100
    store.delete([f"d{i}" for i in range(100, 210)])  # 210 of 600 dead: past 25%
    stats = store.stats()
    assert stats["dead_rows"] == 0 and stats["rows"] == 390 == store.count()
    results = store.search(data[300:320], top_k=1)
    assert [hits[0].id for hits in results] == [f"d{i}" for i in range(300, 320)]
    np.testing.assert_allclose(store.get(["d450"])[0]["vector"], data[450], atol=1e-6)


def test_delete_returns_count_of_existing_ids_once_each(make_vdb, data):
    store = make_vdb(16)
    store.add(data[:3], ids=["a", "b", "c"])
    assert store.delete(["a", "a", "zzz"]) == 1
    assert store.delete([]) == 0
    assert store.count() == 2


def test_deleting_everything_leaves_a_working_empty_store(make_vdb, data, options):
    store = make_vdb(16, **options)
    ids = store.add(data)
    store.delete(ids)
    assert store.count() == 0
    assert store.search(data[0], top_k=3) == []
    store.add(data[:2], ids=["x", "y"])
    assert store.search(data[1], top_k=1)[0].id == "y"
