"""Batch writes are write methods: the service layer sends them to every replica, like single writes."""

from __future__ import annotations

import pytest

from sage_core.services.manager import ServiceManager

pytest.importorskip("sage_memory", reason="the memory plugin is not installed (make install)")


def counts_seen_by_reads(proxy, reads: int = 6) -> set[int]:
    """``count()`` as answered by several reads; reads rotate over the replicas."""
    return {proxy.count() for _ in range(reads)}


def test_store_memories_reaches_every_memory_replica(manager: ServiceManager) -> None:
    manager.register("memory", kind="memory", backend="sage_memory", device="cpu", replicas=2)
    memory = manager.sync["memory"]
    memory.store_memories(contents=[f"note {i}" for i in range(5)], session_id="s")
    assert counts_seen_by_reads(memory) == {5}
