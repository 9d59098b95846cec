"""Hits are built fast and, for large batches, while FAISS already searches the next chunk."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sage_core import Hit
from sage_core.testing import unit_vectors
from sage_vdb_faiss.results import OverlappedSearch, make_hit


def test_fast_hit_equals_the_constructed_hit():
    fast = make_hit("a", 0.5, {"k": 1})
    assert fast == Hit("a", 0.5, {"k": 1}) and isinstance(fast, Hit)
    assert repr(fast) == repr(Hit("a", 0.5, {"k": 1}))
    with pytest.raises(AttributeError):
        fast.id = "b"  # still frozen


def test_large_batch_searched_in_chunks_gives_the_one_call_answer(make_vdb, data):
    queries = unit_vectors(1000, 16, seed=4)
    whole = make_vdb(16)
    chunked = make_vdb(16, search_chunk_rows=128)
    for store in (whole, chunked):
        store.add(data, ids=[f"d{i}" for i in range(600)], metadata=[{"i": i} for i in range(600)])
    before = chunked.stats()["faiss_calls"]
    assert chunked.search(queries, top_k=5) == whole.search(queries, top_k=5)
    assert chunked.stats()["faiss_calls"] - before == 8  # ceil(1000 / 128)


def test_search_of_next_chunk_overlaps_building_hits_of_the_last():
    overlap = OverlappedSearch(chunk_rows=10)
    started = [threading.Event() for _ in range(4)]
    overlapped = []

    def search(part: np.ndarray):
        started[int(part[0, 0])].set()
        return part, part

    def build(result):
        chunk = int(result[0][0, 0])
        if chunk + 1 < len(started):  # run sequentially, the next search would not start: wait times out
            overlapped.append(started[chunk + 1].wait(5.0))
        return [[] for _ in range(len(result[0]))]

    queries = np.repeat(np.arange(4.0), 10)[:, None] * np.ones((1, 2))
    try:
        out = overlap.run(queries, search, build)
    finally:
        overlap.close()
    assert len(out) == 40 and overlapped == [True, True, True]


def test_failed_build_waits_for_the_search_in_flight():
    overlap = OverlappedSearch(chunk_rows=5)
    finished = []

    def search(part: np.ndarray):
        time.sleep(0.05)
        finished.append(len(part))
        return part, part

    def build(result):
        raise ValueError("boom")

    try:
        with pytest.raises(ValueError, match="boom"):
            overlap.run(np.zeros((20, 2)), search, build)
        assert finished == [5, 5]  # the second search ended before run() returned
    finally:
        overlap.close()
