"""The metadata index answers the contract's equality filter exactly as a scan of every row would,
through adds, removes and rebuilds, and the numpy store's filtered search stays exact with it."""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import pytest

from sage_core.plugin import MetadataIndex
from sage_core.builtin.numpy_vdb import NumpyVectorStore
from sage_core.services.metadata_index import ONE_OF_TYPES


def scan(rows: Mapping[int, Mapping[str, Any]], filter: Mapping[str, Any]) -> list[int]:
    """The filter's meaning, spelt out: every key present and equal to (one of) the wanted value(s)."""
    wanted = {k: list(v) if isinstance(v, ONE_OF_TYPES) else [v] for k, v in filter.items()}
    return sorted(
        row for row, meta in rows.items() if all(k in meta and any(meta[k] == o for o in opts) for k, opts in wanted.items())
    )


def random_metadata(rng: random.Random) -> dict[str, Any]:
    """A few fields, some missing, with str, int, bool, None and list values."""
    meta: dict[str, Any] = {}
    if rng.random() < 0.9:
        meta["session"] = f"s{rng.randrange(6)}"
    if rng.random() < 0.7:
        meta["part"] = rng.choice([0, 1, 2, 1.0, True, None])
    if rng.random() < 0.3:
        meta["tags"] = rng.choice([["x"], ["x", "y"], "x"])
    return meta


FILTERS: list[dict[str, Any]] = [
    {"session": "s1"},
    {"session": ["s0", "s3"]},
    {"session": "s2", "part": 1},
    {"part": [0, None]},
    {"part": True},
    {"tags": [["x", "y"]]},
    {"tags": ["x", ["x"]]},
    {"session": "nobody"},
    {"missing": 1},
    {"session": ("s4",), "part": [2, 0], "tags": "x"},
]


@pytest.fixture
def rng() -> random.Random:
    """A seeded generator: the same rows and operations every run."""
    return random.Random(7)


def test_match_equals_a_scan_through_adds_and_removes(rng: random.Random) -> None:
    index, rows = MetadataIndex(), {}
    for step in range(3000):
        row = rng.randrange(400)
        if row in rows and rng.random() < 0.5:
            index.remove(row, rows.pop(row))
        else:
            if row in rows:  # replace: remove the old entry first, as a store does on upsert
                index.remove(row, rows[row])
            rows[row] = random_metadata(rng)
            index.add(row, rows[row])
        if step % 100 == 0:
            for filter in FILTERS:
                assert index.match(filter).tolist() == scan(rows, filter), filter


def test_rebuild_indexes_live_rows_and_skips_dead_ones(rng: random.Random) -> None:
    entries: list[dict[str, Any] | None] = [random_metadata(rng) if i % 5 else None for i in range(200)]
    index = MetadataIndex()
    index.add(999, {"session": "s1"})  # forgotten by the rebuild
    index.rebuild(entries)
    live = {row: meta for row, meta in enumerate(entries) if meta is not None}
    for filter in FILTERS:
        assert index.match(filter).tolist() == scan(live, filter)


def test_values_compare_with_python_equality() -> None:
    index = MetadataIndex()
    index.add(0, {"v": 1})
    index.add(1, {"v": 1.0})
    index.add(2, {"v": True})
    index.add(3, {"v": "1"})
    assert index.match({"v": 1}).tolist() == [0, 1, 2]
    assert index.match({"v": [1, 1.0]}).tolist() == [0, 1, 2]
    assert index.match({"v": "1"}).tolist() == [3]


def test_match_returns_a_sorted_array_the_caller_cannot_corrupt() -> None:
    index = MetadataIndex()
    for row in (9, 3, 7, 1):
        index.add(row, {"k": "a"})
    rows = index.match({"k": "a"})
    assert rows.dtype == np.int64 and rows.tolist() == [1, 3, 7, 9]
    with pytest.raises(ValueError):
        rows[0] = 5
    assert index.match({"k": "a"}).tolist() == [1, 3, 7, 9]


def test_a_change_after_a_match_is_seen_by_the_next_match() -> None:
    index = MetadataIndex()
    index.add(0, {"k": "a"})
    assert index.match({"k": "a"}).tolist() == [0]
    index.add(5, {"k": "a"})
    index.remove(0, {"k": "a"})
    assert index.match({"k": "a"}).tolist() == [5]


@pytest.mark.parametrize(("filter", "message"), [({}, "filter is empty"), ("k=a", "must be a mapping")])
def test_empty_or_non_mapping_filter_is_a_value_error(filter: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MetadataIndex().match(filter)


# ---------------------------------------------------------------------- in the numpy store


def brute_force_ids(store: NumpyVectorStore, ids: list[str], filter: Mapping[str, Any]) -> set[str]:
    """Ids of the stored rows passing ``filter``, found by reading every row back."""
    entries = store.get(ids)
    rows = {i: e["metadata"] for i, e in enumerate(entries) if e is not None}
    return {ids[i] for i in scan(rows, filter)}


def test_numpy_store_filtered_search_is_exact_through_upserts_deletes_and_load(rng: random.Random, tmp_path) -> None:
    data = np.random.default_rng(3).standard_normal((600, 8)).astype(np.float32)
    ids = [f"m{i}" for i in range(len(data))]
    store = NumpyVectorStore(dim=8, metric="ip")
    store.add(data[:500], ids=ids[:500], metadata=[random_metadata(rng) for _ in range(500)])
    store.upsert(data[400:600], ids=ids[400:600], metadata=[random_metadata(rng) for _ in range(200)])
    store.delete([ids[i] for i in range(0, 600, 7)])
    store.save(str(tmp_path / "store.npz"))
    reloaded = NumpyVectorStore(dim=8, metric="ip", path=str(tmp_path / "store.npz"))
    query = data[11]
    for candidate in (store, reloaded):
        ranked = [h.id for h in candidate.search(query, top_k=600)]  # every row, best first
        for filter in FILTERS:
            matching = brute_force_ids(candidate, ids, filter)
            assert {h.id for h in candidate.search(query, top_k=600, filter=filter)} == matching, filter
            top5 = [h.id for h in candidate.search(query, top_k=5, filter=filter)]
            assert top5 == [i for i in ranked if i in matching][:5], filter
