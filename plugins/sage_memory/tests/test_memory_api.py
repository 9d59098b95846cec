"""The memory API on the default backends: store, get, update, delete, link, sessions, filters."""

from __future__ import annotations

import numpy as np
import pytest

from sage_memory import MemoryService


def test_service_with_no_arguments_stores_and_retrieves_by_text(memory: MemoryService, clock) -> None:
    memory.store_memory("the cat sat on the mat")
    wanted = memory.store_memory("quarterly revenue grew by ten percent")
    memory.store_memory("a recipe for apple pie")

    results = memory.retrieve_memories(query="revenue grew this quarter", top_k=1)

    assert [r["id"] for r in results] == [wanted]
    result = results[0]
    assert result["content"] == "quarterly revenue grew by ten percent"
    assert result["session_id"] == "default" and result["memory_type"] == "conversation"
    assert result["created_at"] == result["updated_at"] == clock()
    assert isinstance(result["score"], float)


def test_store_with_explicit_vector_is_found_by_that_vector(memory: MemoryService, unit) -> None:
    ids = [memory.store_memory(f"memory {i}", vector=unit(i), metadata={"i": i}) for i in range(5)]

    results = memory.retrieve_memories(vector=unit(3), top_k=2)

    assert results[0]["id"] == ids[3]
    assert results[0]["metadata"] == {"i": 3}
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert results[0]["score"] > results[1]["score"]


def test_get_returns_the_record_and_none_for_unknown_ids(memory: MemoryService) -> None:
    memory_id = memory.store_memory("hello", session_id="s1", memory_type="fact", metadata={"k": "v"})

    record = memory.get(memory_id)

    assert record is not None
    assert {k: record[k] for k in ("id", "content", "session_id", "memory_type", "metadata")} == {
        "id": memory_id,
        "content": "hello",
        "session_id": "s1",
        "memory_type": "fact",
        "metadata": {"k": "v"},
    }
    assert memory.get("no-such-id") is None


def test_update_content_reembeds_so_retrieval_follows_the_new_text(memory: MemoryService, assert_stores_agree) -> None:
    memory_id = memory.store_memory("the weather is sunny today")
    memory.store_memory("stock markets closed higher")
    before = memory.get(memory_id)

    assert memory.update(memory_id, content="stock markets closed higher again", metadata={"edited": True})

    after = memory.get(memory_id)
    assert after["content"] == "stock markets closed higher again"
    assert after["metadata"] == {"edited": True}
    assert after["created_at"] == before["created_at"] and after["updated_at"] >= before["updated_at"]
    top = memory.retrieve_memories(query="stock markets closed higher again", top_k=1)
    assert top[0]["id"] == memory_id
    assert memory.update("no-such-id", content="x") is False
    assert_stores_agree(memory)


def test_update_metadata_only_keeps_the_vector(memory: MemoryService, unit) -> None:
    memory_id = memory.store_memory("pinned", vector=unit(2))

    memory.update(memory_id, metadata={"pinned": True})

    assert memory.retrieve_memories(vector=unit(2), top_k=1)[0]["id"] == memory_id
    assert memory.get(memory_id)["metadata"] == {"pinned": True}


def test_delete_removes_the_memory_from_all_three_stores(memory: MemoryService, assert_stores_agree) -> None:
    keep = memory.store_memory("keep me")
    gone = memory.store_memory("delete me")
    memory.link(keep, gone)

    assert memory.delete(gone) is True

    assert memory.get(gone) is None
    assert not memory.stores.graph.has_node(gone)
    assert memory.stores.vector.get([gone]) == [None]
    assert memory.neighbors(keep) == []
    assert [r["id"] for r in memory.retrieve_memories(query="delete me", top_k=5)] == [keep]
    assert memory.delete(gone) is False
    assert assert_stores_agree(memory) == {keep}


def test_link_and_neighbors_follow_hops_in_either_direction(memory: MemoryService) -> None:
    a, b, c, d = (memory.store_memory(name) for name in "abcd")
    memory.link(a, b, "follows")
    memory.link(c, b)

    assert set(memory.neighbors(b)) == {a, c}
    assert memory.neighbors(a, hops=1) == [b]
    assert memory.neighbors(a, hops=2)[0] == b and set(memory.neighbors(a, hops=2)) == {b, c}
    assert memory.neighbors(d) == []


def test_link_rejects_unknown_ids_and_memories_of_different_sessions(memory: MemoryService) -> None:
    a = memory.store_memory("a", session_id="s1")
    b = memory.store_memory("b", session_id="s2")

    with pytest.raises(ValueError, match="only memories of one session"):
        memory.link(a, b)
    with pytest.raises(ValueError, match="unknown memory id"):
        memory.link(a, "missing")
    assert memory.neighbors(a) == []


def test_memory_type_filter_returns_only_that_type(memory: MemoryService, unit) -> None:
    memory.store_memory("chat", vector=unit(0), memory_type="conversation")
    fact = memory.store_memory("fact", vector=unit(0, noise=0.3), memory_type="fact")
    memory.store_memory("note", vector=unit(0, noise=0.3, seed=1), memory_type="note")

    facts = memory.retrieve_memories(vector=unit(0), top_k=5, memory_type="fact")
    several = memory.retrieve_memories(vector=unit(0), top_k=5, memory_type=["fact", "note"])

    assert [r["id"] for r in facts] == [fact]
    assert {r["memory_type"] for r in several} == {"fact", "note"}


def test_time_range_filters_on_creation_time(memory: MemoryService, clock, unit) -> None:
    old = memory.store_memory("old", vector=unit(0))
    clock.advance(10)
    new = memory.store_memory("new", vector=unit(0, noise=0.5))
    middle = clock() - 5

    recent = memory.retrieve_memories(vector=unit(0), top_k=5, time_range=(middle, clock()))
    earlier = memory.retrieve_memories(vector=unit(0), top_k=5, time_range=(0, middle))

    assert [r["id"] for r in recent] == [new]
    assert [r["id"] for r in earlier] == [old]
    with pytest.raises(ValueError, match="start <= end"):
        memory.retrieve_memories(vector=unit(0), time_range=(2.0, 1.0))


def test_retrieve_without_query_lists_the_newest_memories_first(memory: MemoryService, clock) -> None:
    first = memory.store_memory("first")
    clock.advance(1)
    second = memory.store_memory("second")

    assert [r["id"] for r in memory.retrieve_memories(top_k=5)] == [second, first]


def test_list_and_clear_sessions(memory: MemoryService, assert_stores_agree) -> None:
    for i in range(3):
        memory.store_memory(f"a{i}", session_id="alice")
    bob = memory.store_memory("b0", session_id="bob")

    assert memory.list_sessions() == ["alice", "bob"]
    assert memory.clear_session("alice") == 3
    assert memory.clear_session("alice") == 0
    assert memory.list_sessions() == ["bob"]
    assert memory.retrieve_memories(query="a1", session_id="alice") == []
    assert assert_stores_agree(memory) == {bob}


def test_batch_store_returns_ids_in_order_and_keeps_metadata(memory: MemoryService, assert_stores_agree) -> None:
    contents = [f"note number {i}" for i in range(50)]

    ids = memory.store_memories(contents, session_id="batch", metadata=[{"i": i} for i in range(50)])

    assert len(set(ids)) == 50
    assert [memory.get(i)["metadata"]["i"] for i in ids] == list(range(50))
    assert memory.retrieve_memories(query="note number 17", session_id="batch", top_k=1)[0]["id"] == ids[17]
    assert len(assert_stores_agree(memory)) == 50


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.store_memory(123), "content must be a str"),
        (lambda m: m.store_memory("x", metadata={"f": object()}), "JSON-serialisable"),
        (lambda m: m.store_memory("x", vector=np.array([np.nan, 1.0, 0.0])), "NaN"),
        (lambda m: m.retrieve_memories(query="x", top_k=0), "top_k must be an int >= 1"),
        (lambda m: m.retrieve_memories(query="x", hops=-1), "hops an int >= 0"),
    ],
)
def test_bad_input_raises_a_clear_error_and_the_memory_stays_usable(memory: MemoryService, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(memory)
    memory_id = memory.store_memory("still works")
    assert memory.get(memory_id)["content"] == "still works"


def test_vector_of_the_wrong_dimension_is_rejected_naming_both_sizes(memory: MemoryService, unit) -> None:
    memory.store_memory("sixteen", vector=unit(0, dim=16))

    with pytest.raises(ValueError, match="dimension 8, the memory's vectors have 16"):
        memory.store_memory("eight", vector=unit(0, dim=8))
    with pytest.raises(ValueError, match="dimension 8"):
        memory.retrieve_memories(vector=unit(0, dim=8))


def test_closed_memory_refuses_writes() -> None:
    service = MemoryService()
    service.close()
    service.close()

    with pytest.raises(RuntimeError, match="closed"):
        service.store_memory("late")


def test_caller_chosen_ids_are_used_and_must_be_new(memory: MemoryService) -> None:
    assert memory.store_memory("chosen", memory_id="turn-1") == "turn-1"
    assert memory.store_memories(["a", "b"], ids=["turn-2", "turn-3"]) == ["turn-2", "turn-3"]

    with pytest.raises(ValueError, match="already stored: \\['turn-1'\\]"):
        memory.store_memory("again", memory_id="turn-1")
    with pytest.raises(ValueError, match="distinct non-empty ids"):
        memory.store_memories(["x", "y"], ids=["same", "same"])
    assert memory.get("turn-1")["content"] == "chosen"
    assert memory.count() == 3
