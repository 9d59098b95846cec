"""The built-in numpy vector store: the contract suite plus metric, batching and persistence specifics."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core.builtin.numpy_vdb import NumpyVectorStore
from sage_core.plugins.manager import PluginManager
from sage_core.services.batching import batch_spec
from sage_core.testing import VectorStoreContract, unit_vectors


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
class TestNumpyVectorStoreContract(VectorStoreContract):
    @pytest.fixture
    def make_store(self, metric: str):
        return lambda: NumpyVectorStore(dim=self.dim, metric=metric)


class TestNumpyVectorStoreLearnsDim(VectorStoreContract):
    @pytest.fixture
    def make_store(self):
        return lambda: NumpyVectorStore()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_scores_follow_each_metric_definition(rng: np.random.Generator) -> None:
    data = rng.standard_normal((20, 6)).astype(np.float32)
    query = rng.standard_normal(6).astype(np.float32)
    expected = {
        "ip": data @ query,
        "cosine": (data @ query) / (np.linalg.norm(data, axis=1) * np.linalg.norm(query)),
        "l2": -((data - query) ** 2).sum(axis=1),
    }
    for metric, scores in expected.items():
        store = NumpyVectorStore(metric=metric)
        store.add(data, ids=[str(i) for i in range(20)])
        hits = store.search(query, top_k=20)
        got = {h.id: h.score for h in hits}
        np.testing.assert_allclose([got[str(i)] for i in range(20)], scores, rtol=1e-4, atol=1e-4)
        assert [h.id for h in hits][:5] == [str(i) for i in np.argsort(-scores)[:5]]


def test_large_query_batch_is_split_into_blocks_with_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    data, queries = unit_vectors(500, 16, seed=1), unit_vectors(50, 16, seed=2)
    store = NumpyVectorStore(dim=16)
    store.add(data)
    whole = store.search(queries, top_k=5)
    monkeypatch.setattr("sage_core.builtin.numpy_vdb.SCORE_BLOCK_BYTES", 4 * 500 * 7)
    blocked = store.search(queries, top_k=5)
    assert [[h.id for h in row] for row in whole] == [[h.id for h in row] for row in blocked]


def test_search_is_marked_batchable_on_query() -> None:
    spec = batch_spec(NumpyVectorStore.search)
    assert spec is not None and spec.arg == "query"


def test_delete_keeps_remaining_ids_searchable(rng: np.random.Generator) -> None:
    data = unit_vectors(30, 8, seed=4)
    store = NumpyVectorStore(dim=8)
    store.add(data, ids=[f"v{i}" for i in range(30)])
    store.delete([f"v{i}" for i in range(0, 30, 2)])
    for i in range(1, 30, 2):
        assert store.search(data[i], top_k=1)[0].id == f"v{i}"


def test_bad_inputs_are_rejected_with_clear_messages() -> None:
    store = NumpyVectorStore(dim=4)
    store.add(np.eye(4, dtype=np.float32), ids=list("abcd"))
    with pytest.raises(ValueError, match="dimension 3"):
        store.search(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="top_k"):
        store.search(np.ones(4, dtype=np.float32), top_k=0)
    with pytest.raises(ValueError, match="numeric"):
        store.search(np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="infinity"):
        store.add(np.full((1, 4), np.inf, dtype=np.float32), ids=["e"])
    with pytest.raises(ValueError, match="strings"):
        store.add(np.ones((1, 4), dtype=np.float32), ids=[5])
    with pytest.raises(ValueError, match="metric"):
        NumpyVectorStore(metric="manhattan")
    assert store.search(np.array([1, 0, 0, 0]), top_k=1)[0].id == "a"


def test_path_option_loads_at_start_and_saves_on_close(tmp_path) -> None:
    path = str(tmp_path / "vdb.npz")
    first = NumpyVectorStore(dim=4, path=path)
    first.add(np.eye(4, dtype=np.float32), ids=list("abcd"), metadata=[{"n": i} for i in range(4)])
    first.close()
    second = NumpyVectorStore(dim=4, path=path)
    assert second.count() == 4 and second.get(["c"])[0]["metadata"] == {"n": 2}


def test_numpy_backend_is_registered_through_the_plugin_manager() -> None:
    spec = PluginManager(load_entry_points=False).backend("vdb", "numpy")
    assert spec.factory is NumpyVectorStore and spec.plugin == "sage_core.builtin.numpy_vdb"
