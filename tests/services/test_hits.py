"""``Hits`` and ``HitBatch`` read as the ``list[Hit]`` / ``list[list[Hit]]`` that ``search`` returned."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from sage_core import Hit
from sage_core.plugin import HitBatch, Hits
from sage_core.services.hits import make_hit, object_column

IDS = ["a", "b", "c", "d", "e", "f"]
METADATA = [{"n": i} if i % 2 else None for i in range(len(IDS))]


@pytest.fixture
def batch() -> HitBatch:
    """Two queries: the first found rows 0, 2, 4; the second rows 5, 1 and then nothing (-1)."""
    rows = np.array([[0, 2, 4], [5, 1, -1]])
    scores = np.array([[0.9, 0.5, 0.25], [0.75, 0.125, -np.inf]], dtype=np.float32)
    return HitBatch.from_rows(rows, scores, object_column(IDS), object_column(METADATA))


EXPECTED = [
    [Hit("a", 0.8999999761581421, {}), Hit("c", 0.5, {}), Hit("e", 0.25, {})],
    [Hit("f", 0.75, {"n": 5}), Hit("b", 0.125, {"n": 1})],
]


def test_batch_reads_as_nested_lists_of_hits(batch: HitBatch) -> None:
    assert len(batch) == 2 and batch == EXPECTED and EXPECTED == batch
    assert [list(row) for row in batch] == EXPECTED and repr(batch) == repr(EXPECTED)
    assert batch[-1] == EXPECTED[1] and batch[1:] == EXPECTED[1:]
    with pytest.raises(IndexError):
        batch[2]


def test_row_reads_as_a_list_of_hits(batch: HitBatch) -> None:
    row = batch[1]
    assert len(row) == 2 and row == EXPECTED[1] and EXPECTED[1] == row and row != EXPECTED[0]
    assert row[0].id == "f" and row[-1].score == 0.125 and row[:1] == EXPECTED[1][:1]
    assert list(reversed(row)) == EXPECTED[1][::-1] and EXPECTED[1][0] in row
    assert row + [Hit("z", 0.0)] == EXPECTED[1] + [Hit("z", 0.0)]
    assert [Hit("z", 0.0)] + row == [Hit("z", 0.0)] + EXPECTED[1]
    assert repr(row) == repr(EXPECTED[1]) and row.ids == ["f", "b"] and row.scores == [0.75, 0.125]
    assert bool(row) and not batch[0:0] and row != ("f", "b")


def test_hits_are_made_once_and_own_their_metadata(batch: HitBatch) -> None:
    row = batch[1]
    assert row[0] is row[0]
    row[0].metadata["n"] = 99
    assert row[0].metadata == {"n": 99} and METADATA[5] == {"n": 5} and batch[1][0].metadata == {"n": 5}


def test_rows_and_batches_pickle_and_copy(batch: HitBatch) -> None:
    assert pickle.loads(pickle.dumps(batch)) == EXPECTED
    assert pickle.loads(pickle.dumps(batch[1])) == EXPECTED[1]
    assert pickle.loads(pickle.dumps(batch[1:])) == EXPECTED[1:]
    assert copy.deepcopy(batch[0]) == EXPECTED[0]


def test_empty_batch_has_empty_rows() -> None:
    empty = HitBatch.empty(3)
    assert empty == [[], [], []] and len(empty[2]) == 0 and HitBatch.empty(0) == []


def test_fast_hit_equals_the_constructed_hit() -> None:
    fast = make_hit("a", 0.5, {"k": 1})
    assert fast == Hit("a", 0.5, {"k": 1}) and isinstance(fast, Hit)
    assert repr(fast) == repr(Hit("a", 0.5, {"k": 1}))
    with pytest.raises(AttributeError):
        fast.id = "b"  # still frozen
