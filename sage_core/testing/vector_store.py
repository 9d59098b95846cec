"""Contract suite for :class:`sage_core.VectorStore` backends (kind ``vdb``)."""

from __future__ import annotations

from pathlib import Path
import pickle
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pytest

from sage_core.services.contracts import Hit
from sage_core.testing._calls import call


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random L2-normalised float32 vectors (distinct, so no score ties)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class VectorStoreContract:
    """Subclass and define a ``make_store`` fixture returning a zero-argument factory of empty stores.

    Every store the factory returns must have dimension ``self.dim`` (or learn it from the first
    add). Set ``exact = False`` for approximate indexes: nearest-neighbour checks then need only
    the right first hit on small data. Stores are closed after each test.
    """

    dim: int = 8
    exact: bool = True

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
    def filled(self, store: Any) -> tuple[Any, np.ndarray, list[str]]:
        """A store holding 40 unit vectors with ids ``v0..v39`` and ``{"group": i % 3}`` metadata."""
        vectors = unit_vectors(40, self.dim)
        ids = [f"v{i}" for i in range(40)]
        call(store.add, vectors, ids=ids, metadata=[{"group": i % 3, "name": f"n{i}"} for i in range(40)])
        return store, vectors, ids

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
        np.testing.assert_allclose(got["vector"], second, rtol=1e-5, atol=1e-5)
        assert got["metadata"] == {"v": 2}

    def test_delete_returns_how_many_existed_and_removes_them_from_search(self, filled: Any) -> None:
        store, vectors, _ = filled
        assert call(store.delete, ["v0", "v1", "missing"]) == 2
        assert call(store.count) == 38
        hits = call(store.search, vectors[0], top_k=40)
        assert "v0" not in {h.id for h in hits} and "v1" not in {h.id for h in hits}

    # ------------------------------------------------------------------ reads

    def test_search_of_a_stored_vector_finds_it_first(self, filled: Any) -> None:
        store, vectors, ids = filled
        hits = call(store.search, vectors[7], top_k=5)
        assert isinstance(hits, Sequence) and all(isinstance(h, Hit) for h in hits)
        assert hits[0].id == "v7"
        assert hits[0].metadata == {"group": 1, "name": "n7"}

    def test_search_results_read_as_lists_of_hits_and_pickle(self, filled: Any) -> None:
        store, vectors, _ = filled
        hits = call(store.search, vectors[7], top_k=3)
        as_list = [Hit(h.id, h.score, dict(h.metadata)) for h in hits]
        assert hits == as_list and as_list == hits and list(hits) == as_list
        assert pickle.loads(pickle.dumps(hits)) == as_list
        batch = call(store.search, vectors[[7, 8]], top_k=3)
        nested = [[Hit(h.id, h.score, dict(h.metadata)) for h in row] for row in batch]
        assert batch == nested and pickle.loads(pickle.dumps(batch)) == nested

    def test_search_scores_are_sorted_best_first(self, filled: Any) -> None:
        store, vectors, _ = filled
        scores = [h.score for h in call(store.search, vectors[3], top_k=10)]
        assert scores == sorted(scores, reverse=True)

    def test_batch_search_returns_one_list_per_query_row(self, filled: Any) -> None:
        store, vectors, _ = filled
        results = call(store.search, vectors[[2, 9, 30]], top_k=3)
        assert len(results) == 3 and all(len(r) == 3 for r in results)
        assert [r[0].id for r in results] == ["v2", "v9", "v30"]

    def test_exact_search_matches_brute_force_ordering(self, filled: Any) -> None:
        if not self.exact:
            pytest.skip("approximate index")
        store, vectors, ids = filled
        query = unit_vectors(1, self.dim, seed=11)[0]
        expected = [ids[i] for i in np.argsort(-(vectors @ query))[:5]]
        assert [h.id for h in call(store.search, query, top_k=5)] == expected

    def test_top_k_larger_than_store_returns_everything(self, filled: Any) -> None:
        store, vectors, _ = filled
        assert len(call(store.search, vectors[0], top_k=1000)) == 40

    def test_metadata_filter_keeps_only_matching_hits(self, filled: Any) -> None:
        store, vectors, _ = filled
        hits = call(store.search, vectors[0], top_k=40, filter={"group": 2})
        assert hits and all(h.metadata["group"] == 2 for h in hits)
        assert len(hits) == len([i for i in range(40) if i % 3 == 2])

    def test_metadata_filter_list_value_means_one_of(self, filled: Any) -> None:
        store, vectors, _ = filled
        hits = call(store.search, vectors[0], top_k=40, filter={"group": [0, 1]})
        assert {h.metadata["group"] for h in hits} == {0, 1}

    def test_get_returns_vector_and_metadata_and_none_for_unknown(self, filled: Any) -> None:
        store, vectors, _ = filled
        found, missing = call(store.get, ["v5", "nope"])
        assert missing is None
        assert found["id"] == "v5" and found["metadata"]["name"] == "n5"
        np.testing.assert_allclose(found["vector"], vectors[5], rtol=1e-5, atol=1e-5)

    def test_search_on_empty_store_returns_no_hits(self, store: Any) -> None:
        assert call(store.search, unit_vectors(1, self.dim)[0], top_k=3) == []

    def test_dim_is_known_after_first_add(self, store: Any) -> None:
        call(store.add, unit_vectors(2, self.dim))
        assert store.dim == self.dim

    # ------------------------------------------------------------------ bad input

    def test_wrong_dimension_raises_value_error_and_store_keeps_working(self, filled: Any) -> None:
        store, vectors, _ = filled
        with pytest.raises(ValueError):
            call(store.search, np.ones(self.dim + 3, dtype=np.float32), top_k=3)
        with pytest.raises(ValueError):
            call(store.add, np.ones((1, self.dim + 3), dtype=np.float32), ids=["bad"])
        assert call(store.search, vectors[1], top_k=1)[0].id == "v1"

    def test_nan_vectors_are_rejected(self, store: Any) -> None:
        bad = unit_vectors(2, self.dim)
        bad[1, 0] = np.nan
        with pytest.raises(ValueError):
            call(store.add, bad, ids=["a", "b"])
        assert call(store.count) == 0

    def test_float64_query_is_accepted_or_rejected_clearly(self, filled: Any) -> None:
        store, vectors, _ = filled
        try:
            hits = call(store.search, vectors[4].astype(np.float64), top_k=1)
        except ValueError:
            return
        assert hits[0].id == "v4"

    def test_empty_query_batch_returns_empty_list(self, filled: Any) -> None:
        store, _, _ = filled
        assert call(store.search, np.zeros((0, self.dim), dtype=np.float32), top_k=3) == []

    # ------------------------------------------------------------------ persistence

    def test_save_and_load_round_trip_into_a_fresh_store(
        self, filled: Any, make_store: Callable[[], Any], tmp_path: Path
    ) -> None:
        store, vectors, _ = filled
        path = str(tmp_path / "store.bin")
        call(store.save, path)
        fresh = make_store()
        try:
            call(fresh.load, path)
            assert call(fresh.count) == 40
            hits = call(fresh.search, vectors[12], top_k=1)
            assert hits[0].id == "v12" and hits[0].metadata["name"] == "n12"
        finally:
            call(fresh.close)

    def test_loading_a_corrupt_file_raises_value_error(self, store: Any, tmp_path: Path) -> None:
        path = tmp_path / "corrupt.bin"
        path.write_bytes(b"this is not a saved store")
        with pytest.raises(ValueError):
            call(store.load, str(path))


__all__ = ["VectorStoreContract", "unit_vectors"]
