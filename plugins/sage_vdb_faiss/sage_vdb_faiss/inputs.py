"""Checks on what callers hand a FAISS store beyond the shared vector checks: ids, metadata, filters.

Every check raises ``ValueError`` naming the method, what was wrong and how to fix it, before the
store changes, so bad input never leaves a store half-updated or kills the service.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
from sage_core.plugin import copy_metadata


def as_ids(ids: Any, count: int, where: str) -> list[str]:
    """``ids`` as a list of ``count`` distinct strings."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray)):
        raise ValueError(f"{where}: ids must be a list of strings, got {type(ids).__name__}")
    out = list(ids)
    if len(out) != count:
        raise ValueError(f"{where}: got {len(out)} ids for {count} vectors; pass one id per vector")
    for position, item in enumerate(out):
        if not isinstance(item, str):
            raise ValueError(
                f"{where}: ids[{position}] is {type(item).__name__} {item!r}; ids must be strings (str(id))"
            )
    seen: set[str] = set()
    for item in out:
        if item in seen:
            raise ValueError(f"{where}: id {item!r} appears twice in one call; pass each id once")
        seen.add(item)
    return out


def as_lookup_ids(ids: Any, where: str) -> list[str]:
    """Ids for get/delete: a list of strings (one bare string is accepted as a list of one)."""
    if isinstance(ids, str):
        return [ids]
    if not isinstance(ids, (Sequence, np.ndarray)) or isinstance(ids, bytes):
        raise ValueError(f"{where}: ids must be a list of strings, got {type(ids).__name__}")
    out = list(ids)
    for position, item in enumerate(out):
        if not isinstance(item, str):
            raise ValueError(f"{where}: ids[{position}] is {type(item).__name__} {item!r}; ids must be strings")
    return out


def as_metadata(metadata: Any, count: int, where: str) -> list[dict[str, Any]] | None:
    """One JSON-serialisable dict per vector (copied), or ``None`` when not given."""
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        raise ValueError(f"{where}: metadata must be a list with one dict per vector, got one dict")
    rows = list(metadata)
    if len(rows) != count:
        raise ValueError(f"{where}: got {len(rows)} metadata entries for {count} vectors; pass one per vector")
    out: list[dict[str, Any]] = []
    for position, item in enumerate(rows):
        if item is None:
            out.append({})
            continue
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: metadata[{position}] is {type(item).__name__}; each entry must be a dict")
        entry = copy_metadata(item)
        try:
            json.dumps(entry)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: metadata[{position}] is not JSON-serialisable ({exc}); store plain str, number, "
                f"bool, list or dict values"
            ) from None
        out.append(entry)
    return out


def as_filter(filter: Any, where: str) -> dict[str, Any] | None:
    """A metadata filter as a dict, ``None`` or ``{}`` meaning no filter."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise ValueError(f"{where}: filter must be a dict such as {{'source': 'a.txt'}}, got {type(filter).__name__}")
    return dict(filter) or None


def describe_error(exc: BaseException) -> str:
    """The useful last line of an exception's message (FAISS C++ errors span several lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
