"""Checks on what callers hand a store: vectors, ids, metadata and top_k.

Every check raises ``ValueError`` naming the method, what was wrong and how to fix it, before the
store changes, so bad input never leaves a store half-updated or kills the service.
"""

from __future__ import annotations

import json
import numbers
from typing import Any, Mapping, Sequence

import numpy as np


def as_matrix(values: Any, dim: int | None, where: str, name: str = "vectors") -> tuple[np.ndarray, bool]:
    """``values`` as a C-contiguous float32 matrix, and whether the caller passed one vector (1-D).

    Real-valued input of any dtype is cast to float32; a wrong dimension, NaN, inf, a non-numeric
    dtype or more than two axes is a ``ValueError``. A 2-D input with zero rows is allowed (an
    empty batch); its dimension is checked only when it has columns.
    """
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise ValueError(f"{where}: {name} must be a numeric array of shape (n, dim) or (dim,): {exc}") from None
    if array.dtype.kind not in "fiub":
        raise ValueError(
            f"{where}: {name} must hold real numbers, got dtype {array.dtype}; pass a float32 numpy array"
        )
    single = array.ndim == 1
    if single:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"{where}: {name} must be 1-D (one vector) or 2-D (a batch), got shape {array.shape}")
    if single and array.shape[1] == 0:
        raise ValueError(f"{where}: {name} is an empty vector; pass a vector of dimension {dim or 'dim'}")
    if array.shape[0] and dim is not None and array.shape[1] != dim:
        raise ValueError(
            f"{where}: {name} have dimension {array.shape[1]}, the index expects {dim} "
            f"(set by option dim or by the first vectors added)"
        )
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{where}: {name} row {bad} holds NaN or inf (converted to float32); remove or fix that row"
        )
    return matrix, single


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); returns a new array."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


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
        entry = dict(item)
        try:
            json.dumps(entry)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: metadata[{position}] is not JSON-serialisable ({exc}); store plain str, number, "
                f"bool, list or dict values"
            ) from None
        out.append(entry)
    return out


def as_top_k(top_k: Any, where: str) -> int:
    """``top_k`` as a positive int."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise ValueError(f"{where}: top_k must be a positive integer, got {top_k!r}")
    if top_k < 1:
        raise ValueError(f"{where}: top_k must be at least 1, got {top_k}")
    return int(top_k)


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
