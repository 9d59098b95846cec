"""Contract suite for :class:`sage_core.plugin.VectorStore` backends (kind ``vdb``).

Besides the semantics on a few vectors, it checks at :data:`SCALE` (5,000) vectors: results equal
to brute force (an exact store) or a recall@10 of at least ``min_recall`` (an approximate one),
every stored vector reachable by searching for itself, every filter operator, deletes and upserts,
and a save/load round trip; then eight threads writing and reading at once, a save crashed
part-way, and bad input. Queries and stored vectors are unit vectors, so every metric ranks alike
and a score must be the cosine similarity or, for ``l2``, minus the squared distance.
"""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pytest

from sage_core.services.contracts import Hit
from sage_core.testing._calls import call
from sage_core.testing._crash import (
    assert_crash_mid_save_keeps_a_snapshot,
    assert_cut_snapshots_load_whole_or_not_at_all,
)
from sage_core.testing._threads import run_concurrently
from sage_core.testing._vector_workloads import ConcurrentWrites, Snapshots
from sage_core.testing._vectors import (
    FILTER_CASES,
    SCALE,
    brute_force,
    item_metadata,
    matches,
    similarities,
    unit_vectors,
)

TOP_K = 10


class Stored(NamedTuple):
    """A store and what the suite put in it: row ``i`` is ``vectors[i]`` under ``ids[i]``."""

    store: Any
    vectors: np.ndarray
    ids: list[str]
    metadata: list[dict[str, Any]]

    def row_of(self) -> dict[str, int]:
        """Row number by id."""
        return {item: row for row, item in enumerate(self.ids)}


@pytest.mark.timeout(120)
class VectorStoreContract:
    """Subclass and define a ``make_store`` fixture returning a zero-argument factory of empty stores.

    Every store the factory returns must have dimension ``dim`` (or learn it from the first add)
    and start empty. An approximate index sets ``exact = False`` and declares the recall@10 it
    promises against brute force at 5,000 vectors in ``min_recall``; it must still find every stored
    vector by searching for that vector, honour filters exactly and never return a deleted id.
    ``score_atol`` is how far a score may be from the true similarity (raise it for quantised
    indexes). Stores are closed after each test.
    """

    dim: int = 16
    exact: bool = True
    min_recall: float = 0.9
    score_atol: float = 1e-4

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        """Override: ``return lambda: MyStore(dim=self.dim)``."""
        pytest.fail(f"{type(self).__name__} must define a make_store fixture returning a store factory")

    @pytest.fixture
    def store(self, make_store: Callable[[], Any]) -> Iterator[Any]:
        """A fresh empty store, closed after the test."""
        created = make_store()
        yield created
        call(created.close)

    @pytest.fixture
    def filled(self, store: Any) -> Stored:
        """40 unit vectors with ids ``v0..v39`` and :func:`item_metadata`."""
        return _fill(store, 40, self.dim)

    @pytest.fixture
    def large(self, store: Any) -> Stored:
        """:data:`SCALE` unit vectors with ids ``v0..`` and :func:`item_metadata`, added 1,000 at a time."""
        return _fill(store, SCALE, self.dim)

    # ------------------------------------------------------------------ writes

    def test_add_returns_given_ids_and_counts_them(self, store: Any) -> None:
        ids = call(store.add, unit_vectors(5, self.dim), ids=[f"a{i}" for i in range(5)])
        assert list(ids) == [f"a{i}" for i in range(5)]
        assert call(store.count) == 5

    def test_add_without_ids_generates_unique_string_ids(self, store: Any) -> None:
        ids = call(store.add, unit_vectors(6, self.dim))
        assert len(ids) == 6 and len(set(ids)) == 6
        assert all(isinstance(i, str) for i in ids)

    def test_add_of_existing_id_raises_value_error(self, store: Any) -> None:
        call(store.add, unit_vectors(1, self.dim), ids=["x"])
        with pytest.raises(ValueError):
            call(store.add, unit_vectors(1, self.dim, seed=1), ids=["x"])
        assert call(store.count) == 1

    def test_upsert_replaces_vector_and_metadata_and_inserts_new_ids(self, store: Any) -> None:
        first, second = unit_vectors(2, self.dim, seed=3)
        call(store.add, first[None, :], ids=["x"], metadata=[{"v": 1}])
        call(store.upsert, np.stack([second, first]), ids=["x", "y"], metadata=[{"v": 2}, {"v": 3}])
        assert call(store.count) == 2
        got = call(store.get, ["x"])[0]
        np.testing.assert_allclose(got["vector"], second, rtol=1e-5, atol=1e-5, err_msg="upsert kept the old vector")
        assert got["metadata"] == {"v": 2}, f"upsert kept the old metadata: {got['metadata']}"

    def test_delete_returns_how_many_existed_and_removes_them_from_search(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        assert call(store.delete, ["v0", "v1", "missing"]) == 2
        assert call(store.count) == 38
        hits = call(store.search, vectors[0], top_k=40)
        assert "v0" not in {h.id for h in hits} and "v1" not in {h.id for h in hits}
        call(store.add, vectors[:1], ids=["v0"])
        assert call(store.search, vectors[0], top_k=1)[0].id == "v0"

    # ------------------------------------------------------------------ reads

    def test_search_of_a_stored_vector_finds_it_first_with_its_metadata(self, filled: Stored) -> None:
        store, vectors, _, metadata = filled
        hits = call(store.search, vectors[7], top_k=5)
        assert isinstance(hits, Sequence) and all(isinstance(h, Hit) for h in hits)
        assert hits[0].id == "v7" and hits[0].metadata == metadata[7]

    def test_search_results_read_as_lists_of_hits_and_pickle(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        hits = call(store.search, vectors[7], top_k=3)
        as_list = [Hit(h.id, h.score, dict(h.metadata)) for h in hits]
        assert hits == as_list and as_list == hits and list(hits) == as_list
        assert pickle.loads(pickle.dumps(hits)) == as_list
        batch = call(store.search, vectors[[7, 8]], top_k=3)
        nested = [[Hit(h.id, h.score, dict(h.metadata)) for h in row] for row in batch]
        assert batch == nested and pickle.loads(pickle.dumps(batch)) == nested

    def test_results_come_best_first_on_the_documented_score_scale(self, filled: Stored) -> None:
        queries = unit_vectors(20, self.dim, seed=11)
        row_of = filled.row_of()
        for query, hits in zip(queries, call(filled.store.search, queries, top_k=TOP_K)):
            assert len(hits) == TOP_K
            self._similarities(hits, query, filled, row_of)

    def test_batch_search_returns_one_list_per_query_row(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        results = call(store.search, vectors[[2, 9, 30]], top_k=3)
        assert len(results) == 3 and all(len(r) == 3 for r in results)
        assert [r[0].id for r in results] == ["v2", "v9", "v30"]

    def test_top_k_larger_than_store_returns_everything(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        assert len(call(store.search, vectors[0], top_k=1000)) == 40
        assert [len(hits) for hits in call(store.search, vectors[:2], top_k=10**9)] == [40, 40]

    def test_get_returns_vector_and_metadata_and_none_for_unknown(self, filled: Stored) -> None:
        store, vectors, _, metadata = filled
        found, missing = call(store.get, ["v5", "nope"])
        assert missing is None
        assert found["id"] == "v5" and found["metadata"] == metadata[5]
        np.testing.assert_allclose(found["vector"], vectors[5], rtol=1e-5, atol=1e-5)

    def test_stored_metadata_is_isolated_from_the_callers_objects(self, store: Any) -> None:
        vector = unit_vectors(1, self.dim, seed=14)
        meta = {"tags": ["a"], "nested": {"n": 1}}
        call(store.add, vector, ids=["x"], metadata=[meta])
        meta["tags"].append("changed after add")
        meta["nested"]["n"] = 2
        got = call(store.get, ["x"])[0]
        got["metadata"]["tags"].append("changed after get")
        got["vector"][0] += 1.0
        call(store.search, vector[0], top_k=1)[0].metadata["tags"].append("changed after search")
        again = call(store.get, ["x"])[0]
        assert again["metadata"] == {"tags": ["a"], "nested": {"n": 1}}, (
            f"the stored metadata changed with the caller's objects (a shallow copy?): {again['metadata']}"
        )
        np.testing.assert_allclose(again["vector"], vector[0], atol=1e-6, err_msg="the stored vector changed with get()'s copy")

    def test_search_on_empty_store_returns_no_hits(self, store: Any) -> None:
        assert call(store.search, unit_vectors(1, self.dim)[0], top_k=3) == []

    def test_dim_is_known_after_first_add(self, store: Any) -> None:
        call(store.add, unit_vectors(2, self.dim))
        assert store.dim == self.dim

    # ------------------------------------------------------------------ at scale

    def test_search_at_scale_matches_brute_force_and_reaches_every_vector(self, large: Stored) -> None:
        queries = unit_vectors(200, self.dim, seed=101)
        self._assert_matches_brute_force(large, queries, np.arange(SCALE))
        store, vectors, ids, _ = large
        results = call(store.search, vectors, top_k=TOP_K)
        lost = [item for item, hits in zip(ids, results) if item not in {h.id for h in hits}]
        assert not lost, (
            f"{len(lost)} of {SCALE} stored vectors are not among the top {TOP_K} hits of a search for "
            f"themselves (unreachable), e.g. {lost[:5]}"
        )

    def test_every_filter_operator_matches_brute_force_at_scale(self, large: Stored) -> None:
        store, _, ids, metadata = large
        queries = unit_vectors(5, self.dim, seed=102)
        for name, where in FILTER_CASES:
            rows = np.array([i for i, meta in enumerate(metadata) if matches(meta, where)], dtype=np.int64)
            hits = call(store.search, queries[0], top_k=SCALE, filter=where)
            wrong = [h.id for h in hits if h.metadata != metadata[int(h.id[1:])]]
            assert not wrong, f"filter {name} {where}: hits carry metadata other than their item's, e.g. {wrong[:3]}"
            got, want = sorted(h.id for h in hits), sorted(ids[i] for i in rows)
            assert got == want, (
                f"filter {name} {where} with top_k above the matches: {len(got)} hits, {len(want)} items match; "
                f"missing {sorted(set(want) - set(got))[:3]}, not matching {sorted(set(got) - set(want))[:3]}"
            )
            self._assert_matches_brute_force(large, queries, rows, filter=where, label=f"filter {name} {where}")

    def test_deletes_and_upserts_at_scale_reach_search_get_and_filters(self, large: Stored) -> None:
        store, vectors, ids, metadata = large
        order = np.random.default_rng(5).permutation(SCALE)
        deleted, replaced = order[:500], order[500:1000]
        assert call(store.delete, [ids[i] for i in deleted] + ["never-stored"]) == 500
        fresh = unit_vectors(600, self.dim, seed=103)
        new_ids = [ids[i] for i in replaced] + [f"new{i}" for i in range(100)]
        call(store.upsert, fresh, ids=new_ids, metadata=[{"name": item, "version": 2} for item in new_ids])
        assert call(store.count) == SCALE - 500 + 100
        assert call(store.get, [ids[i] for i in deleted[:50]]) == [None] * 50
        for entry, vector, item in zip(call(store.get, new_ids[::10]), fresh[::10], new_ids[::10]):
            assert entry["metadata"] == {"name": item, "version": 2}
            np.testing.assert_allclose(entry["vector"], vector, atol=1e-5)
        stale = {h.id for hits in call(store.search, vectors[deleted], top_k=TOP_K) for h in hits}
        assert not stale & {ids[i] for i in deleted}, f"deleted ids still found: {sorted(stale & {ids[i] for i in deleted})[:5]}"
        for item, hits in zip(new_ids, call(store.search, fresh, top_k=TOP_K)):
            assert item in {h.id for h in hits}, f"upserted id {item} not found by its new vector"
        versioned = call(store.search, fresh[0], top_k=1000, filter={"version": 2})
        assert sorted(h.id for h in versioned) == sorted(new_ids), "filter on new metadata misses upserted ids"
        gone = [metadata[i]["name"] for i in np.concatenate([deleted, replaced])]
        stale_meta = call(store.search, fresh[0], top_k=1000, filter={"name": gone})
        assert not stale_meta, f"filter on replaced or deleted metadata still matches {[h.id for h in stale_meta][:5]}"
        live = np.setdiff1d(np.arange(SCALE), np.concatenate([deleted, replaced]))
        now = Stored(store, np.concatenate([vectors[live], fresh]), [ids[i] for i in live] + new_ids, [])
        self._assert_matches_brute_force(now, unit_vectors(50, self.dim, seed=104), np.arange(len(now.ids)))

    # ------------------------------------------------------------------ concurrency

    def test_concurrent_writers_and_readers_lose_nothing_and_never_tear(self, store: Any) -> None:
        writes = ConcurrentWrites(store, self.dim)
        run_concurrently(
            [writes.writer(t) for t in range(4)] + [writes.upserter(u) for u in range(2)],
            [writes.searcher, writes.getter],
        )
        writes.assert_nothing_lost()

    # ------------------------------------------------------------------ persistence

    def test_save_and_load_round_trip_at_scale(self, large: Stored, make_store: Callable[[], Any], tmp_path: Path) -> None:
        store, vectors, ids, metadata = large
        call(store.delete, ids[:100])
        queries = unit_vectors(50, self.dim, seed=105)
        before = [[(h.id, h.metadata) for h in hits] for hits in call(store.search, queries, top_k=TOP_K)]
        path = str(tmp_path / "store.bin")
        call(store.save, path)
        fresh = make_store()
        try:
            call(fresh.add, unit_vectors(1, self.dim, seed=99), ids=["stale"])
            call(fresh.load, path)
            assert call(fresh.count) == SCALE - 100, "the count after load is not the saved store's (load must replace the contents)"
            entries = call(fresh.get, ["stale"] + ids)
            assert entries[: 101] == [None] * 101, "load kept an earlier or deleted item"
            for row, entry in enumerate(entries[101:], start=100):
                assert entry["metadata"] == metadata[row]
                np.testing.assert_allclose(entry["vector"], vectors[row], atol=1e-5)
            after = [[(h.id, h.metadata) for h in hits] for hits in call(fresh.search, queries, top_k=TOP_K)]
            assert after == before, "a loaded store answers differently from the store it was saved from"
        finally:
            call(fresh.close)

    def test_crash_mid_save_leaves_the_previous_snapshot_loadable(
        self, make_store: Callable[[], Any], tmp_path: Path
    ) -> None:
        snapshots = Snapshots(make_store, self.dim)
        path = str(tmp_path / "store.bin")
        old = snapshots.saved(path)
        assert_crash_mid_save_keeps_a_snapshot(
            snapshots.changed, snapshots.read_back, path, str(tmp_path / "scratch.bin"), old, snapshots.new
        )

    def test_a_snapshot_cut_short_loads_whole_or_not_at_all(self, make_store: Callable[[], Any], tmp_path: Path) -> None:
        snapshots = Snapshots(make_store, self.dim)
        path = str(tmp_path / "store.bin")
        whole = snapshots.saved(path)

        def fresh() -> Any:
            store = make_store()
            call(store.add, unit_vectors(1, self.dim, seed=15), ids=["s0"], metadata=[{"other": True}])
            return store

        assert_cut_snapshots_load_whole_or_not_at_all(path, fresh, snapshots.summary, whole)

    def test_loading_a_corrupt_file_raises_value_error_and_keeps_the_store(self, filled: Stored, tmp_path: Path) -> None:
        store, vectors, _, _ = filled
        path = tmp_path / "corrupt.bin"
        path.write_bytes(b"this is not a saved store")
        with pytest.raises(ValueError):
            call(store.load, str(path))
        assert call(store.count) == 40 and call(store.search, vectors[3], top_k=1)[0].id == "v3"

    # ------------------------------------------------------------------ bad input

    def test_wrong_dimension_raises_value_error_and_store_keeps_working(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        wide = np.ones((1, self.dim + 3), dtype=np.float32)
        with pytest.raises(ValueError):
            call(store.search, wide[0], top_k=3)
        with pytest.raises(ValueError):
            call(store.add, wide, ids=["bad"])
        with pytest.raises(ValueError):
            call(store.upsert, wide, ids=["v1"])
        assert call(store.count) == 40
        assert call(store.search, vectors[1], top_k=1)[0].id == "v1"

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nan_and_infinite_values_are_rejected_whole(self, filled: Stored, bad: float) -> None:
        store, vectors, _, _ = filled
        batch = unit_vectors(3, self.dim, seed=12)
        batch[2, 1] = bad
        with pytest.raises(ValueError):
            call(store.add, batch, ids=["a", "b", "c"])
        with pytest.raises(ValueError):
            call(store.upsert, batch, ids=["v0", "v1", "c"])
        with pytest.raises(ValueError):
            call(store.search, batch[2], top_k=3)
        assert call(store.count) == 40 and call(store.get, ["a"]) == [None]
        np.testing.assert_allclose(call(store.get, ["v0"])[0]["vector"], vectors[0], atol=1e-5)

    def test_non_numeric_vectors_are_rejected(self, filled: Stored) -> None:
        store, _, _, _ = filled
        with pytest.raises(ValueError):
            call(store.add, np.array([["x"] * self.dim]), ids=["s"])
        with pytest.raises(ValueError):
            call(store.search, np.array(["x"] * self.dim), top_k=1)
        assert call(store.count) == 40

    def test_float64_query_is_accepted_or_rejected_clearly(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        try:
            hits = call(store.search, vectors[4].astype(np.float64), top_k=1)
        except ValueError:
            return
        assert hits[0].id == "v4"

    def test_unknown_ids_are_answered_not_raised(self, filled: Stored) -> None:
        store, _, _, _ = filled
        assert call(store.get, ["nope", "v2"])[0] is None
        assert call(store.delete, ["nope", "neither"]) == 0
        assert call(store.count) == 40

    def test_mismatched_ids_or_metadata_are_rejected(self, filled: Stored) -> None:
        store, _, _, _ = filled
        two = unit_vectors(2, self.dim, seed=13)
        for ids, metadata in [(["a"], None), (["a", "a"], None), (["a", 5], None), (["a", "b"], [{}])]:
            with pytest.raises(ValueError):
                call(store.add, two, ids=ids, metadata=metadata)
        assert call(store.count) == 40

    def test_bad_top_k_or_filter_raises_value_error(self, filled: Stored) -> None:
        store, vectors, _, _ = filled
        for top_k in (0, -1):
            with pytest.raises(ValueError):
                call(store.search, vectors[0], top_k=top_k)
        with pytest.raises(ValueError):
            call(store.search, vectors[0], top_k=3, filter="colour=red")

    def test_empty_query_batch_returns_empty_list(self, filled: Stored) -> None:
        store, _, _, _ = filled
        assert call(store.search, np.zeros((0, self.dim), dtype=np.float32), top_k=3) == []

    # ------------------------------------------------------------------ helpers

    def _similarities(self, hits: Sequence[Hit], query: np.ndarray, stored: Stored, row_of: dict[str, int]) -> np.ndarray:
        """Each hit's true similarity, checking the score scale and that hits come best first."""
        sims = similarities(hits, query, stored.vectors, row_of, self.score_atol)
        scores = [h.score for h in hits]
        assert all(a >= b for a, b in itertools.pairwise(scores)), f"hits are not best first: scores {scores[:5]}"
        return sims

    def _assert_matches_brute_force(
        self, stored: Stored, queries: np.ndarray, rows: np.ndarray, filter: Any = None, label: str = "search"
    ) -> None:
        """Top-10 of each query equals brute force over ``rows`` (exact) or reaches ``min_recall``."""
        results = call(stored.store.search, queries, top_k=TOP_K, filter=filter)
        truth = brute_force(stored.vectors, queries, TOP_K, rows)
        row_of = stored.row_of()
        found = 0
        for query, hits, expected in zip(queries, results, truth):
            assert len(hits) == len(expected), f"{label}: {len(hits)} hits, expected {len(expected)}"
            sims = self._similarities(hits, query, stored, row_of)
            if self.exact:
                np.testing.assert_allclose(
                    sims, stored.vectors[expected] @ query, atol=self.score_atol, err_msg=f"{label}: not the exact top {TOP_K}"
                )
            found += len({h.id for h in hits} & {stored.ids[i] for i in expected})
        wanted = truth.size
        if wanted and not self.exact:
            recall = found / wanted
            assert recall >= self.min_recall, f"{label}: recall@{TOP_K} {recall:.3f} is below min_recall {self.min_recall}"


def _fill(store: Any, count: int, dim: int) -> Stored:
    vectors = unit_vectors(count, dim)
    ids = [f"v{i}" for i in range(count)]
    metadata = [item_metadata(i) for i in range(count)]
    for start in range(0, count, 1000):
        end = start + 1000
        call(store.add, vectors[start:end], ids=ids[start:end], metadata=metadata[start:end])
    return Stored(store, vectors, ids, metadata)


__all__ = ["Stored", "VectorStoreContract", "unit_vectors"]
