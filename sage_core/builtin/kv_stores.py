"""Built-in plugin: key-value stores (backends ``memory`` and ``sqlite`` of kind ``kv``).

Values must be JSON-serialisable; both stores keep the JSON text, so a stored value never changes
when the caller mutates its object afterwards, and ``get`` returns a fresh copy. Beyond the
``KVStore`` contract both offer ``put_many(items)``: every item stored, or none when one is invalid.

* ``memory``: a dict; ``save``/``load`` write a JSON file atomically. Option ``path``
  (:class:`MemoryKVOptions`): loaded at start when the file exists, saved on close.
* ``sqlite``: one table in a SQLite database. Option ``path`` (:class:`SQLiteKVOptions`, default
  ``:memory:``) is the live database; ``save`` copies it to another file with SQLite's backup API
  (atomic rename), ``load`` copies such a file back in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict

from sage_core.plugin import BackendSpec, BackendUnavailable, hookimpl
from sage_core.builtin._files import atomic_write

FILE_FORMAT = "sage-kv/1"


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the in-memory and SQLite key-value stores."""
    register(
        BackendSpec(
            kind="kv", name="memory", factory=MemoryKVStore, description="a dict; JSON file persistence",
            options=MemoryKVOptions,
        )
    )
    register(
        BackendSpec(kind="kv", name="sqlite", factory=SQLiteKVStore, description="one SQLite table", options=SQLiteKVOptions)
    )


class MemoryKVOptions(BaseModel):
    """Options of the ``memory`` KV store (``services.<name>.options``); its constructor takes the same names."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str | None = None
    """A JSON file: loaded at start when it exists, saved on close."""


class SQLiteKVOptions(BaseModel):
    """Options of the ``sqlite`` KV store (``services.<name>.options``); its constructor takes the same names."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str = ":memory:"
    """The live SQLite database file (``:memory:``: in memory, gone on close)."""


class MemoryKVStore:
    """A thread-safe in-memory key-value store."""

    def __init__(self, path: str | None = None, device: str = "cpu") -> None:
        _require_cpu("memory", device)
        self.path = path
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False
        if path and Path(path).exists():
            self.load(path)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        text = _encode(_check_key(key), value)
        with self._lock:
            self._data[key] = text

    def put_many(self, items: Mapping[str, Any]) -> None:
        """Store every ``key: value`` of ``items``; nothing is stored when one of them is invalid."""
        encoded = _encode_items(items)
        with self._lock:
            self._data.update(encoded)

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        with self._lock:
            text = self._data.get(_check_key(key))
        return default if text is None else json.loads(text)

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""
        with self._lock:
            return self._data.pop(_check_key(key), None) is not None

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def count(self) -> int:
        """Number of keys."""
        return len(self._data)

    def save(self, path: str) -> None:
        """Write a JSON file atomically."""
        with self._lock:
            payload = json.dumps({"format": FILE_FORMAT, "items": self._data}).encode()
        atomic_write(path, lambda handle: handle.write(payload))

    def load(self, path: str) -> None:
        """Replace the contents with a file written by :meth:`save`."""
        try:
            payload = json.loads(Path(path).read_bytes().decode())
            items = payload["items"] if payload.get("format") == FILE_FORMAT else None
        except FileNotFoundError:
            raise
        except (OSError, ValueError, UnicodeDecodeError, AttributeError, KeyError) as exc:
            msg = f"load: {path} is not a key-value store file ({type(exc).__name__}: {exc})"
            raise ValueError(msg) from exc
        if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
            msg = f"load: {path} has no {FILE_FORMAT!r} items"
            raise ValueError(msg)
        with self._lock:
            self._data = dict(items)

    def close(self) -> None:
        """Save to ``path`` when one was configured. Idempotent."""
        if not self._closed:
            self._closed = True
            if self.path:
                self.save(self.path)


class SQLiteKVStore:
    """A key-value store in one SQLite table (shared by the service's worker threads)."""

    def __init__(self, path: str = ":memory:", device: str = "cpu") -> None:
        _require_cpu("sqlite", device)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._closed = False

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        text = _encode(_check_key(key), value)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, text))

    def put_many(self, items: Mapping[str, Any]) -> None:
        """Store every ``key: value`` of ``items`` in one transaction; none when one is invalid."""
        encoded = _encode_items(items)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", encoded.items())
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (_check_key(key),)).fetchone()
        return default if row is None else json.loads(row[0])

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""
        with self._lock:
            return self._db.execute("DELETE FROM kv WHERE key = ?", (_check_key(key),)).rowcount > 0

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        """Number of keys."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM kv").fetchone()[0])

    def save(self, path: str) -> None:
        """Copy the database to ``path`` (SQLite backup API, then an atomic rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        with self._lock:
            copy = sqlite3.connect(str(tmp))
            try:
                self._db.backup(copy)
            finally:
                copy.close()
        tmp.replace(target)

    def load(self, path: str) -> None:
        """Replace the contents with a database written by :meth:`save`, whole or not at all.

        The snapshot is checked (``PRAGMA integrity_check`` and a read of every row) before it
        replaces anything, so a file cut short raises ``ValueError`` and leaves the store as it was.
        """
        if not Path(path).exists():
            msg = f"load: {path} does not exist"
            raise FileNotFoundError(msg)
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                (verdict,) = source.execute("PRAGMA integrity_check").fetchone()
                if verdict != "ok":
                    raise sqlite3.DatabaseError(verdict)
                source.execute("SELECT count(*), sum(length(key)), sum(length(value)) FROM kv").fetchall()
                with self._lock:
                    source.backup(self._db)
            finally:
                source.close()
        except sqlite3.DatabaseError as exc:
            msg = f"load: {path} is not a whole SQLite key-value store ({exc})"
            raise ValueError(msg) from exc

    def close(self) -> None:
        """Close the database. Idempotent."""
        if not self._closed:
            self._closed = True
            with self._lock:
                self._db.close()


def _require_cpu(name: str, device: str) -> None:
    if not str(device).startswith(("cpu", "auto")):
        msg = f"the {name} key-value store runs on cpu only, not {device!r}; set device: cpu (or auto)"
        raise BackendUnavailable(msg)


def _check_key(key: str) -> str:
    if not isinstance(key, str):
        msg = f"keys must be strings, got {type(key).__name__} {key!r}"
        raise ValueError(msg)
    return key


def _encode_items(items: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(items, Mapping):
        msg = f"put_many: items must be a mapping of key to value, got {type(items).__name__}"
        raise ValueError(msg)
    return {_check_key(key): _encode(key, value, "put_many") for key, value in items.items()}


def _encode(key: str, value: Any, method: str = "put") -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = f"{method}: the value of key {key!r} must be JSON-serialisable ({exc})"
        raise ValueError(msg) from exc


__all__ = ["MemoryKVOptions", "MemoryKVStore", "SQLiteKVOptions", "SQLiteKVStore", "sage_backends"]
