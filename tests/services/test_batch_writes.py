"""Batch writes: ``put_many`` on the built-in KV stores stores all items or none, and batch writes
are write methods, which the service layer sends to every replica like single writes."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest

from sage_core.builtin.kv_stores import MemoryKVStore, SQLiteKVStore
from sage_core.services.registry import ServiceRegistry

ITEMS = {f"k{i}": {"i": i, "tags": ["a", "b"][: i % 3]} for i in range(200)}


@pytest.fixture(params=["memory", "sqlite"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each built-in KV store, the SQLite one on a database file; closed after the test."""
    store = MemoryKVStore() if request.param == "memory" else SQLiteKVStore(path=str(tmp_path / "kv.db"))
    yield store
    store.close()


def test_put_many_stores_every_item_and_replaces_existing_keys(kv: Any) -> None:
    kv.put("k3", "old")
    kv.put("other", 1)
    kv.put_many(ITEMS)
    assert kv.count() == len(ITEMS) + 1
    assert all(kv.get(key) == value for key, value in ITEMS.items())
    assert kv.get("other") == 1


def test_put_many_stores_nothing_when_one_item_is_invalid(kv: Any) -> None:
    kv.put("k1", "kept")
    with pytest.raises(ValueError, match="put_many: the value of key 'bad' must be JSON-serialisable"):
        kv.put_many({**ITEMS, "bad": object()})
    with pytest.raises(ValueError, match="keys must be strings"):
        kv.put_many({**ITEMS, 7: "x"})
    with pytest.raises(ValueError, match="items must be a mapping"):
        kv.put_many([("k0", 1)])
    assert kv.keys() == ["k1"] and kv.get("k1") == "kept"


def test_put_many_copies_values(kv: Any) -> None:
    value = {"list": [1]}
    kv.put_many({"a": value})
    value["list"].append(2)
    assert kv.get("a") == {"list": [1]}


def test_sqlite_put_many_is_committed_for_other_connections(tmp_path: Path) -> None:
    store = SQLiteKVStore(path=str(tmp_path / "kv.db"))
    try:
        store.put_many(ITEMS)
        other = sqlite3.connect(str(tmp_path / "kv.db"))
        try:
            assert other.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == len(ITEMS)
        finally:
            other.close()
        store.put("after", 1)  # the connection is back in autocommit mode
        assert store.get("after") == 1
    finally:
        store.close()


def test_put_many_reaches_every_kv_replica(manager: ServiceRegistry) -> None:
    manager.register("kv", kind="kv", backend="sqlite", replicas=2)
    manager.sync["kv"].put_many(ITEMS)
    assert counts_seen_by_reads(manager.sync["kv"]) == {len(ITEMS)}


def test_put_many_splits_items_across_kv_shards(manager: ServiceRegistry) -> None:
    manager.register("kv", kind="kv", backend="memory", shards=3)
    items = {f"key-{i}": i for i in range(60)}
    manager.sync["kv"].put_many(items)
    assert manager.sync["kv"].count() == 60
    assert all(manager.sync["kv"].get(key) == value for key, value in items.items())


def counts_seen_by_reads(proxy, reads: int = 6) -> set[int]:
    """``count()`` as answered by several reads; reads rotate over the replicas."""
    return {proxy.count() for _ in range(reads)}


@pytest.mark.skipif(importlib.util.find_spec("sage_memory") is None, reason="the memory plugin is not installed")
def test_store_memories_reaches_every_memory_replica(manager: ServiceRegistry) -> None:
    manager.register("memory", kind="memory", backend="sage_memory", device="cpu", replicas=2)
    memory = manager.sync["memory"]
    memory.store_memories(contents=[f"note {i}" for i in range(5)], session_id="s")
    assert counts_seen_by_reads(memory) == {5}
