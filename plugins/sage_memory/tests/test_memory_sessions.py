"""Session isolation, including many threads writing and reading different sessions at once."""

from __future__ import annotations

import threading

import numpy as np

from sage_memory import MemoryService


def test_a_session_never_sees_another_sessions_identical_memories(memory: MemoryService) -> None:
    mine = memory.store_memory("shared words", session_id="mine")
    theirs = memory.store_memory("shared words", session_id="theirs")
    memory.link(theirs, memory.store_memory("their linked words", session_id="theirs"))

    by_text = memory.retrieve_memories(query="shared words", session_id="mine", top_k=10, hops=2)
    by_vector = memory.retrieve_memories(vector=memory.stores.embedder.embed(["shared words"])[0], session_id="mine")
    listed = memory.retrieve_memories(session_id="mine", top_k=10)

    assert [r["id"] for r in by_text] == [mine]
    assert [r["id"] for r in by_vector] == [mine]
    assert [r["id"] for r in listed] == [mine]
    assert memory.retrieve_memories(query="shared words", session_id="nobody") == []


def test_concurrent_writers_and_readers_keep_sessions_isolated(memory: MemoryService, assert_stores_agree) -> None:
    writers, per_writer = 8, 40
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(per_writer, 32)).astype(np.float32)  # every session stores the same vectors
    written: dict[str, set[str]] = {f"s{w}": set() for w in range(writers)}
    leaks: list[str] = []
    start = threading.Barrier(writers)

    def writer(w: int) -> None:
        session = f"s{w}"
        start.wait()
        for i in range(per_writer):
            memory_id = memory.store_memory(f"{session} item {i}", vector=shared[i], session_id=session)
            written[session].add(memory_id)
            if i % 2:
                memory.store_memories([f"{session} batch {i}"], shared[i : i + 1], session_id=session)
            for result in memory.retrieve_memories(vector=shared[i], session_id=session, top_k=5, hops=1):
                if result["session_id"] != session or not result["content"].startswith(session + " "):
                    leaks.append(f"{session} saw {result['content']!r}")
            if i % 10 == 9:
                neighbours = list(written[session])[:2]
                memory.link(neighbours[0], neighbours[1])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(t.is_alive() for t in threads)
    assert leaks == []
    assert memory.list_sessions() == sorted(written)
    for session, ids in written.items():
        found = memory.retrieve_memories(vector=shared[0], session_id=session, top_k=1000)
        assert {r["session_id"] for r in found} == {session}
        assert ids <= {r["id"] for r in found}
        assert memory.count(session) == per_writer + per_writer // 2
    assert len(assert_stores_agree(memory)) == writers * (per_writer + per_writer // 2)


def test_clearing_one_session_while_others_write_leaves_theirs_intact(memory: MemoryService, assert_stores_agree) -> None:
    for i in range(30):
        memory.store_memory(f"doomed {i}", session_id="doomed")
    kept: list[str] = []

    def keep_writing() -> None:
        for i in range(30):
            kept.append(memory.store_memory(f"kept {i}", session_id="kept"))

    thread = threading.Thread(target=keep_writing)
    thread.start()
    cleared = memory.clear_session("doomed")
    thread.join(timeout=60)

    assert cleared == 30
    assert memory.list_sessions() == ["kept"]
    assert assert_stores_agree(memory) == set(kept)
