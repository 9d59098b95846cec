"""Contract suite for :class:`sage_core.Memory` backends (kind ``memory``)."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest

from sage_core.testing._calls import call

RESULT_KEYS = {"id", "score", "content", "metadata", "created_at", "updated_at"}


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
        time.sleep(0.02)
        cutoff = time.time()
        time.sleep(0.02)
        new = call(memory.store_memory, "meeting about the budget again", session_id="s", memory_type="fact")
        typed = call(memory.retrieve_memories, query="budget meeting", session_id="s", memory_type="note")
        assert [r["id"] for r in typed] == [old]
        recent = call(memory.retrieve_memories, query="budget meeting", session_id="s", time_range=(cutoff, time.time() + 60))
        assert [r["id"] for r in recent] == [new]

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


__all__ = ["MemoryContract"]
