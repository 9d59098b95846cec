"""Contract suite for :class:`sage_core.plugin.Memory` backends (kind ``memory``).

Besides the semantics on a few memories, it checks at 5,000 memories over ten sessions that each
memory is retrieved first by its own content, best first, that sessions, types and deletes
filter exactly and that clearing a session counts right; then eight threads storing, updating,
deleting and retrieving at once; and bad input. The contract has no save/load, so no persistence
checks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pytest

from sage_core.testing._calls import call
from sage_core.testing._threads import run_concurrently

RESULT_KEYS = {"id", "score", "content", "metadata", "created_at", "updated_at"}
SCALE, SESSIONS = 5_000, 10
TYPES = ("note", "fact", "conversation")


@pytest.mark.timeout(180)
class MemoryContract:
    """Subclass and define a ``make_memory`` fixture returning a zero-argument factory of empty memories.

    The memory embeds ``content`` itself (any embedder works: the texts below share words with
    their queries). Memories are closed after each test.
    """

    @pytest.fixture
    def make_memory(self) -> Callable[[], Any]:
        """Override: ``return lambda: MyMemory(...)``."""
        pytest.fail(f"{type(self).__name__} must define a make_memory fixture returning a memory factory")

    @pytest.fixture
    def memory(self, make_memory: Callable[[], Any]) -> Iterator[Any]:
        """A fresh empty memory, closed after the test."""
        created = make_memory()
        yield created
        call(created.close)

    def test_store_returns_an_id_that_get_finds(self, memory: Any) -> None:
        memory_id = call(memory.store_memory, "the cat sat on the mat", session_id="s1", metadata={"k": 1})
        assert isinstance(memory_id, str)
        got = call(memory.get, memory_id)
        assert got["id"] == memory_id and got["content"] == "the cat sat on the mat"
        assert got["metadata"]["k"] == 1
        assert call(memory.get, "no-such-id") is None

    def test_retrieve_puts_the_relevant_memory_first_with_all_fields(self, memory: Any) -> None:
        call(memory.store_memory, "stock markets fell sharply today", session_id="s1")
        wanted = call(memory.store_memory, "my cat likes sleeping on the warm mat", session_id="s1")
        call(memory.store_memory, "recipe for tomato soup with basil", session_id="s1")
        results = call(memory.retrieve_memories, query="cat sleeping on the mat", session_id="s1", top_k=2)
        assert results[0]["id"] == wanted
        assert RESULT_KEYS <= set(results[0])
        assert len(results) == 2

    def test_sessions_are_isolated(self, memory: Any) -> None:
        call(memory.store_memory, "alpha notes about rivers", session_id="a")
        other = call(memory.store_memory, "alpha notes about rivers", session_id="b")
        results = call(memory.retrieve_memories, query="alpha rivers", session_id="a", top_k=10)
        assert other not in {r["id"] for r in results} and len(results) == 1

    def test_memory_type_and_time_range_filter_results(self, memory: Any) -> None:
        old = call(memory.store_memory, "meeting about the budget", session_id="s", memory_type="note")
        new = call(memory.store_memory, "meeting about the budget again", session_id="s", memory_type="fact")
        typed = call(memory.retrieve_memories, query="budget meeting", session_id="s", memory_type="note")
        assert [r["id"] for r in typed] == [old]
        first, second = call(memory.get, old)["created_at"], call(memory.get, new)["created_at"]
        assert second > first, "a later memory must have a later created_at"
        recent = call(memory.retrieve_memories, query="budget meeting", session_id="s", time_range=(second, second + 60))
        assert [r["id"] for r in recent] == [new]
        earlier = call(memory.retrieve_memories, query="budget meeting", session_id="s", time_range=(first, first))
        assert [r["id"] for r in earlier] == [old], "time_range bounds are inclusive"

    def test_update_changes_content_and_reports_existence(self, memory: Any) -> None:
        memory_id = call(memory.store_memory, "draft text", session_id="s")
        assert call(memory.update, memory_id, content="final text about gardens", metadata={"v": 2}) is True
        got = call(memory.get, memory_id)
        assert got["content"] == "final text about gardens" and got["metadata"]["v"] == 2
        assert got["updated_at"] >= got["created_at"]
        assert call(memory.update, "no-such-id", content="x") is False
        found = call(memory.retrieve_memories, query="gardens", session_id="s", top_k=1)
        assert found[0]["id"] == memory_id

    def test_delete_removes_the_memory_everywhere(self, memory: Any) -> None:
        memory_id = call(memory.store_memory, "temporary thought about kites", session_id="s")
        assert call(memory.delete, memory_id) is True
        assert call(memory.delete, memory_id) is False
        assert call(memory.get, memory_id) is None
        assert call(memory.retrieve_memories, query="kites", session_id="s") == []

    def test_link_and_neighbors(self, memory: Any) -> None:
        a = call(memory.store_memory, "first idea", session_id="s")
        b = call(memory.store_memory, "second idea", session_id="s")
        c = call(memory.store_memory, "third idea", session_id="s")
        call(memory.link, a, b)
        call(memory.link, b, c)
        assert call(memory.neighbors, a) == [b]
        assert set(call(memory.neighbors, a, hops=2)) == {b, c}

    def test_retrieve_with_hops_adds_linked_memories(self, memory: Any) -> None:
        a = call(memory.store_memory, "the cat sat on the mat", session_id="s")
        b = call(memory.store_memory, "quarterly revenue grew", session_id="s")
        call(memory.link, a, b)
        results = call(memory.retrieve_memories, query="cat on the mat", session_id="s", top_k=1, hops=1)
        assert {r["id"] for r in results} == {a, b}

    def test_list_and_clear_sessions(self, memory: Any) -> None:
        call(memory.store_memory, "one", session_id="x")
        call(memory.store_memory, "two", session_id="x")
        call(memory.store_memory, "three", session_id="y")
        assert sorted(call(memory.list_sessions)) == ["x", "y"]
        assert call(memory.clear_session, "x") == 2
        assert call(memory.list_sessions) == ["y"]

    # ------------------------------------------------------------------ at scale

    def test_each_memory_is_retrieved_first_by_its_content_at_scale(self, memory: Any) -> None:
        ids = _store_many(memory)
        position = {memory_id: i for i, memory_id in enumerate(ids)}
        assert call(memory.list_sessions) == sorted({_session(i) for i in range(SCALE)})
        for i in range(0, SCALE, 7):
            results = call(memory.retrieve_memories, query=_content(i), session_id=_session(i), top_k=3)
            assert results and results[0]["id"] == ids[i], f"memory {i} is not retrieved first by its own content"
            assert all(position[r["id"]] % SESSIONS == i % SESSIONS for r in results), "another session leaked in"
            scores = [r["score"] for r in results]
            assert scores == sorted(scores, reverse=True), f"results are not best first: {scores}"

    def test_types_deletes_and_cleared_sessions_filter_exactly_at_scale(self, memory: Any) -> None:
        ids = _store_many(memory)
        session = _session(3)
        mine = [i for i in range(SCALE) if _session(i) == session]
        notes = call(memory.retrieve_memories, query="note topic", session_id=session, top_k=SCALE, memory_type="note")
        assert sorted(r["id"] for r in notes) == sorted(ids[i] for i in mine if TYPES[i % 3] == "note")
        deleted = mine[::4]
        assert [call(memory.delete, ids[i]) for i in deleted] == [True] * len(deleted)
        left = call(memory.retrieve_memories, query="note topic", session_id=session, top_k=SCALE)
        assert sorted(r["id"] for r in left) == sorted(ids[i] for i in mine if i not in set(deleted))
        assert call(memory.clear_session, session) == len(mine) - len(deleted)
        assert call(memory.retrieve_memories, query=_content(mine[1]), session_id=session) == []
        assert session not in call(memory.list_sessions) and call(memory.get, ids[mine[1]]) is None

    # ------------------------------------------------------------------ concurrency

    def test_concurrent_writers_and_readers_lose_nothing_and_never_tear(self, memory: Any) -> None:
        writes = _ConcurrentWrites(memory)
        run_concurrently([writes.writer(t) for t in range(4)] + [writes.updater(u) for u in range(2)], [writes.reader] * 2)
        writes.assert_nothing_lost()

    # ------------------------------------------------------------------ bad input

    def test_unknown_ids_are_answered_or_rejected_clearly(self, memory: Any) -> None:
        known = call(memory.store_memory, "a known memory", session_id="s")
        assert call(memory.get, "no-such-id") is None
        assert call(memory.update, "no-such-id", content="x") is False
        assert call(memory.delete, "no-such-id") is False
        with pytest.raises(ValueError):
            call(memory.link, known, "no-such-id")
        assert call(memory.neighbors, known) == []

    def test_bad_vectors_and_arguments_raise_value_error(self, memory: Any) -> None:
        call(memory.store_memory, "fixes the embedding dimension", session_id="s")
        for vector in (np.ones(3, dtype=np.float32), np.full(3, np.nan, dtype=np.float32)):
            with pytest.raises(ValueError):
                call(memory.store_memory, "bad vector", vector=vector, session_id="s")
        with pytest.raises(ValueError):
            call(memory.store_memory, 42, session_id="s")
        with pytest.raises(ValueError):
            call(memory.retrieve_memories, query="x", session_id="s", top_k=0)
        with pytest.raises(ValueError):
            call(memory.retrieve_memories, query="x", session_id="s", time_range=(10.0, 1.0))
        assert call(memory.list_sessions) == ["s"]


def _content(i: int) -> str:
    return f"{TYPES[i % 3]} {i} about topic{i % 50} and word{i * 7 % 997}"


def _session(i: int) -> str:
    return f"session{i % SESSIONS}"


def _store_many(memory: Any) -> list[str]:
    return [
        call(memory.store_memory, _content(i), session_id=_session(i), memory_type=TYPES[i % 3], metadata={"i": i})
        for i in range(SCALE)
    ]


class _ConcurrentWrites:
    """Writers store memories in their own session and delete every fifth; updaters rewrite shared
    memories' metadata with a version held twice; readers check results are whole and isolated."""

    WRITES, SHARED, VERSIONS = 60, 4, 40

    def __init__(self, memory: Any) -> None:
        self.memory = memory
        self.ids: dict[int, list[str]] = {}
        self.shared = [call(memory.store_memory, f"shared note {j}", session_id="shared", metadata={"v": 0, "again": 0}) for j in range(self.SHARED)]

    def writer(self, t: int) -> Callable[[], None]:
        def work() -> None:
            ids = [call(self.memory.store_memory, f"writer {t} note {i}", session_id=f"w{t}", metadata={"i": i}) for i in range(self.WRITES)]
            for memory_id in ids[::5]:
                assert call(self.memory.delete, memory_id) is True
            self.ids[t] = ids

        return work

    def updater(self, u: int) -> Callable[[], None]:
        def work() -> None:
            for version in range(1, self.VERSIONS + 1):
                for memory_id in self.shared[u::2]:
                    assert call(self.memory.update, memory_id, metadata={"v": version, "again": version}) is True

        return work

    def reader(self) -> None:
        for found in call(self.memory.retrieve_memories, query="shared note", session_id="shared", top_k=10):
            assert RESULT_KEYS <= set(found) and found["metadata"]["v"] == found["metadata"]["again"], f"torn read: {found}"
        results = call(self.memory.retrieve_memories, query="writer 1 note", session_id="w1", top_k=10)
        ids = [r["id"] for r in results]
        assert len(ids) == len(set(ids)), "a memory appears twice in one result"

    def assert_nothing_lost(self) -> None:
        assert call(self.memory.list_sessions) == sorted(["shared"] + [f"w{t}" for t in range(4)])
        for t, ids in self.ids.items():
            kept = [m for i, m in enumerate(ids) if i % 5]
            found = call(self.memory.retrieve_memories, query=f"writer {t} note", session_id=f"w{t}", top_k=self.WRITES)
            assert sorted(r["id"] for r in found) == sorted(kept), f"writer {t}: memories lost or deletes undone"
            assert all(call(self.memory.get, m) is None for m in ids[::5])
        for memory_id in self.shared:
            assert call(self.memory.get, memory_id)["metadata"] == {"v": self.VERSIONS, "again": self.VERSIONS}, "an update was lost"


__all__ = ["MemoryContract"]
