"""One memory as it is kept in the KV store, and the checks applied to what callers pass in."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

KEY_PREFIX = "memory:"
"""KV keys of memories are ``memory:<id>``; the rest of the key space stays free for other users."""


@dataclass(frozen=True)
class MemoryRecord:
    """A memory's content, owner session, type, metadata and timestamps (seconds since the epoch)."""

    id: str
    content: str
    session_id: str
    memory_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def key(self) -> str:
        """The KV key holding this record."""
        return KEY_PREFIX + self.id

    def to_value(self) -> dict[str, Any]:
        """The JSON-serialisable value stored in the KV store."""
        return {
            "content": self.content,
            "session_id": self.session_id,
            "memory_type": self.memory_type,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, the id included (the journal's form of a record)."""
        return {"id": self.id, **self.to_value()}

    @classmethod
    def from_value(cls, memory_id: str, value: Mapping[str, Any]) -> "MemoryRecord":
        """Rebuild a record from what :meth:`to_value` stored."""
        return cls(id=memory_id, **value)

    def vector_metadata(self) -> dict[str, Any]:
        """What the vector store keeps beside the vector: enough to filter by session and type."""
        return {"session_id": self.session_id, "memory_type": self.memory_type}

    def changed(self, content: str | None, metadata: Mapping[str, Any] | None, now: float) -> "MemoryRecord":
        """A copy with new content and/or metadata and a fresh ``updated_at``."""
        return replace(
            self,
            content=self.content if content is None else content,
            metadata=self.metadata if metadata is None else dict(metadata),
            updated_at=now,
        )

    def as_result(self, score: float | None = None) -> dict[str, Any]:
        """The dict returned to callers (``score`` only for retrieval results)."""
        result: dict[str, Any] = {"id": self.id}
        if score is not None:
            result["score"] = float(score)
        result.update(
            content=self.content,
            metadata=dict(self.metadata),
            memory_type=self.memory_type,
            session_id=self.session_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return result


def check_text(method: str, name: str, value: Any) -> str:
    """``value`` if it is a string, else a ``ValueError`` naming the method and argument."""
    if not isinstance(value, str):
        msg = f"memory_service.{method}: {name} must be a str, got {type(value).__name__}"
        raise ValueError(msg)
    return value


def check_metadata(method: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict copy of ``metadata`` after checking it is a JSON-serialisable mapping."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        msg = f"memory_service.{method}: metadata must be a mapping, got {type(metadata).__name__}"
        raise ValueError(msg)
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        msg = f"memory_service.{method}: metadata must be JSON-serialisable ({exc})"
        raise ValueError(msg) from exc
    return dict(metadata)


def check_vectors(method: str, vectors: Any, rows: int, dim: int | None) -> np.ndarray:
    """A C-contiguous float32 matrix of ``rows`` finite vectors of dimension ``dim`` (when known)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.shape[1] == 0:
        msg = f"memory_service.{method}: expected {rows} vector(s), got an array of shape {np.shape(vectors)}"
        raise ValueError(msg)
    if dim is not None and matrix.shape[1] != dim:
        msg = (
            f"memory_service.{method}: vector has dimension {matrix.shape[1]}, the memory's vectors have {dim} "
            "(pass vectors of that size, or configure the embedder / vector.options.dim to match)"
        )
        raise ValueError(msg)
    if not np.isfinite(matrix).all():
        msg = f"memory_service.{method}: vector contains NaN or infinity"
        raise ValueError(msg)
    return np.ascontiguousarray(matrix)


def check_time_range(time_range: Any) -> tuple[float, float] | None:
    """``(start, end)`` as floats, or ``None``; ``start > end`` is an error."""
    if time_range is None:
        return None
    try:
        start, end = (float(t) for t in time_range)
    except (TypeError, ValueError) as exc:
        msg = f"memory_service.retrieve_memories: time_range must be (start, end) timestamps, got {time_range!r}"
        raise ValueError(msg) from exc
    if math.isnan(start) or math.isnan(end) or start > end:
        msg = f"memory_service.retrieve_memories: time_range {time_range!r} must satisfy start <= end"
        raise ValueError(msg)
    return start, end


def new_ids(ids: Sequence[str] | None, count: int) -> list[str]:
    """``count`` random ids, or the caller's ``ids`` after checking they are distinct non-empty strings."""
    if ids is None:
        return [uuid.uuid4().hex for _ in range(count)]
    ids = [check_text("store_memories", "memory id", memory_id) for memory_id in ids]
    if len(ids) != count or len(set(ids)) != count or not all(ids):
        msg = f"memory_service.store_memories: need {count} distinct non-empty ids, got {ids[:5]}"
        raise ValueError(msg)
    return ids
