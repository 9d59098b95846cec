"""The write operations of a memory, applied to its three stores in one fixed order.

Each change is an *operation*: a plain dict that is appended to the journal before it is applied, and
applied by the same code when the journal is replayed after a restart, so a live write and a replayed
one leave the stores identical. Operations are idempotent (upserts, deletes of absent ids are no-ops),
which is what makes replaying a journal over a snapshot safe.

* ``{"op": "store", "records": [MemoryRecord, ...], "vectors": matrix}``
* ``{"op": "update", "record": MemoryRecord, "vector": matrix | None}``
* ``{"op": "delete", "ids": [...]}``
* ``{"op": "link", "a": id, "b": id, "relation": str}``
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sage_memory.journal import decode_vectors, encode_vectors
from sage_memory.records import KEY_PREFIX, MemoryRecord
from sage_memory.stores import MemoryStores


class SessionIndex:
    """Which memory ids each session owns, in insertion order (rebuilt from the KV store on load)."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, None]] = {}
        self.owner: dict[str, str] = {}

    def add(self, memory_id: str, session_id: str) -> None:
        """Record that ``session_id`` owns ``memory_id``."""
        self.sessions.setdefault(session_id, {})[memory_id] = None
        self.owner[memory_id] = session_id

    def remove(self, memory_id: str) -> None:
        """Forget ``memory_id`` (no-op when unknown)."""
        session_id = self.owner.pop(memory_id, None)
        if session_id is None:
            return
        ids = self.sessions[session_id]
        ids.pop(memory_id, None)
        if not ids:
            del self.sessions[session_id]

    def ids(self, session_id: str) -> list[str]:
        """The ids a session owns, oldest first."""
        return list(self.sessions.get(session_id, ()))

    def size(self, session_id: str) -> int:
        """How many memories a session owns."""
        return len(self.sessions.get(session_id, ()))

    def rebuild(self, stores: MemoryStores) -> None:
        """Read every memory's session from the KV store."""
        self.sessions.clear()
        self.owner.clear()
        for key in stores.kv.keys(KEY_PREFIX):
            value = stores.kv.get(key)
            if value is not None:
                self.add(key[len(KEY_PREFIX) :], value["session_id"])


class OperationApplier:
    """Applies operations to the stores (KV first, then vector, then graph) and the session index."""

    def __init__(self, stores: MemoryStores, index: SessionIndex) -> None:
        self.stores = stores
        self.index = index

    def apply(self, operation: dict[str, Any]) -> None:
        """Apply one operation (live or replayed)."""
        handler = getattr(self, "_apply_" + operation["op"], None)
        if handler is None:
            msg = f"memory journal holds an unknown operation {operation['op']!r}; was it written by a newer sage-memory?"
            raise ValueError(msg)
        handler(operation)

    def _apply_store(self, operation: dict[str, Any]) -> None:
        records: list[MemoryRecord] = operation["records"]
        ids = [r.id for r in records]
        self._put_records(records)
        try:
            self.stores.vector.upsert(operation["vectors"], ids=ids, metadata=[r.vector_metadata() for r in records])
            self.stores.saw_vectors(operation["vectors"])
            for record in records:
                self.stores.graph.add_node(record.id, session_id=record.session_id)
        except BaseException:
            self._apply_delete({"ids": ids})
            raise
        for record in records:
            self.index.add(record.id, record.session_id)

    def _apply_update(self, operation: dict[str, Any]) -> None:
        record: MemoryRecord = operation["record"]
        if operation.get("vector") is not None:
            vector = np.asarray(operation["vector"], dtype=np.float32).reshape(1, -1)
            self.stores.vector.upsert(vector, ids=[record.id], metadata=[record.vector_metadata()])
        self.stores.kv.put(record.key, record.to_value())

    def _apply_delete(self, operation: dict[str, Any]) -> None:
        ids = list(operation["ids"])
        for memory_id in ids:
            self.stores.kv.delete(KEY_PREFIX + memory_id)
        if ids:
            self.stores.vector.delete(ids)
        for memory_id in ids:
            self.stores.graph.remove_node(memory_id)
            self.index.remove(memory_id)

    def _apply_link(self, operation: dict[str, Any]) -> None:
        self.stores.graph.add_edge(operation["a"], operation["b"], relation=operation["relation"])

    def _put_records(self, records: list[MemoryRecord]) -> None:
        put_many = getattr(self.stores.kv, "put_many", None)
        if put_many is not None:
            put_many({r.key: r.to_value() for r in records})
            return
        for record in records:
            self.stores.kv.put(record.key, record.to_value())


def store_operation(records: list[MemoryRecord], vectors: np.ndarray) -> dict[str, Any]:
    """The operation storing ``records`` with one vector row each."""
    return {"op": "store", "records": records, "vectors": vectors}


def update_operation(record: MemoryRecord, vector: np.ndarray | None) -> dict[str, Any]:
    """The operation replacing a record (and its vector when the content changed)."""
    return {"op": "update", "record": record, "vector": vector}


def to_journal(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation as JSON-serialisable data: records as dicts, vectors base64-encoded."""
    encoded = dict(operation)
    if "records" in encoded:
        encoded["records"] = [r.to_dict() for r in encoded["records"]]
    if "record" in encoded:
        encoded["record"] = encoded["record"].to_dict()
    for field in ("vectors", "vector"):
        if encoded.get(field) is not None:
            encoded[field] = encode_vectors(encoded[field])
    return encoded


def from_journal(entry: dict[str, Any]) -> dict[str, Any]:
    """The operation a journal entry holds (the inverse of :func:`to_journal`)."""
    operation = dict(entry)
    if "records" in operation:
        operation["records"] = [MemoryRecord(**value) for value in operation["records"]]
    if "record" in operation:
        operation["record"] = MemoryRecord(**operation["record"])
    for field in ("vectors", "vector"):
        if operation.get(field) is not None:
            operation[field] = decode_vectors(operation[field])
    return operation
