"""The built-in key-value stores pass the KV contract suite."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from sage_core.builtin.kv_stores import MemoryKVStore, SQLiteKVStore
from sage_core.testing import KVStoreContract


class TestMemoryKVStore(KVStoreContract):
    @pytest.fixture
    def make_kv(self):
        return MemoryKVStore


class TestSQLiteKVStoreInMemory(KVStoreContract):
    @pytest.fixture
    def make_kv(self):
        return SQLiteKVStore


class TestSQLiteKVStoreOnDisk(KVStoreContract):
    @pytest.fixture
    def make_kv(self, live_dir: Path):
        paths = iter(live_dir / f"live{i}.db" for i in range(100))
        return lambda: SQLiteKVStore(path=str(next(paths)))


@pytest.fixture
def live_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the on-disk stores' databases live: tmpfs when the machine has one, since every
    autocommitted put syncs the file (about 10 ms on a busy shared disk, and the kit makes thousands)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="sage-kv-") as folder:
        yield Path(folder)


def test_sqlite_store_keeps_data_in_its_database_file(tmp_path) -> None:
    path = str(tmp_path / "kv.db")
    store = SQLiteKVStore(path=path)
    store.put("a", {"x": 1})
    store.close()
    again = SQLiteKVStore(path=path)
    assert again.get("a") == {"x": 1}
    again.close()


def test_memory_store_path_option_saves_on_close_and_loads_at_start(tmp_path) -> None:
    path = str(tmp_path / "kv.json")
    store = MemoryKVStore(path=path)
    store.put("k", [1, 2])
    store.close()
    assert MemoryKVStore(path=path).get("k") == [1, 2]


def test_keys_prefix_with_sql_wildcards_is_literal() -> None:
    store = SQLiteKVStore()
    for key in ["a%b", "a_b", "axb"]:
        store.put(key, 1)
    assert store.keys("a%") == ["a%b"]
    assert store.keys("a_") == ["a_b"]
