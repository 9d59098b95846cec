"""The memory passes the ``Memory`` contract suite of ``sage_core.testing``, in memory and on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from sage_core.testing import MemoryContract
from sage_memory import MemoryService


class TestDefaultMemoryService(MemoryContract):
    """The no-argument memory: SQLite KV in memory, numpy vectors, networkx graph, hashing embedder."""

    @pytest.fixture
    def make_memory(self) -> Callable[[], MemoryService]:
        return lambda: MemoryService()


class TestPersistentMemoryOnInMemoryKV(MemoryContract):
    """A journaled memory in a directory, with the dict KV store instead of SQLite."""

    @pytest.fixture
    def make_memory(self, tmp_path: Path) -> Callable[[], MemoryService]:
        return lambda: MemoryService(path=tmp_path / "memory", kv={"backend": "memory"})
