"""The host copy of a store's rows: vectors, string ids, metadata and which rows are alive.

Vectors are kept as the index sees them (unit length for the cosine metric) with each row's
original norm beside them, so exact scans use them directly and :meth:`VectorTable.original`
gives back what the caller stored.

Row ``r`` of the table is slot ``r`` of the FAISS index (the label FAISS returns), so a search
result maps back to its id and metadata by plain indexing. A delete only marks a row dead (FAISS
graph indexes and GPU indexes cannot remove); :meth:`VectorTable.compact` drops dead rows and the
index is rebuilt from the table at the same moment.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class VectorTable:
    """Rows of ``(vector, id, metadata)`` with dead rows left in place until compaction."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.clear()

    def clear(self) -> None:
        """Remove every row."""
        self._id_array: np.ndarray | None = None
        self._vectors = np.empty((0, self.dim), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self.ids: list[str | None] = []
        self.metadata: list[dict[str, Any] | None] = []
        self.row_of: dict[str, int] = {}

    def id_lookup(self) -> np.ndarray:
        """The ids by row as a numpy object array, cached, with one ``None`` past the last row.

        ``id_lookup()[rows]`` turns a FAISS result into ids in one vectorised step: a dead row and
        FAISS's ``-1`` (no match; it indexes the trailing slot) both give ``None``. Changes to the
        table replace the array, so one taken under the store's lock stays valid after it.
        """
        if self._id_array is None:
            self._id_array = np.array(self.ids + [None], dtype=object)
        return self._id_array

    # ------------------------------------------------------------------ sizes

    @property
    def rows(self) -> int:
        """Rows in use, dead ones included (equals the index's ``ntotal`` once it is trained)."""
        return len(self.ids)

    @property
    def live_count(self) -> int:
        """Rows holding a current id."""
        return len(self.row_of)

    @property
    def dead_count(self) -> int:
        """Rows deleted or replaced but not yet compacted away."""
        return self.rows - self.live_count

    @property
    def vectors(self) -> np.ndarray:
        """Every row's vector, dead rows included (a view; do not modify)."""
        return self._vectors[: self.rows]

    @property
    def alive(self) -> np.ndarray:
        """A boolean mask over rows (a view; do not modify)."""
        return self._alive[: self.rows]

    @property
    def norms(self) -> np.ndarray:
        """Per row, the factor that turns the stored vector back into the original (a view)."""
        return self._norms[: self.rows]

    def original(self, row: int) -> np.ndarray:
        """The vector as the caller stored it (a copy)."""
        return self._vectors[row] * self._norms[row]

    def live_rows(self) -> np.ndarray:
        """Row numbers of live rows, ascending."""
        return np.flatnonzero(self.alive)

    # ------------------------------------------------------------------ changes

    def append(
        self, vectors: np.ndarray, norms: np.ndarray, ids: list[str], metadata: list[dict[str, Any]]
    ) -> np.ndarray:
        """Add rows (index-space vectors and their norm factors); returns their row numbers.

        An id that is already live is re-pointed to the new row; the caller kills the old one.
        """
        self._id_array: np.ndarray | None = None
        start, count = self.rows, len(ids)
        self._reserve(start + count)
        self._vectors[start : start + count] = vectors
        self._norms[start : start + count] = norms
        self._alive[start : start + count] = True
        self.ids.extend(ids)
        self.metadata.extend(metadata)
        for offset, item in enumerate(ids):
            self.row_of[item] = start + offset
        return np.arange(start, start + count, dtype=np.int64)

    def kill(self, rows: np.ndarray) -> None:
        """Mark rows dead: their ids stop resolving, their slots stay until compaction."""
        self._id_array: np.ndarray | None = None
        for row in rows.tolist():
            item = self.ids[row]
            if item is not None and self.row_of.get(item) == row:
                del self.row_of[item]
            self.ids[row] = None
            self.metadata[row] = None
        self._alive[rows] = False

    def compact(self) -> None:
        """Drop dead rows, renumbering live ones in their current order."""
        self._id_array: np.ndarray | None = None
        keep = self.live_rows()
        vectors = self._vectors[keep]
        self._norms = self._norms[keep]
        self.ids = [self.ids[row] for row in keep.tolist()]
        self.metadata = [self.metadata[row] for row in keep.tolist()]
        self._vectors = vectors
        self._alive = np.ones(len(keep), dtype=bool)
        self.row_of = {item: row for row, item in enumerate(self.ids)}  # type: ignore[misc]

    def truncate(self, rows: int) -> None:
        """Forget rows from ``rows`` on (undoes an append whose indexing failed)."""
        self._id_array: np.ndarray | None = None
        for item in self.ids[rows:]:
            if item is not None and self.row_of.get(item, -1) >= rows:
                del self.row_of[item]
        del self.ids[rows:]
        del self.metadata[rows:]
        self._alive[rows:] = False

    def restore(
        self,
        vectors: np.ndarray,
        norms: np.ndarray,
        alive: np.ndarray,
        ids: list[str | None],
        metadata: list[dict[str, Any] | None],
    ) -> None:
        """Replace the contents with saved rows (dead rows carry ``None`` id and metadata)."""
        self._id_array: np.ndarray | None = None
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._norms = np.asarray(norms, dtype=np.float32).copy()
        self._alive = np.asarray(alive, dtype=bool).copy()
        self.ids = list(ids)
        self.metadata = list(metadata)
        self.row_of = {item: row for row, item in enumerate(ids) if item is not None}

    # ------------------------------------------------------------------ helpers

    def _reserve(self, needed: int) -> None:
        capacity = len(self._vectors)
        if needed <= capacity:
            return
        new_capacity = max(needed, int(capacity * 1.5), 64)
        vectors = np.empty((new_capacity, self.dim), dtype=np.float32)
        vectors[: self.rows] = self._vectors[: self.rows]
        norms = np.empty(new_capacity, dtype=np.float32)
        norms[: self.rows] = self._norms[: self.rows]
        alive = np.zeros(new_capacity, dtype=bool)
        alive[: self.rows] = self._alive[: self.rows]
        self._vectors, self._norms, self._alive = vectors, norms, alive
