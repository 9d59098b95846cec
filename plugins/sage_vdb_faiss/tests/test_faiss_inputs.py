"""Bad input gets a clear ValueError (or a correct result) and the store keeps serving."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def store(make_vdb, data):
    """A flat store of 600 vectors with ids d0..d599; after the test it must still answer correctly."""
    created = make_vdb(16)
    created.add(data, ids=[f"d{i}" for i in range(600)])
    yield created
    assert created.search(data[42], top_k=1)[0].id == "d42"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.ones(15, dtype=np.float32), "dimension 15, the index expects 16"),
        (np.ones((2, 17), dtype=np.float32), "dimension 17, the index expects 16"),
        (np.full(16, np.nan, dtype=np.float32), "row 0 holds NaN or inf"),
        (np.array([[0.1] * 16, [np.inf] * 16], dtype=np.float32), "row 1 holds NaN or inf"),
        (np.ones((2, 2, 16), dtype=np.float32), "must be 1-D"),
        (np.array(["a"] * 16), "must hold real numbers"),
        (np.zeros(0, dtype=np.float32), "empty vector"),
        ([[1.0] * 16, [1.0] * 3], "numeric array"),
    ],
)
def test_bad_query_is_a_value_error_naming_the_problem(store, query, message):
    with pytest.raises(ValueError, match=message):
        store.search(query, top_k=3)


@pytest.mark.parametrize(("top_k", "message"), [(0, "at least 1"), (-2, "at least 1"), (2.5, "integer"), (True, "integer")])
def test_bad_top_k_is_a_value_error(store, data, top_k, message):
    with pytest.raises(ValueError, match=message):
        store.search(data[0], top_k=top_k)


def test_float64_and_integer_inputs_are_cast_to_float32(store, data):
    assert store.search(data[3].astype(np.float64), top_k=1)[0].id == "d3"
    assert store.search(np.int64(1) * (data[3] > 0), top_k=1)  # ints accepted
    store.add(data[3:4].astype(np.float64) * 2, ids=["double"])
    assert store.get(["double"])[0]["vector"].dtype == np.float32


def test_list_query_and_numpy_integer_top_k_are_accepted(store, data):
    assert store.search(data[8].tolist(), top_k=np.int64(2))[0].id == "d8"


def test_top_k_above_count_returns_everything_sorted(store, data):
    hits = store.search(data[0], top_k=10_000)
    assert len(hits) == 600
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_empty_batches_give_empty_results(store, data):
    assert store.add(np.zeros((0, 16), dtype=np.float32)) == []
    assert store.upsert(np.zeros((0, 16), dtype=np.float32), ids=[]) == []
    assert store.search(np.zeros((0, 16), dtype=np.float32), top_k=3) == []
    assert store.count() == 600


def test_unknown_ids_give_none_and_zero(store):
    assert store.get(["d1", "nope"])[1] is None
    assert store.delete(["nope"]) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": ["a", "b"]}, "got 2 ids for 1 vectors"),
        ({"ids": [7]}, "ids must be strings"),
        ({"ids": "a"}, "ids must be a list"),
        ({"ids": ["d1"]}, "already stored"),
        ({"ids": ["z"], "metadata": [{"x": object()}]}, "not JSON-serialisable"),
        ({"ids": ["z"], "metadata": ["text"]}, "must be a dict"),
        ({"ids": ["z"], "metadata": {"x": 1}}, "one dict per vector"),
    ],
)
def test_bad_add_arguments_are_value_errors_and_add_nothing(store, data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        store.add(data[:1], **kwargs)
    assert store.count() == 600 and store.get(["z"]) == [None]


def test_duplicate_ids_in_one_call_are_refused(store, data):
    with pytest.raises(ValueError, match="appears twice"):
        store.upsert(data[:2], ids=["same", "same"])


def test_wrong_dimension_add_is_refused_before_anything_changes(store, data):
    with pytest.raises(ValueError, match="dimension 8, the index expects 16"):
        store.add(np.ones((3, 8), dtype=np.float32), ids=["x", "y", "z"])
    assert store.count() == 600


def test_zero_vector_with_cosine_metric_is_stored_and_searchable(make_vdb, data):
    store = make_vdb(16)
    store.add(np.zeros((1, 16), dtype=np.float32), ids=["zero"])
    store.add(data[:1], ids=["one"])
    assert store.search(data[0], top_k=2)[0].id == "one"
    assert not store.get(["zero"])[0]["vector"].any()


def test_closed_store_refuses_calls_clearly(make_vdb, data):
    store = make_vdb(16)
    store.close()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.search(data[0], top_k=1)


def test_scores_follow_the_metric(make_vdb, data):
    query = data[0] * 2.0
    for metric, expected in (
        ("ip", float(data[1] @ query)),
        ("cosine", float(data[1] @ data[0])),
        ("l2", -float(np.sum((data[1] - query) ** 2))),
    ):
        store = make_vdb(16, metric=metric)
        store.add(data[1:2], ids=["one"])
        assert store.search(query, top_k=1)[0].score == pytest.approx(expected, rel=1e-5)
