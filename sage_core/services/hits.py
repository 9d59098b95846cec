"""Search results held as columns: :class:`HitBatch` (one row per query) and :class:`Hits` (one row).

A vector store answers a batch of queries with a few numpy arrays (ids, scores, metadata); turning
them into one :class:`~sage_core.services.contracts.Hit` object per result cost up to five times the
search itself at GPU speeds (an object, its ``__dict__`` and a metadata copy per hit, and the
garbage collector walking them all). These classes keep the arrays and read as what ``search``
always returned:

* a :class:`HitBatch` reads as ``list[list[Hit]]``: ``len``, indexing (a :class:`Hits`), slicing
  (a :class:`HitBatch` view, which is how the batching layer splits a stacked call among callers),
  iteration, ``==`` with nested lists of hits;
* a :class:`Hits` reads as ``list[Hit]``: ``len``, indexing, slicing (a list), iteration, ``in``,
  ``+``, ``==`` with a list of hits, ``repr``. Its ``Hit`` objects are made together at the first
  read and kept, so ``hits[0] is hits[0]``; each gets its own copy of the stored metadata, as before.
  ``hits.ids`` and ``hits.scores`` read the columns without making any ``Hit``.

Both pickle as their own rows only (a process replica or Ray sends the columns, not objects per hit).
They are read-only: ``list(hits)`` gives a list to sort or extend.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence, overload

import numpy as np

from sage_core.services.contracts import Hit
from sage_core.services.vector_inputs import copy_metadata


class HitBatch(Sequence["Hits"]):
    """The hits of a batch of queries: ``ids``, ``scores`` and ``metadata`` of shape ``(queries, k)``.

    Row ``r`` holds ``counts[r]`` hits, best first; the slots after them are padding and never read.
    ``metadata`` holds the store's own dicts (or ``None`` for ``{}``); they are copied when a hit is
    read, so a store must replace an entry's dict, never change it in place, once it was returned.
    """

    __slots__ = ("ids", "scores", "metadata", "counts")

    def __init__(self, ids: np.ndarray, scores: np.ndarray, metadata: np.ndarray, counts: np.ndarray) -> None:
        self.ids = ids
        self.scores = scores
        self.metadata = metadata
        self.counts = counts

    @classmethod
    def from_rows(cls, rows: np.ndarray, scores: np.ndarray, ids: np.ndarray, metadata: np.ndarray) -> "HitBatch":
        """A batch from a store's result: ``rows`` (queries, k) index the object columns ``ids`` and
        ``metadata``; a row ends at its first -1 (FAISS's "no match", which pads the end)."""
        missing = rows < 0
        first_missing = missing.argmax(axis=1) if rows.shape[1] else 0
        counts = np.where(missing.any(axis=1), first_missing, rows.shape[1])
        return cls(ids[rows], scores, metadata[rows], counts)

    @classmethod
    def empty(cls, queries: int) -> "HitBatch":
        """``queries`` rows of no hits."""
        none = np.empty((queries, 0), dtype=object)
        return cls(none, np.empty((queries, 0), dtype=np.float32), none, np.zeros(queries, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.counts)

    @overload
    def __getitem__(self, index: int) -> "Hits": ...

    @overload
    def __getitem__(self, index: slice) -> "HitBatch": ...

    def __getitem__(self, index: int | slice) -> "Hits | HitBatch":
        if isinstance(index, slice):
            return HitBatch(self.ids[index], self.scores[index], self.metadata[index], self.counts[index])
        rows = len(self.counts)
        row = index + rows if -rows <= index < 0 else index
        if not 0 <= row < rows:
            raise IndexError(f"HitBatch index {index} out of range for {rows} queries")
        return Hits(self, row)

    def __iter__(self) -> Iterator["Hits"]:
        return (Hits(self, row) for row in range(len(self.counts)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (HitBatch, list)):
            return NotImplemented
        return len(self) == len(other) and all(mine == theirs for mine, theirs in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr([list(row) for row in self])

    def __reduce__(self) -> tuple[Any, ...]:
        width = int(self.counts.max()) if len(self.counts) else 0  # padding past the longest row stays behind
        return (HitBatch, (self.ids[:, :width], self.scores[:, :width], self.metadata[:, :width], self.counts))


class Hits(Sequence[Hit]):
    """One query's hits, best first: row ``row`` of a :class:`HitBatch`, read as ``list[Hit]``."""

    __slots__ = ("_batch", "_row", "_hits")

    def __init__(self, batch: HitBatch, row: int) -> None:
        self._batch = batch
        self._row = row
        self._hits: list[Hit] | None = None

    @property
    def ids(self) -> list[str]:
        """The ids, best first, without making ``Hit`` objects."""
        return self._batch.ids[self._row, : self._count].tolist()

    @property
    def scores(self) -> list[float]:
        """The scores, best first, without making ``Hit`` objects."""
        return self._batch.scores[self._row, : self._count].tolist()

    @property
    def _count(self) -> int:
        return int(self._batch.counts[self._row])

    def _list(self) -> list[Hit]:
        hits = self._hits
        if hits is None:
            batch, row, count = self._batch, self._row, self._count
            metadata = batch.metadata[row, :count].tolist()
            hits = self._hits = [
                make_hit(item, score, copy_metadata(entry))
                for item, score, entry in zip(batch.ids[row, :count].tolist(), batch.scores[row, :count].tolist(), metadata)
            ]
        return hits

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Hit: ...

    @overload
    def __getitem__(self, index: slice) -> list[Hit]: ...

    def __getitem__(self, index: int | slice) -> Hit | list[Hit]:
        return self._list()[index]

    def __iter__(self) -> Iterator[Hit]:
        return iter(self._list())

    def __reversed__(self) -> Iterator[Hit]:
        return reversed(self._list())

    def __contains__(self, value: object) -> bool:
        return value in self._list()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Hits):
            return self._list() == other._list()
        if isinstance(other, list):
            return self._list() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[Hit]) -> list[Hit]:
        return self._list() + list(other)

    def __radd__(self, other: Sequence[Hit]) -> list[Hit]:
        return list(other) + self._list()

    def __repr__(self) -> str:
        return repr(self._list())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Hits, (self._batch[self._row : self._row + 1], 0))


def object_column(items: Sequence[Any]) -> np.ndarray:
    """``items`` as a 1-D numpy object array holding the very same objects (dicts stay dicts)."""
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


def _hit_maker() -> Any:
    """``Hit(id, score, metadata)`` built without the frozen dataclass's ``__init__``.

    That ``__init__`` sets each field through ``object.__setattr__``; filling the instance's
    ``__dict__`` makes the same object in about half the time. Falls back to ``Hit`` itself should
    ``Hit`` ever stop being a plain dataclass of (id, score, metadata).
    """
    probe = Hit("", 0.0, {})
    if not hasattr(probe, "__dict__") or list(vars(probe)) != ["id", "score", "metadata"]:
        return Hit
    new = object.__new__

    def make(id: str, score: float, metadata: dict[str, Any]) -> Hit:
        hit = new(Hit)
        hit.__dict__.update(id=id, score=score, metadata=metadata)
        return hit

    return make


make_hit = _hit_maker()
"""``make_hit(id, score, metadata)``: equal to ``Hit(id, score, metadata)``, built faster."""


__all__ = ["HitBatch", "Hits", "make_hit", "object_column"]
