"""An inverted index over row metadata that answers the ``VectorStore`` filter without a scan.

The contract's filter (:data:`sage_core.services.contracts.MetadataFilter`) is an equality filter:
``{"source": "a.txt", "lang": ["en", "fr"]}`` keeps rows whose ``source`` equals ``"a.txt"`` and
whose ``lang`` is one of ``"en"``/``"fr"``; a row without the key never matches. A vector store
keeps one :class:`MetadataIndex` beside its rows and asks it which row positions match, so every
backend that uses it filters alike, which keeps a fallback chain answering the same.

Values compare with Python equality (``1 == 1.0 == True``). Hashable values (str, numbers, bool,
None) live in postings ``field -> value -> rows``; other values (lists, dicts) are kept per row and
compared one by one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

ONE_OF_TYPES = (list, tuple, set, frozenset)
"""A filter value of one of these types means "one of its items"."""

_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_ROWS.flags.writeable = False


class MetadataIndex:
    """Row positions by metadata ``field -> value``, for the contract's equality filters.

    The owner numbers its rows (``0..n-1``, or any ints) and reports each change: :meth:`add` a
    row's metadata, :meth:`remove` it (with the metadata it was added with) before the row is
    dropped or its metadata replaced, :meth:`rebuild` after renumbering. :meth:`match` returns the
    matching rows as a sorted int64 array (shared with the index: read it, do not modify it).

    Thread safety: concurrent :meth:`match` calls are safe with each other; a change must not run
    beside any other call (guard the owner's state with a :class:`~sage_core.plugin.ReadWriteLock`, for
    example: matches under ``read()``, changes under ``write()``).
    """

    def __init__(self) -> None:
        self._postings: dict[str, dict[Any, _Posting]] = {}
        self._unhashable: dict[str, dict[int, Any]] = {}

    def add(self, row: int, metadata: Mapping[str, Any]) -> None:
        """Index one row's metadata."""
        for key, value in metadata.items():
            if _hashable(value):
                values = self._postings.setdefault(key, {})
                posting = values.get(value)
                if posting is None:
                    posting = values[value] = _Posting()
                posting.add(row)
            else:
                self._unhashable.setdefault(key, {})[row] = value

    def remove(self, row: int, metadata: Mapping[str, Any]) -> None:
        """Forget one row's metadata, as it was given to :meth:`add`."""
        for key, value in metadata.items():
            if _hashable(value):
                values = self._postings.get(key, {})
                posting = values.get(value)
                if posting is not None:
                    posting.discard(row)
                    if not posting.rows:
                        del values[value]
            else:
                self._unhashable.get(key, {}).pop(row, None)

    def rebuild(self, metadata: Iterable[Mapping[str, Any] | None]) -> None:
        """Index every row afresh: row ``i`` has the ``i``-th entry (``None`` marks a dead row)."""
        self._postings.clear()
        self._unhashable.clear()
        for row, entry in enumerate(metadata):
            if entry is not None:
                self.add(row, entry)

    def match(self, filter: Mapping[str, Any]) -> np.ndarray:
        """Rows matching every key of ``filter``, as a sorted int64 array the caller must not modify.

        An empty filter is a ``ValueError``: it matches every row, which the index cannot list
        (rows without metadata are not in it); a store searches all rows instead.
        """
        if not isinstance(filter, Mapping):
            msg = f"MetadataIndex.match: filter must be a mapping such as {{'source': 'a.txt'}}, got {type(filter).__name__}"
            raise ValueError(msg)
        if not filter:
            msg = "MetadataIndex.match: the filter is empty; search without a filter to match every row"
            raise ValueError(msg)
        per_key = []
        for key, wanted in filter.items():
            rows = self._rows_one_of(key, list(wanted) if isinstance(wanted, ONE_OF_TYPES) else [wanted])
            if not len(rows):
                return _NO_ROWS
            per_key.append(rows)
        per_key.sort(key=len)  # intersect from the most selective key
        result = per_key[0]
        for rows in per_key[1:]:
            result = np.intersect1d(result, rows, assume_unique=True)
            if not len(result):
                return _NO_ROWS
        return result

    def _rows_one_of(self, key: str, options: list[Any]) -> np.ndarray:
        """Sorted rows whose ``key`` equals one of ``options``."""
        values = self._postings.get(key, {})
        parts: list[np.ndarray] = []
        for option in options:
            posting = values.get(option) if _hashable(option) else None
            if posting is not None:
                parts.append(posting.array())
        stored = self._unhashable.get(key)
        if stored:  # an unhashable stored value may equal any option ({1} == frozenset({1}))
            scanned = [row for row, value in stored.items() if any(value == option for option in options)]
            if scanned:
                parts.append(np.array(sorted(scanned), dtype=np.int64))
        if not parts:
            return _NO_ROWS
        if len(parts) == 1:
            return parts[0]
        return np.unique(np.concatenate(parts))  # equal options (1, 1.0) give the same posting twice


class _Posting:
    """The rows holding one value of one field, with a sorted array of them built on demand."""

    __slots__ = ("rows", "_sorted")

    def __init__(self) -> None:
        self.rows: set[int] = set()
        self._sorted: np.ndarray | None = None

    def add(self, row: int) -> None:
        self.rows.add(row)
        self._sorted = None

    def discard(self, row: int) -> None:
        self.rows.discard(row)
        self._sorted = None

    def array(self) -> np.ndarray:
        """The rows sorted, read-only; kept until the next change (concurrent readers may both build it)."""
        rows = self._sorted
        if rows is None:
            rows = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))
            rows.sort()
            rows.flags.writeable = False
            self._sorted = rows
        return rows


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


__all__ = ["ONE_OF_TYPES", "MetadataIndex"]
