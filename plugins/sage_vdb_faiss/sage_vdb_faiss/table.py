"""The host copy of a store's rows: vectors, string ids, metadata and which rows are alive.

Vectors are kept as the index sees them (unit length for the cosine metric) with each row's
original norm beside them, so exact scans use them directly and :meth:`VectorTable.original`
gives back what the caller stored.

Row ``r`` of the table is slot ``r`` of the FAISS index (the label FAISS returns), so a search
result maps back to its id and metadata by plain indexing: ids and metadata are numpy object
columns, and ``columns()[0][rows]`` maps a whole result in one vectorised step. A delete only marks a row dead (FAISS
graph indexes and GPU indexes cannot remove); :meth:`VectorTable.compact` drops dead rows and the
index is rebuilt from the table at the same moment.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sage_core.services.hits import object_column


class VectorTable:
    """Rows of ``(vector, id, metadata)`` with dead rows left in place until compaction."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.clear()

    def clear(self) -> None:
        """Remove every row."""
        self._rows = 0
        self._vectors = np.empty((0, self.dim), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._ids = np.empty(0, dtype=object)
        self._metadata = np.empty(0, dtype=object)
        self.row_of: dict[str, int] = {}

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The id and metadata columns (object arrays, ``None`` in dead rows), valid after the lock.

        Take them under the store's lock with a search's rows; indexing them with those rows stays
        right after the lock is let go: a row below :attr:`rows` is never changed in place (kills,
        compaction and truncation replace the arrays, appends write past the end). A row of -1
        (FAISS's "no match") indexes the last slot, a value the result's count never reaches.
        """
        return self._ids, self._metadata

    # ------------------------------------------------------------------ sizes

    @property
    def rows(self) -> int:
        """Rows in use, dead ones included (equals the index's ``ntotal`` once it is trained)."""
        return self._rows

    @property
    def live_count(self) -> int:
        """Rows holding a current id."""
        return len(self.row_of)

    @property
    def dead_count(self) -> int:
        """Rows deleted or replaced but not yet compacted away."""
        return self.rows - self.live_count

    @property
    def ids(self) -> np.ndarray:
        """Every row's id, ``None`` for a dead row (a view; do not modify)."""
        return self._ids[: self._rows]

    @property
    def metadata(self) -> np.ndarray:
        """Every row's metadata dict, ``None`` for a dead row (a view; do not modify)."""
        return self._metadata[: self._rows]

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
        start, count = self.rows, len(ids)
        self._reserve(start + count)
        self._vectors[start : start + count] = vectors
        self._norms[start : start + count] = norms
        self._alive[start : start + count] = True
        self._ids[start : start + count] = object_column(ids)
        self._metadata[start : start + count] = object_column(metadata)
        self._rows = start + count
        for offset, item in enumerate(ids):
            self.row_of[item] = start + offset
        return np.arange(start, start + count, dtype=np.int64)

    def kill(self, rows: np.ndarray) -> None:
        """Mark rows dead: their ids stop resolving, their slots stay until compaction."""
        for row in rows.tolist():
            item = self._ids[row]
            if item is not None and self.row_of.get(item) == row:
                del self.row_of[item]
        self._ids, self._metadata = self._ids.copy(), self._metadata.copy()  # see columns()
        self._ids[rows] = None
        self._metadata[rows] = None
        self._alive[rows] = False

    def compact(self) -> None:
        """Drop dead rows, renumbering live ones in their current order."""
        keep = self.live_rows()
        self._vectors = self._vectors[keep]
        self._norms = self._norms[keep]
        self._ids = self._ids[keep]
        self._metadata = self._metadata[keep]
        self._alive = np.ones(len(keep), dtype=bool)
        self._rows = len(keep)
        self.row_of = {item: row for row, item in enumerate(self._ids.tolist())}

    def truncate(self, rows: int) -> None:
        """Forget rows from ``rows`` on (undoes an append whose indexing failed)."""
        for item in self.ids[rows:].tolist():
            if item is not None and self.row_of.get(item, -1) >= rows:
                del self.row_of[item]
        self._ids, self._metadata = self._ids.copy(), self._metadata.copy()  # see columns()
        self._ids[rows:] = None
        self._metadata[rows:] = None
        self._alive[rows:] = False
        self._rows = rows

    def restore(
        self,
        vectors: np.ndarray,
        norms: np.ndarray,
        alive: np.ndarray,
        ids: Sequence[str | None],
        metadata: Sequence[dict[str, Any] | None],
    ) -> None:
        """Replace the contents with saved rows (dead rows carry ``None`` id and metadata)."""
        self._rows = len(ids)
        self._ids = object_column(ids)
        self._metadata = object_column(metadata)
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._norms = np.asarray(norms, dtype=np.float32).copy()
        self._alive = np.asarray(alive, dtype=bool).copy()
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
        ids, metadata = np.empty(new_capacity, dtype=object), np.empty(new_capacity, dtype=object)
        ids[: self.rows], metadata[: self.rows] = self.ids, self.metadata
        self._vectors, self._norms, self._alive, self._ids, self._metadata = vectors, norms, alive, ids, metadata
