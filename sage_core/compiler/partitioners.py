"""How records are spread over the instances of a downstream operator.

Hash partitioning uses :func:`stable_hash`, never Python's per-process salted ``hash()``, so a key
routes to the same instance in every process and every run (local threads and Ray actors alike).

Key identity: keys equal under ``==`` reach the same instance. :func:`stable_hash` hashes a number by
its value, and a join sees its keys as Python scalars (:func:`canonical_key`), so
``3``, ``3.0``, ``True == 1``, ``numpy.int64(3)`` and ``Fraction(3)`` share an instance (and keyed
state) while ``"3"`` does not.
"""

from __future__ import annotations

import numbers
import zlib
from typing import Any, Callable, Sequence

from sage_core.compiler.logical import Partitioning


def stable_hash(key: Any) -> int:
    """A hash of ``key`` that is the same in every process (CRC-32 of a canonical encoding)."""
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, bytes):
        return zlib.crc32(key)
    if key is None:
        return zlib.crc32(b"None")
    if isinstance(key, numbers.Number):
        return zlib.crc32(_number_text(key).encode())
    if isinstance(key, tuple):
        return zlib.crc32(b"\x1f".join(str(stable_hash(part)).encode() for part in key))
    return zlib.crc32(repr(key).encode())


def _number_text(key: numbers.Number) -> str:
    """Equal numbers, equal text: integral values as ints, other reals by ``repr(float)``."""
    if isinstance(key, numbers.Integral):
        return str(int(key))
    if isinstance(key, numbers.Real):
        value = float(key)
        return str(int(value)) if value.is_integer() else repr(value)
    return repr(complex(key))  # type: ignore[arg-type]


PLAIN_KEYS = frozenset({str, int, bytes, type(None)})
"""Key types that are their own canonical form."""


def canonical_key(key: Any) -> Any:
    """``key`` with numpy scalars (also inside tuples) turned into Python scalars."""
    if type(key) in PLAIN_KEYS:
        return key
    if isinstance(key, tuple):
        return tuple(canonical_key(part) for part in key)
    item = getattr(key, "item", None)  # numpy (and other array libraries') scalars
    if item is not None and type(key).__module__.startswith("numpy") and getattr(key, "shape", None) == ():
        return item()
    return key


KEY_CACHE_SIZE = 65_536
"""Keys whose target instance is remembered per channel (hot keys skip hashing)."""

Splitter = Callable[[list], list[tuple[int, list]]]
"""Splits one batch into ``(target instance, records)`` pieces."""


def make_splitter(partitioning: Partitioning, source_instance: int, targets: int) -> Splitter:
    """A function spreading batches of one upstream instance over ``targets`` downstream instances.

    For ``HASH`` the batch holds ``(key, record)`` pairs and pieces keep the pairs.
    """
    if partitioning is Partitioning.FORWARD:
        return lambda batch: [(source_instance, batch)]
    if partitioning is Partitioning.BROADCAST:
        return lambda batch: [(i, batch) for i in range(targets)]
    if partitioning is Partitioning.ROUND_ROBIN:
        return _round_robin(source_instance, targets)
    if partitioning is Partitioning.HASH:
        return _by_key(targets)
    msg = f"unknown partitioning {partitioning!r}"
    raise ValueError(msg)


def _round_robin(start: int, targets: int) -> Splitter:
    state = {"next": start % targets}

    def split(batch: list) -> list[tuple[int, list]]:
        i = state["next"]
        state["next"] = (i + 1) % targets
        return [(i, batch)]

    return split


def _by_key(targets: int) -> Splitter:
    if targets == 1:
        return lambda batch: [(0, batch)]
    cache: dict[Any, int] = {}

    def target_of(key: Any) -> int:
        try:
            target = cache.get(key)
        except TypeError:  # an unhashable key: no caching
            return stable_hash(key) % targets
        if target is None:
            if len(cache) >= KEY_CACHE_SIZE:
                cache.clear()
            target = cache[key] = stable_hash(key) % targets
        return target

    def split(batch: list) -> list[tuple[int, list]]:
        pieces: list[list] = [[] for _ in range(targets)]
        appenders = [piece.append for piece in pieces]
        for pair in batch:
            appenders[target_of(pair[0])](pair)
        return [(i, piece) for i, piece in enumerate(pieces) if piece]

    return split


def partition_counts(keys: Sequence[Any], targets: int) -> list[int]:
    """How many of ``keys`` each of ``targets`` instances receives (for tests and tooling)."""
    counts = [0] * targets
    for key in keys:
        counts[stable_hash(key) % targets] += 1
    return counts
