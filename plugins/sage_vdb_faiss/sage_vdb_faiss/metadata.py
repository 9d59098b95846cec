"""Which rows match a metadata filter, answered from an inverted index kept beside the vectors.

A filter ``{"source": "a.txt", "lang": ["en", "fr"]}`` matches rows whose ``source`` equals
``"a.txt"`` and whose ``lang`` is one of ``"en"``/``"fr"``; a row without the key never matches.
Values compare with Python equality (``1 == 1.0 == True``, as the built-in numpy store does). Hashable values (str, numbers, bool, None) are looked up in postings; other values (lists,
dicts) are compared one by one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

import numpy as np


class MetadataIndex:
    """Postings ``field -> value -> rows`` for equality filters over row metadata."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[Any, set[int]]] = defaultdict(lambda: defaultdict(set))
        self._unhashable: dict[str, dict[int, Any]] = defaultdict(dict)

    def add(self, row: int, metadata: Mapping[str, Any]) -> None:
        """Index one row's metadata."""
        for key, value in metadata.items():
            if _hashable(value):
                self._postings[key][_key(value)].add(row)
            else:
                self._unhashable[key][row] = value

    def remove(self, row: int, metadata: Mapping[str, Any]) -> None:
        """Forget one row's metadata (as it was added)."""
        for key, value in metadata.items():
            if _hashable(value):
                rows = self._postings[key].get(_key(value))
                if rows is not None:
                    rows.discard(row)
                    if not rows:
                        del self._postings[key][_key(value)]
            else:
                self._unhashable[key].pop(row, None)

    def rebuild(self, metadata: Iterable[Mapping[str, Any] | None]) -> None:
        """Index every row afresh (``None`` marks a dead row)."""
        self._postings.clear()
        self._unhashable.clear()
        for row, entry in enumerate(metadata):
            if entry is not None:
                self.add(row, entry)

    def match(self, filter: Mapping[str, Any]) -> np.ndarray:
        """Rows matching every key of ``filter``, ascending."""
        result: set[int] | None = None
        for key, wanted in filter.items():
            options = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
            rows: set[int] = set()
            for option in options:
                rows |= self._rows_equal(key, option)
            result = rows if result is None else result & rows
            if not result:
                return np.empty(0, dtype=np.int64)
        matched = np.fromiter(result or (), dtype=np.int64)
        matched.sort()
        return matched

    def _rows_equal(self, key: str, value: Any) -> set[int]:
        rows: set[int] = set()
        if _hashable(value):
            rows |= self._postings.get(key, {}).get(_key(value), set())
        rows |= {row for row, stored in self._unhashable.get(key, {}).items() if stored == value}
        return rows


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _key(value: Any) -> Any:
    """Postings key: the value itself, so equality is Python's (``1 == 1.0 == True``), as the
    built-in numpy store compares, which keeps a fallback chain answering alike."""
    return value
