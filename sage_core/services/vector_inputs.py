"""Checks on the vectors, ``top_k`` and metadata a vector-store backend receives, shared by every backend.

Each raises ``ValueError`` naming the method (``where``), what was wrong and how to fix it, so a
store refuses bad input before it changes anything.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Mapping

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
            f"{where}: {name} must hold real numbers (a numeric dtype), got dtype {array.dtype}; pass a float32 numpy array"
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
            f"{where}: {name} row {bad} holds NaN or infinity (converted to float32); remove or fix that row"
        )
    return matrix, single


def as_top_k(top_k: Any, where: str) -> int:
    """``top_k`` as a positive int."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise ValueError(f"{where}: top_k must be a positive integer, got {top_k!r}")
    if top_k < 1:
        raise ValueError(f"{where}: top_k must be at least 1, got {top_k}")
    return int(top_k)


_NESTED = frozenset({list, dict, tuple, set})


def copy_metadata(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a metadata entry that shares nothing mutable with ``entry`` (``{}`` for ``None``).

    Stores copy metadata on the way in (add, upsert) and on the way out (get, search hits), so a
    caller changing its own objects never changes what is stored. Flat entries (the common case)
    cost one ``dict()``; nested lists and dicts are copied deeply.
    """
    if not entry:
        return {}
    if _NESTED.isdisjoint(map(type, entry.values())):
        return dict(entry)
    return copy.deepcopy(dict(entry))


__all__ = ["as_matrix", "as_top_k", "copy_metadata"]
