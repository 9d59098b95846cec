"""A writer process for the crash tests: writes to a persistent memory until it is killed.

``python memory_writer.py DIR MODE SEED`` prints one JSON line per acknowledged write (``{"ack": op,
...}``, flushed) so the test knows what must survive. Modes:

* ``churn``: stores, batch stores, updates, links, deletes and checkpoints, forever, in random order;
* ``pause-in-checkpoint``: acknowledges a few stores, then checkpoints and stops for good after the KV
  store's snapshot is written, before the vector store's;
* ``pause-in-write``: acknowledges a few stores, then stores one more and stops for good after its
  KV write, before its vector and graph writes.

When a mode pauses it prints ``{"paused": ...}``; the test then kills the process with SIGKILL.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from sage_memory import MemoryService


def ack(**fields: Any) -> None:
    """Tell the test that a write returned."""
    print(json.dumps(fields), flush=True)


def pause_forever(where: str) -> None:
    """Report the pause and wait for SIGKILL."""
    print(json.dumps({"paused": where}), flush=True)
    while True:
        time.sleep(60)


def churn(memory: MemoryService, rng: random.Random) -> None:
    live: list[tuple[str, str]] = []
    for step in range(10**9):
        action = rng.random()
        session = f"s{rng.randrange(3)}"
        if action < 0.45 or len(live) < 4:
            memory_id = memory.store_memory(f"{session} memory {step}", session_id=session, metadata={"step": step})
            live.append((memory_id, session))
            ack(op="store", id=memory_id, session=session, content=f"{session} memory {step}")
        elif action < 0.6:
            contents = [f"{session} batch {step}.{i}" for i in range(5)]
            ids = memory.store_memories(contents, session_id=session)
            live.extend((i, session) for i in ids)
            for memory_id, content in zip(ids, contents):
                ack(op="store", id=memory_id, session=session, content=content)
        elif action < 0.7:
            memory_id, _ = rng.choice(live)
            memory.update(memory_id, content=f"updated at {step}")
            ack(op="update", id=memory_id, content=f"updated at {step}")
        elif action < 0.8:
            a, session_a = rng.choice(live)
            same = [m for m, s in live if s == session_a and m != a]
            if same:
                b = rng.choice(same)
                memory.link(a, b)
                ack(op="link", a=a, b=b)
        elif action < 0.95:
            memory_id, _ = live.pop(rng.randrange(len(live)))
            memory.delete(memory_id)
            ack(op="delete", id=memory_id)
        else:
            memory.save()
            ack(op="checkpoint")


def pause_in_checkpoint(memory: MemoryService) -> None:
    for i in range(20):
        memory_id = memory.store_memory(f"before checkpoint {i}", session_id="s0")
        ack(op="store", id=memory_id, session="s0", content=f"before checkpoint {i}")
    vector_save = memory.stores.vector.save

    def save_then_pause(path: str) -> None:
        pause_forever("checkpoint: KV snapshot written, vector snapshot not yet")
        vector_save(path)

    memory.stores.vector.save = save_then_pause
    memory.save()


def pause_in_write(memory: MemoryService) -> None:
    for i in range(5):
        memory_id = memory.store_memory(f"acknowledged {i}", session_id="s0")
        ack(op="store", id=memory_id, session="s0", content=f"acknowledged {i}")

    def upsert_then_pause(*args: Any, **kwargs: Any) -> None:
        pause_forever("write: KV written, vector and graph not yet")

    memory.stores.vector.upsert = upsert_then_pause
    memory.store_memory("in flight", session_id="s0")


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
