"""``search`` results: columnar, yet the same hits as before, and unaffected by later writes."""

from __future__ import annotations

import pickle

import numpy as np

from sage_core import Hit
from sage_core.plugin import HitBatch, Hits


def expected_hits(store, queries: np.ndarray, k: int, **kw) -> list[list[Hit]]:
    """What ``search`` built before results became columnar: one ``Hit`` per result, made eagerly."""
    arrays = store.search_arrays(queries, top_k=k, **kw)
    out = []
    for row in arrays:
        ids = [item for item in row["id"] if item is not None]
        metadata = [entry["metadata"] for entry in store.get(ids)]
        out.append([Hit(item, float(score), meta) for item, score, meta in zip(ids, row["score"].tolist(), metadata)])
    return out


def fill(store, data: np.ndarray, first: int = 0) -> None:
    numbers = range(first, first + len(data))
    store.add(data, ids=[f"d{i}" for i in numbers], metadata=[{"i": i, "even": i % 2 == 0} for i in numbers])


def test_batch_and_single_results_equal_eagerly_built_hits(make_vdb, data):
    store = make_vdb(16)
    fill(store, data)
    batch = store.search(data[:20], top_k=5)
    assert isinstance(batch, HitBatch) and batch == expected_hits(store, data[:20], 5)
    single = store.search(data[3], top_k=5)
    assert isinstance(single, Hits) and single == expected_hits(store, data[3:4], 5)[0]
    assert single.ids == [h.id for h in single] and single.scores == [h.score for h in single]


def test_short_rows_end_where_the_matches_end(make_vdb, data):
    store = make_vdb(16, filter_exact_max=1)
    fill(store, data[:30])
    store.delete(["d0", "d2"])
    rows = store.search(data[:4], top_k=20, filter={"even": True})
    assert [len(row) for row in rows] == [13, 13, 13, 13]
    assert rows == expected_hits(store, data[:4], 20, filter={"even": True})
    assert all(h.metadata["even"] and h.id not in ("d0", "d2") for row in rows for h in row)


def test_results_keep_what_they_found_after_writes_and_compaction(make_vdb, data):
    store = make_vdb(16, rebuild_ratio=0.01)
    fill(store, data[:100])
    before = store.search(data[:3], top_k=4)
    unread = store.search(data[:3], top_k=4)  # its Hit objects are made only after the writes below
    store.upsert(data[:2], ids=["d0", "d1"], metadata=[{"changed": True}] * 2)
    store.delete([f"d{i}" for i in range(2, 10)])  # passes rebuild_ratio: the table compacts
    fill(store, data[100:300], first=100)  # appends grow the columns
    assert [h.metadata for h in unread[0]] == [h.metadata for h in before[0]]
    assert unread == before and before[0][0] == Hit("d0", before[0][0].score, {"i": 0, "even": True})


def test_each_result_owns_its_metadata_copy(make_vdb, data):
    store = make_vdb(16)
    fill(store, data[:50])
    hits = store.search(data[5], top_k=3)
    assert hits[0] is hits[0]
    hits[0].metadata["i"] = -1
    assert hits[0].metadata["i"] == -1
    assert store.get(["d5"])[0]["metadata"]["i"] == 5
    assert store.search(data[5], top_k=3)[0].metadata["i"] == 5


def test_a_pickled_row_carries_only_its_hits(make_vdb, data):
    store = make_vdb(16)
    fill(store, data)
    batch = store.search(data[:64], top_k=10)
    row = pickle.loads(pickle.dumps(batch[7]))
    assert row == batch[7] and len(pickle.dumps(batch[7])) < len(pickle.dumps(batch)) / 10
    assert pickle.loads(pickle.dumps(batch[2:5])) == batch[2:5] == [batch[2], batch[3], batch[4]]


def test_empty_store_and_empty_batch_give_empty_results(make_vdb, data):
    store = make_vdb(16)
    assert store.search(data[0], top_k=3) == [] and store.search(data[:2], top_k=3) == [[], []]
    fill(store, data[:10])
    assert store.search(data[:0], top_k=3) == []
