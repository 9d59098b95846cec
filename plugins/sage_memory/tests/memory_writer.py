"""A writer process for the crash tests: writes to a persistent memory until it is killed.

``python memory_writer.py DIR MODE SEED`` prints one JSON line before each write (``{"intent": {...}}``)
and one when it returned (``{"ack": {...}}``, with the ids of stored memories), flushed, so the test
knows what must survive and which single write was in flight when the process died. Modes:

* ``churn``: stores, batch stores, updates, links, deletes and checkpoints, forever, in random order;
* ``pause-in-checkpoint``: acknowledges stores and a checkpoint, more stores, then checkpoints again and
  stops for good after the KV store's snapshot is written, before the vector store's;
* ``pause-in-write``: acknowledges a few stores, then stores one more and stops for good after its
  KV write, before its vector and graph writes.

When a mode pauses it prints ``{"paused": ...}``; the test then kills the process with SIGKILL.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from typing import Any

from sage_memory import MemoryService


def intent(**fields: Any) -> None:
    """Tell the test that a write starts."""
    print(json.dumps({"intent": fields}), flush=True)


def ack(**fields: Any) -> None:
    """Tell the test that a write returned."""
    print(json.dumps({"ack": fields}), flush=True)


def pause_forever(where: str) -> None:
    """Report the pause and wait for SIGKILL (on an event nothing sets)."""
    print(json.dumps({"paused": where}), flush=True)
    threading.Event().wait()


def store(memory: MemoryService, contents: list[str], session: str) -> list[str]:
    """Store ``contents`` (one call, batched when several) and report it."""
    intent(op="store", contents=contents, session=session)
    if len(contents) == 1:
        ids = [memory.store_memory(contents[0], session_id=session)]
    else:
        ids = memory.store_memories(contents, session_id=session)
    ack(op="store", ids=ids, contents=contents, session=session)
    return ids


def churn(memory: MemoryService, rng: random.Random) -> None:
    live: list[tuple[str, str]] = []
    for step in range(10**9):
        action = rng.random()
        session = f"s{rng.randrange(3)}"
        if action < 0.45 or len(live) < 4:
            live.extend((i, session) for i in store(memory, [f"{session} memory {step}"], session))
        elif action < 0.6:
            contents = [f"{session} batch {step}.{i}" for i in range(5)]
            live.extend((i, session) for i in store(memory, contents, session))
        elif action < 0.7:
            memory_id, _ = rng.choice(live)
            intent(op="update", id=memory_id, content=f"updated at {step}")
            memory.update(memory_id, content=f"updated at {step}")
            ack(op="update", id=memory_id, content=f"updated at {step}")
        elif action < 0.8:
            a, session_a = rng.choice(live)
            same = [m for m, s in live if s == session_a and m != a]
            if same:
                b = rng.choice(same)
                intent(op="link", a=a, b=b)
                memory.link(a, b)
                ack(op="link", a=a, b=b)
        elif action < 0.95:
            memory_id, _ = live.pop(rng.randrange(len(live)))
            intent(op="delete", id=memory_id)
            memory.delete(memory_id)
            ack(op="delete", id=memory_id)
        else:
            intent(op="checkpoint")
            memory.save()
            ack(op="checkpoint")


def pause_in_checkpoint(memory: MemoryService) -> None:
    for i in range(20):
        store(memory, [f"before checkpoint {i}"], "s0")
        if i == 9:  # a complete generation first, so the paused checkpoint has one to preserve
            intent(op="checkpoint")
            memory.save()
            ack(op="checkpoint")
    vector_save = memory.stores.vector.save

    def save_then_pause(path: str) -> None:
        pause_forever("checkpoint: KV snapshot written, vector snapshot not yet")
        vector_save(path)

    memory.stores.vector.save = save_then_pause
    intent(op="checkpoint")
    memory.save()


def pause_in_write(memory: MemoryService) -> None:
    for i in range(5):
        store(memory, [f"acknowledged {i}"], "s0")

    def upsert_then_pause(*args: Any, **kwargs: Any) -> None:
        pause_forever("write: KV written, vector and graph not yet")

    memory.stores.vector.upsert = upsert_then_pause
    store(memory, ["in flight"], "s0")


def main() -> None:
    directory, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    memory = MemoryService(path=directory)
    ack(op="opened", count=memory.count())
    if mode == "churn":
        churn(memory, random.Random(seed))
    elif mode == "pause-in-checkpoint":
        pause_in_checkpoint(memory)
    elif mode == "pause-in-write":
        pause_in_write(memory)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
