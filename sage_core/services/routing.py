"""Routing inside one backend of a service: replicas share load, shards split data.

* :class:`ReplicaSet`: copies of one shard. Reads go to the usable replica with the fewest calls
  in flight (ties rotate); writes go to every usable replica (they hold the same data) and a
  replica whose write failed while another's succeeded is marked stale (no more reads).
* :class:`BackendGroup`: one backend of a service's chain, ``shards`` replica sets. With one shard
  every call goes straight through. With several, the service kind's ``sharding`` rule for the
  method (:mod:`sage_core.plugins.sharding`) splits the call into parts, one per shard it
  concerns, and merges their answers.
"""

from __future__ import annotations

import inspect
import itertools
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sage_core.errors import ConfigError, ServiceClosed
from sage_core.services.replica import Replica, StreamIterator

if TYPE_CHECKING:
    from sage_core.plugins.specs import ServiceKind


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
    """One backend of a service's chain: its label, its kind (``None`` for a bare factory) and shards of replicas."""

    def __init__(self, label: str, kind: ServiceKind | None, shards: list[ReplicaSet]) -> None:
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
        sharding = self.kind.sharding if self.kind is not None else {}
        rule = sharding.get(method)
        if rule is None:
            return failed(self._unsharded(method, sharding))
        try:
            arguments = self.bind(method, args, kwargs)
            parts = rule.split(arguments, len(self.shards))
        except Exception as exc:
            return failed(exc)
        futures = [self.shards[part.shard].call(method, (), part.arguments, write) for part in parts]
        return combine(futures, lambda answers: rule.merge(answers, parts, arguments))

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> StreamIterator:
        """Start a streaming call on the least-loaded replica of the first shard."""
        replica = self.shards[0].pick()
        if replica is None:
            msg = f"{self.label}: no usable replica"
            raise RuntimeError(msg)
        return replica.open_stream(method, args, kwargs, timeout)

    def bind(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in, bound to the backend method's signature."""
        signature = self._signatures.get(method)
        if signature is None:
            replica = next((r for r in self.replicas if r.state == "ready"), None)
            if replica is None:
                msg = f"{self.label}: no ready replica to read {method}()'s signature from"
                raise RuntimeError(msg)
            signature = self._signatures[method] = inspect.signature(getattr(replica.backend, method))
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _unsharded(self, method: str, sharding: Any) -> ConfigError:
        kind = self.kind.name if self.kind is not None else None
        msg = (
            f"kind {kind!r} has no sharding rule for {method}(), so it cannot run on {len(self.shards)} shards; "
            f"methods that shard: {', '.join(sorted(sharding)) or 'none'} "
            f"(call {method}() on a service without shards, or give the kind a rule in ServiceKind(sharding=...))"
        )
        return ConfigError(msg)


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

    if futures:
        when_all(futures, all_done)
    else:  # nothing to wait for: merge no answers now
        all_done()
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


__all__ = ["BackendGroup", "ReplicaSet", "combine", "failed", "first_success", "when_all"]
