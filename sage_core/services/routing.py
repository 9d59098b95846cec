"""Routing inside one backend of a service: replicas share load, shards split data.

* :class:`ReplicaSet`: copies of one shard. Reads go to the usable replica with the fewest calls
  in flight (ties rotate); writes go to every usable replica (they hold the same data) and a
  replica whose write failed while another's succeeded is marked stale (no more reads).
* :class:`BackendGroup`: one backend of a service's chain, ``shards`` replica sets. With one shard
  every call goes straight through. With several, :data:`SHARD_RULES` says per kind and method
  how a call is split: by a stable CRC-32 hash of each id (``add``, ``upsert``, ``get``,
  ``delete``) or key (``put``, ``get``, ``delete``), or fanned out to every shard and merged
  (``search`` keeps the exact top-k of the union, ``count`` sums, ``keys`` merges sorted;
  ``save``/``load`` use one file per shard, ``PATH.shardI-of-N``).
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import threading
import zlib
from concurrent.futures import Future
from typing import Any, Callable, Sequence

import numpy as np

from sage_core.errors import ServiceClosed
from sage_core.services.replica import Replica, StreamIterator


def stable_shard(key: str, shards: int) -> int:
    """The shard of ``key``: CRC-32 of its UTF-8 bytes modulo ``shards`` (same in every process)."""
    return zlib.crc32(key.encode("utf-8")) % shards


class ReplicaSet:
    """The replicas of one shard."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self._turn = itertools.count()

    def usable(self) -> list[Replica]:
        """Replicas that may serve reads."""
        return [r for r in self.replicas if r.usable]

    def pick(self) -> Replica | None:
        """The usable replica with the fewest calls in flight (rotating among equals)."""
        count = len(self.replicas)
        start = next(self._turn) % count
        best: Replica | None = None
        for offset in range(count):
            replica = self.replicas[(start + offset) % count]
            if replica.usable and (best is None or replica.in_flight < best.in_flight):
                best = replica
        return best

    def saturated(self, depth: int) -> bool:
        """Whether every usable replica has at least ``depth`` calls in flight."""
        return all(r.in_flight >= depth for r in self.usable())

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], write: bool) -> Future:
        """A read on one replica, or a write on all of them."""
        if not write:
            replica = self.pick()
            if replica is None:
                return failed(RuntimeError("no usable replica"))
            return replica.submit(method, args, kwargs)
        targets = self.usable()
        if not targets:
            return failed(RuntimeError("no usable replica"))
        if len(targets) == 1:
            return targets[0].submit(method, args, kwargs)
        futures = [r.submit(method, args, kwargs) for r in targets]
        return first_success(futures, on_lagging=lambda i: setattr(targets[i], "stale", True))


class BackendGroup:
    """One backend of a service's chain: its label, kind and shards of replicas."""

    def __init__(self, label: str, kind: str | None, shards: list[ReplicaSet]) -> None:
        self.label = label
        self.kind = kind
        self.shards = shards
        self._signatures: dict[str, inspect.Signature] = {}

    @property
    def replicas(self) -> list[Replica]:
        """Every replica of every shard."""
        return [r for shard in self.shards for r in shard.replicas]

    @property
    def usable(self) -> bool:
        """Whether every shard has a usable replica."""
        return all(any(r.usable for r in shard.replicas) for shard in self.shards)

    def saturated(self, depth: int | None) -> bool:
        """Whether some shard has ``depth`` calls in flight on every replica."""
        return depth is not None and any(shard.saturated(depth) for shard in self.shards)

    def methods(self) -> dict[str, str]:
        """Method styles of this backend (from its first ready replica)."""
        for replica in self.replicas:
            if replica.state in ("ready", "closed") and replica.methods:
                return replica.methods
        return {}

    def mark_stale(self) -> None:
        """Stop reads here: a write failed here but succeeded on another backend."""
        for replica in self.replicas:
            replica.stale = True

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], write: bool) -> Future:
        """Route one call to the right shard(s) and replica(s)."""
        if len(self.shards) == 1:
            return self.shards[0].call(method, args, kwargs, write)
        rule = SHARD_RULES.get(self.kind or "", {}).get(method)
        if rule is None:
            methods = ", ".join(sorted(SHARD_RULES.get(self.kind or "", {})))
            return failed(ValueError(f"{method}() cannot be routed across shards; sharded methods: {methods}"))
        try:
            arguments = self._bind(method, args, kwargs)
        except TypeError as exc:
            return failed(exc)
        return rule(self, method, arguments, write)

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> StreamIterator:
        """Start a streaming call on the least-loaded replica of the first shard."""
        replica = self.shards[0].pick()
        if replica is None:
            msg = f"{self.label}: no usable replica"
            raise RuntimeError(msg)
        return replica.open_stream(method, args, kwargs, timeout)

    def _bind(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        signature = self._signatures.get(method)
        if signature is None:
            replica = next(r for r in self.replicas if r.state == "ready")
            signature = self._signatures[method] = inspect.signature(getattr(replica.backend, method))
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


# ---------------------------------------------------------------------- shard rules

Rule = Callable[[BackendGroup, str, dict[str, Any], bool], Future]


def _by_ids(merge: Callable[[list[tuple[list[int], Any]], int], Any]) -> Rule:
    """Split ``ids`` (and the row-aligned ``vectors``/``metadata``) by shard; merge the parts."""

    def rule(group: BackendGroup, method: str, arguments: dict[str, Any], write: bool) -> Future:
        ids = arguments.get("ids")
        if isinstance(ids, str):
            arguments["ids"] = ids = [ids]
        if not ids or not all(isinstance(i, str) for i in ids):
            return group.shards[0].call(method, (), arguments, write)
        count = len(group.shards)
        positions: dict[int, list[int]] = {}
        for position, key in enumerate(ids):
            positions.setdefault(stable_shard(key, count), []).append(position)
        aligned = {name: arguments[name] for name in ("vectors", "metadata") if arguments.get(name) is not None}
        if isinstance(aligned.get("vectors"), np.ndarray) and aligned["vectors"].ndim == 1:
            aligned["vectors"] = aligned["vectors"].reshape(1, -1)
        parts, futures = [], []
        for shard, where in positions.items():
            sub = dict(arguments)
            sub["ids"] = [ids[p] for p in where]
            for name, value in aligned.items():
                sub[name] = value[where] if isinstance(value, np.ndarray) else [value[p] for p in where]
            parts.append(where)
            futures.append(group.shards[shard].call(method, (), sub, write))
        return combine(futures, lambda results: merge(list(zip(parts, results)), len(ids)))

    return rule


def _by_key(group: BackendGroup, method: str, arguments: dict[str, Any], write: bool) -> Future:
    key = arguments.get("key")
    shard = stable_shard(key, len(group.shards)) if isinstance(key, str) else 0
    return group.shards[shard].call(method, (), arguments, write)


def _items_by_key(group: BackendGroup, method: str, arguments: dict[str, Any], write: bool) -> Future:
    """Split ``items`` (a mapping or ``(key, value)`` pairs) by the shard of each key."""
    items = arguments.get("items") or {}
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    count = len(group.shards)
    by_shard: dict[int, list[tuple[Any, Any]]] = {}
    for key, value in pairs:
        by_shard.setdefault(stable_shard(key, count) if isinstance(key, str) else 0, []).append((key, value))
    futures = [group.shards[shard].call(method, (), {**arguments, "items": dict(part)}, write) for shard, part in by_shard.items()]
    return combine(futures, lambda results: None)


def _fan_out(merge: Callable[[list[Any], dict[str, Any]], Any]) -> Rule:
    """Send the call to every shard and merge the answers."""

    def rule(group: BackendGroup, method: str, arguments: dict[str, Any], write: bool) -> Future:
        futures = [shard.call(method, (), arguments, write) for shard in group.shards]
        return combine(futures, lambda results: merge(results, arguments))

    return rule


def _per_shard_path(group: BackendGroup, method: str, arguments: dict[str, Any], write: bool) -> Future:
    count = len(group.shards)
    futures = []
    for index, shard in enumerate(group.shards):
        sub = dict(arguments)
        sub["path"] = f"{arguments['path']}.shard{index}-of-{count}"
        futures.append(shard.call(method, (), sub, write))
    return combine(futures, lambda results: None)


def _in_order(parts: list[tuple[list[int], Any]], size: int) -> list[Any]:
    out: list[Any] = [None] * size
    for where, result in parts:
        for position, value in zip(where, result):
            out[position] = value
    return out


def _sum_parts(parts: list[tuple[list[int], Any]], size: int) -> Any:
    return sum(result for _, result in parts)


def _merge_top_k(results: list[Any], arguments: dict[str, Any]) -> Any:
    top_k = int(arguments.get("top_k") or 10)
    if np.ndim(arguments.get("query")) == 1:
        return heapq.nlargest(top_k, itertools.chain.from_iterable(results), key=lambda h: h.score)
    return [
        heapq.nlargest(top_k, itertools.chain.from_iterable(rows), key=lambda h: h.score) for rows in zip(*results)
    ]


SHARD_RULES: dict[str, dict[str, Rule]] = {
    "vdb": {
        "add": _by_ids(_in_order),
        "upsert": _by_ids(_in_order),
        "get": _by_ids(_in_order),
        "delete": _by_ids(_sum_parts),
        "search": _fan_out(_merge_top_k),
        "count": _fan_out(lambda results, _: sum(results)),
        "save": _per_shard_path,
        "load": _per_shard_path,
    },
    "kv": {
        "put": _by_key,
        "put_many": _items_by_key,
        "get": _by_key,
        "delete": _by_key,
        "keys": _fan_out(lambda results, _: sorted(itertools.chain.from_iterable(results))),
        "count": _fan_out(lambda results, _: sum(results)),
        "save": _per_shard_path,
        "load": _per_shard_path,
    },
}
"""How each method of a shardable kind is split across shards."""


# ---------------------------------------------------------------------- futures


def failed(exc: BaseException) -> Future:
    """A Future already holding ``exc``."""
    future: Future = Future()
    future.set_exception(exc)
    return future


def when_all(futures: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once, on the thread that completes the last of ``futures``."""
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        callback()

    for future in futures:
        future.add_done_callback(one_done)


def combine(futures: list[Future], merge: Callable[[list[Any]], Any]) -> Future:
    """A Future of ``merge([results])`` once all succeed; the first exception otherwise."""
    out: Future = Future()
    if len(futures) == 1:
        futures[0].add_done_callback(lambda f: _settle(out, f, merge))
        return out

    def all_done() -> None:
        for future in futures:
            if future.cancelled() or future.exception() is not None:
                _settle(out, future, merge)
                return
        try:
            out.set_result(merge([f.result() for f in futures]))
        except Exception as exc:
            out.set_exception(exc)

    when_all(futures, all_done)
    return out


def first_success(futures: list[Future], on_lagging: Callable[[int], None]) -> Future:
    """Once all are done: the first successful result; ``on_lagging(i)`` for each that failed then."""
    out: Future = Future()

    def all_done() -> None:
        ok = [i for i, f in enumerate(futures) if not f.cancelled() and f.exception() is None]
        if not ok:
            _settle(out, futures[0], lambda r: r)
            return
        for index in range(len(futures)):
            if index not in ok:
                on_lagging(index)
        out.set_result(futures[ok[0]].result())

    when_all(futures, all_done)
    return out


def _settle(out: Future, done: Future, merge: Callable[[Any], Any]) -> None:
    if done.cancelled():
        out.set_exception(ServiceClosed("the call was cancelled while the service closed"))
        return
    exc = done.exception()
    if exc is not None:
        out.set_exception(exc)
        return
    try:
        result = done.result()
        out.set_result(merge([result]) if merge is not None else result)
    except Exception as merge_exc:
        out.set_exception(merge_exc)


__all__ = ["BackendGroup", "ReplicaSet", "SHARD_RULES", "combine", "failed", "first_success", "stable_shard", "when_all"]
