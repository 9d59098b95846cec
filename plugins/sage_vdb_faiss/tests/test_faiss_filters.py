"""Metadata filters: pre-filter through an ID selector where the index takes one, post-filter
otherwise, and an exact scan of the matches when they are few; every path returns top_k."""

from __future__ import annotations

import numpy as np
import pytest

INDEXES = {
    "flat": {"index": "Flat"},
    "hnsw": {"index": "HNSW16", "ef_search": 32},
    "ivf": {"index": "IVF8,Flat", "train_min": 200, "nprobe": 2},
    "sq8_postfilter": {"index": "SQ8", "train_min": 100},
}


def _filled(make_vdb, data, **options):
    store = make_vdb(16, metric="ip", filter_exact_max=1, **options)
    ids = [f"d{i}" for i in range(len(data))]
    store.add(data, ids=ids, metadata=[{"part": i % 4, "even": i % 2 == 0} for i in range(len(data))])
    return store


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_filtered_search_returns_top_k_hits_all_matching(make_vdb, data, name):
    store = _filled(make_vdb, data, **INDEXES[name])
    results = store.search(data[:20], top_k=10, filter={"part": 3})
    assert all(len(hits) == 10 for hits in results)
    assert all(h.metadata["part"] == 3 for hits in results for h in hits)


@pytest.mark.parametrize("name", ["flat", "ivf", "sq8_postfilter"])
def test_filtered_search_on_exactly_probed_index_matches_brute_force(make_vdb, data, brute_force, name):
    options = dict(INDEXES[name])
    if name == "ivf":
        options["nprobe"] = 8  # every list: exact
    store = _filled(make_vdb, data, **options)
    matching = np.flatnonzero(np.arange(len(data)) % 4 == 1)
    query = data[5]
    expected = [f"d{i}" for i in brute_force(data, query, 7, matching)]
    got = [h.id for h in store.search(query, top_k=7, filter={"part": 1})]
    if name == "sq8_postfilter":  # 8-bit codes: the same neighbours, order may swap near-ties
        assert len(set(got) & set(expected)) >= 6
    else:
        assert got == expected


def test_prefilter_answers_in_one_faiss_call(make_vdb, data):
    store = _filled(make_vdb, data, index="Flat")
    before = store.stats()["faiss_calls"]
    store.search(data[:32], top_k=5, filter={"part": 2})
    assert store.stats()["faiss_calls"] == before + 1


def test_selective_filter_on_hnsw_still_returns_every_match(make_vdb, data):
    store = _filled(make_vdb, data, index="HNSW16")
    store.upsert(data[:3], ids=["d0", "d1", "d2"], metadata=[{"rare": True}] * 3)
    hits = store.search(data[100], top_k=10, filter={"rare": True})
    assert sorted(h.id for h in hits) == ["d0", "d1", "d2"]


def test_filter_matching_nothing_returns_empty_lists(make_vdb, data):
    store = _filled(make_vdb, data, index="Flat")
    assert store.search(data[0], top_k=5, filter={"part": 99}) == []
    assert store.search(data[:2], top_k=5, filter={"missing_key": 1}) == [[], []]


def test_filter_with_several_keys_and_one_of_lists(make_vdb, data):
    store = _filled(make_vdb, data, index="Flat")
    hits = store.search(data[0], top_k=600, filter={"part": [0, 1], "even": True})
    assert hits and all(h.metadata["part"] == 0 and h.metadata["even"] for h in hits)
    assert len(hits) == 150


def test_filter_sees_upserted_metadata_and_not_deleted_rows(make_vdb, data):
    store = _filled(make_vdb, data, index="Flat")
    store.upsert(data[4:5], ids=["d4"], metadata=[{"part": 7}])
    store.delete(["d8"])
    assert [h.id for h in store.search(data[4], top_k=5, filter={"part": 7})] == ["d4"]
    part0 = {h.id for h in store.search(data[0], top_k=600, filter={"part": 0})}
    assert "d4" not in part0 and "d8" not in part0 and "d12" in part0


def test_filter_matches_list_valued_metadata_by_equality(make_vdb, data):
    store = make_vdb(16)
    store.add(data[:3], ids=["a", "b", "c"], metadata=[{"tags": ["x", "y"]}, {"tags": ["x"]}, {}])
    assert [h.id for h in store.search(data[0], top_k=3, filter={"tags": [["x", "y"]]})] == ["a"]


def test_bad_filter_is_a_value_error(make_vdb, data):
    store = _filled(make_vdb, data, index="Flat")
    with pytest.raises(ValueError, match="filter must be a dict"):
        store.search(data[0], top_k=3, filter="part=1")
