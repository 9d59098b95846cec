"""One named service: its tiers of backends (primary, then fallbacks), timeouts and counters.

Reads go to the first usable tier that is not saturated; when it raises or takes
longer than ``timeout_s``, the next one serves, so every caller gets an answer as long as one
backend can give it. Writes (the kind's ``write_methods``) go to every usable backend so that a
fallback holds the same data; a backend whose write failed or timed out while another's
succeeded is marked stale and serves no more reads. A backend whose creation raises anything is
skipped, and the failure kept for the metrics (:mod:`~sage_core.services.start_failures`). Each
call ends as a result or a :class:`ServiceError` naming service, method, backend and cause.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from sage_core.errors import ConfigError, ServiceClosed, ServiceError, ServiceTimeout
from sage_core.plugins.manager import PluginManager
from sage_core.services.tiers import ReplicaFactory, Tier, build_tiers
from sage_core.services.config import ServiceConfig
from sage_core.services.deadlines import DeadlineScheduler
from sage_core.services.futures import failed, when_all
from sage_core.services.start_failures import (
    StartFailure,
    collect_start_failures,
    no_backend_error,
)
from sage_core.services.streams import StreamIterator

log = logging.getLogger("sage.services")

DEFAULT = object()
"""Marker for "use the service's configured timeout"."""


class StartOnce(ABC):
    """The lifecycle a service shares locally and on Ray: ``new``, then ``started`` or ``failed``, then ``closed``.

    Subclasses set ``name``, ``_state`` and ``_start_error`` and define ``begin_start`` (ask every
    replica to start; Futures) and ``finish_start`` (wait for them and set the state).
    """

    name: str
    _state: str = "new"
    _start_error: BaseException | None = None

    @abstractmethod
    def begin_start(self) -> list[Future]:
        """Ask the backends to start; Futures to hand to :meth:`finish_start`."""

    @abstractmethod
    def finish_start(self, futures: list[Future]) -> None:
        """Wait for :meth:`begin_start`'s Futures; raise :class:`ServiceError` when the service cannot serve."""

    def ensure_started(self) -> None:
        """Start now unless already started (calls may arrive before the manager's start())."""
        if self._state != "started":
            if self._state == "new":
                self.finish_start(self.begin_start())
            self._raise_if_unstarted()

    def _refused(self) -> Future | None:
        """A failed Future for a call when the service cannot start (starting it if new), else ``None``."""
        if self._state == "started":
            return None
        try:
            self.ensure_started()
        except (ServiceError, ConfigError) as exc:
            return failed(exc)
        return None

    def _raise_if_unstarted(self) -> None:
        if self._state == "closed":
            raise ServiceClosed(f"service {self.name!r} is closed", service=self.name)
        if self._state == "failed":
            exc = self._start_error
            if isinstance(exc, (ServiceError, ConfigError)):  # a factory's ConfigError names the key path: as is
                raise exc
            msg = f"service {self.name!r} failed to start: {type(exc).__name__}: {exc}"
            raise ServiceError(msg, service=self.name, cause=exc) from exc


class Service(StartOnce):
    """A registered service and its running backends."""

    def __init__(
        self,
        name: str,
        config: ServiceConfig,
        plugins: PluginManager,
        *,
        job_name: str,
        deadlines: DeadlineScheduler,
        make_replica: ReplicaFactory | None = None,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        """``services`` is the table a backend factory declaring ``services`` receives (see :mod:`~sage_core.services.dependencies`)."""
        self.name = name
        self.config = config
        self.kind = config.kind
        kind = plugins.kinds().get(config.kind) if config.kind else None
        self.write_methods = frozenset(kind.write_methods) if kind else frozenset()
        self.methods: dict[str, str] = {}
        self._deadlines = deadlines
        self.tiers = build_tiers(name, config, plugins, job_name, make_replica, services)
        copies = sum(len(g.replicas) for g in self.tiers)
        rules = kind.sharding if kind is not None and copies > 1 else {}
        self._key_assigners = {method: rule.assign_keys for method, rule in rules.items() if rule.assign_keys}
        self._state = "new"  # new | started | failed | closed
        self._start_error: BaseException | None = None
        self.start_failures: list[StartFailure] = []
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.calls = self.errors = self.timeouts = self.in_flight = 0
        self.fallback_calls = self.saturated_skips = 0
        self.served_by = {group.label: 0 for group in self.tiers}
        self._latencies: deque[float] = deque(maxlen=4096)

    # ------------------------------------------------------------------ lifecycle

    def begin_start(self) -> list[Future]:
        """Ask every replica to create its backend (on its own worker thread)."""
        return [replica.start() for group in self.tiers for replica in group.replicas]

    def finish_start(self, futures: list[Future]) -> None:
        """Wait for the replicas; raise :class:`ServiceError` naming every backend tried when none can serve."""
        with self._start_lock:
            if self._state != "new":
                self._raise_if_unstarted()
                return
            self.start_failures = collect_start_failures(self.name, self.tiers, futures)
            if not any(group.usable for group in self.tiers):
                self._start_error = no_backend_error(self.name, self.start_failures)
                self._state = "failed"
                self._raise_if_unstarted()
            self.methods = next(g.methods() for g in self.tiers if g.usable)
            self._state = "started"

    def close(self) -> None:
        """Finish queued calls and close every backend once. Idempotent."""
        with self._start_lock:
            if self._state == "closed":
                return
            self._state = "closed"
        for group in self.tiers:
            for replica in group.replicas:
                replica.close()

    # ------------------------------------------------------------------ calls

    def is_stream(self, method: str) -> bool:
        """Whether ``method`` yields items (a generator or async generator)."""
        return self.methods.get(method) in ("stream", "async_stream")

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Future:
        """Start one call; the Future holds the result or a :class:`ServiceError`."""
        refused = self._refused()
        if refused is not None:
            return refused
        timeout_s = self.config.timeout_s if timeout is DEFAULT else timeout
        out: Future = Future()
        started = time.perf_counter()
        with self._stats_lock:
            self.calls += 1
            self.in_flight += 1
        out.add_done_callback(lambda f: self._record(f, started))
        if method in self._key_assigners:
            args, kwargs = self._assign_keys(method, args, kwargs)
        if method in self.write_methods:
            self._write(method, args, kwargs, timeout_s, out)
        else:
            self._read(method, args, kwargs, timeout_s, out, 0, [])
        return out

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Iterator[Any]:
        """Start a streaming call; returns a blocking iterator over its items."""
        self.ensure_started()
        timeout_s = self.config.timeout_s if timeout is DEFAULT else timeout
        picked = self._pick(0)
        if picked is None:
            raise ServiceError(f"service {self.name!r}: no usable backend for {method}()", service=self.name, method=method)
        index, group = picked
        with self._stats_lock:
            self.calls += 1
            self.served_by[group.label] += 1
            self.fallback_calls += index > 0
        try:
            stream = group.open_stream(method, args, kwargs, timeout_s)
        except Exception as exc:
            raise self._error(method, [(group.label, exc)]) from exc
        return _ServiceStream(stream, self, method, group.label)

    def _read(
        self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None,
        out: Future, start: int, errors: list[tuple[str, BaseException]],
    ) -> None:
        picked = self._pick(start)
        if picked is None:
            if not errors:
                errors.append(("tiers", RuntimeError("no usable backend (all unavailable or stale)")))
            _resolve(out, exc=self._error(method, errors))
            return
        index, group = picked
        attempt = group.call(method, args, kwargs, False)
        claim = [index]  # popped by whichever settles this attempt first, its outcome or its deadline (atomic)

        def settle(exc: BaseException | None, result: Any = None) -> None:
            try:
                claim.pop()
            except IndexError:
                return
            if exc is None:
                self._served(index, group)
                _resolve(out, result=result)
            else:
                errors.append((group.label, exc))
                self._read(method, args, kwargs, timeout, out, index + 1, errors)

        def attempt_done(done: Future) -> None:
            exc = _exception(done)
            settle(exc, None if exc is not None else done.result())

        if timeout is None:
            attempt.add_done_callback(attempt_done)
            return

        def expire() -> None:
            settle(ServiceTimeout(f"{group.label} took longer than {timeout}s", service=self.name, method=method))
            attempt.cancel()  # still queued: it will not run at all

        deadline = self._deadlines.schedule(timeout, expire)
        attempt.add_done_callback(lambda done: (deadline.cancel(), attempt_done(done)))

    def _write(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None, out: Future) -> None:
        groups = [(i, g) for i, g in enumerate(self.tiers) if g.usable]
        if not groups:
            _resolve(out, exc=self._error(method, [("tiers", RuntimeError("no usable backend"))]))
            return
        attempts = [self._with_deadline(g.call(method, args, kwargs, True), timeout, g.label, method) for _, g in groups]
        def all_done() -> None:
            outcomes = [(groups[i], _exception(a), a) for i, a in enumerate(attempts)]
            succeeded = [(ig, a) for ig, exc, a in outcomes if exc is None]
            if not succeeded:
                _resolve(out, exc=self._error(method, [(ig[1].label, exc) for ig, exc, _ in outcomes]))
                return
            for (index, group), exc, _ in outcomes:
                if exc is not None:
                    log.warning("service %r: %s() failed on %s but succeeded elsewhere; %s no longer serves reads: %s",
                                self.name, method, group.label, group.label, exc)
                    group.mark_stale()
            (index, group), first = succeeded[0]
            self._served(index, group)
            _resolve(out, result=first.result())

        when_all(attempts, all_done)

    def _assign_keys(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Sequence[Any], dict[str, Any]]:
        """The call with the keys its caller left out filled in (the kind's ``assign_keys``), the same for every copy."""
        group = next((g for g in self.tiers if g.usable), None)
        if group is None:
            return args, kwargs
        try:
            arguments = group.bind(method, args, kwargs)
        except (TypeError, ValueError, AttributeError):  # a call that does not fit: the backend will say so
            return args, kwargs
        return (), self._key_assigners[method](arguments)

    def _pick(self, start: int) -> tuple[int, Tier] | None:
        if start == 0 and len(self.tiers) == 1:  # the common case: one backend, nothing to choose
            return (0, self.tiers[0]) if self.tiers[0].usable else None
        candidates = [(i, g) for i, g in enumerate(self.tiers[start:], start) if g.usable]
        if not candidates:
            return None
        depth = self.config.max_queue_depth
        if depth is not None:
            for position, (index, group) in enumerate(candidates):
                if not group.saturated(depth):
                    if position:
                        with self._stats_lock:
                            self.saturated_skips += 1
                    return index, group
        return candidates[0]

    def _with_deadline(self, future: Future, timeout: float | None, label: str, method: str) -> Future:
        if timeout is None:
            return future
        out: Future = Future()

        def expire() -> None:
            _resolve(out, exc=ServiceTimeout(f"{label} took longer than {timeout}s", service=self.name, method=method))
            future.cancel()  # still queued: it will not run at all

        deadline = self._deadlines.schedule(timeout, expire)

        def done(f: Future) -> None:
            deadline.cancel()
            exc = _exception(f)
            _resolve(out, exc=exc) if exc is not None else _resolve(out, result=f.result())

        future.add_done_callback(done)
        return out

    # ------------------------------------------------------------------ bookkeeping

    def _served(self, index: int, group: Tier) -> None:
        with self._stats_lock:
            self.served_by[group.label] += 1
            if index:
                self.fallback_calls += 1

    def _record(self, future: Future, started: float) -> None:
        exc = _exception(future)
        with self._stats_lock:
            self.in_flight -= 1
            self._latencies.append(time.perf_counter() - started)
            if exc is not None:
                self.errors += 1
                self.timeouts += isinstance(exc, ServiceTimeout)

    def _error(self, method: str, errors: list[tuple[str, BaseException]]) -> ServiceError:
        cause = errors[0][1]
        if len(errors) == 1:
            where, detail = f"on backend {errors[0][0]}", f"{type(cause).__name__}: {cause}"
        else:
            where = "on every backend"
            detail = "; ".join(f"{label}: {type(exc).__name__}: {exc}" for label, exc in errors)
        msg = f"service {self.name!r}: {method}() failed {where}: {detail}"
        cls = ServiceTimeout if all(isinstance(e, ServiceTimeout) for _, e in errors) else ServiceError
        error = cls(msg, service=self.name, method=method, cause=cause)
        error.__cause__ = cause
        return error

    def metrics(self) -> dict[str, Any]:
        """Counters, latency percentiles, batch sizes, who served what, start failures, restarts and each replica's load."""
        with self._stats_lock:
            latencies = np.array(self._latencies, dtype=np.float64) * 1000.0
            out: dict[str, Any] = {
                "kind": self.kind,
                "state": self._state,
                "calls": self.calls,
                "errors": self.errors,
                "timeouts": self.timeouts,
                "in_flight": self.in_flight,
                "fallback_calls": self.fallback_calls,
                "saturated_skips": self.saturated_skips,
                "served_by": dict(self.served_by),
            }
        replicas = [r for g in self.tiers for r in g.replicas]
        out["start_failures"] = [failure.as_dict() for failure in self.start_failures]
        out["restarts"] = sum(r.restarts for r in replicas)
        out["latency_ms"] = (
            {f"p{q}": round(float(np.percentile(latencies, q)), 3) for q in (50, 90, 99)}
            | {"max": round(float(latencies.max()), 3), "samples": len(latencies)}
            if len(latencies)
            else {}
        )
        out["batch"] = _merge_batch_stats([r.batch_stats() for r in replicas])
        out["backends"] = [
            {
                "backend": group.label,
                "usable": group.usable,
                "replicas": [
                    {
                        "replica": r.label, "state": r.state, "stale": r.stale, "in_flight": r.in_flight,
                        "served": r.served, "failed": r.failed, "restarts": r.restarts,
                        "error": None if r.error is None else str(r.error),
                    }
                    for r in group.replicas
                ],
            }
            for group in self.tiers
        ]
        return out

class _ServiceStream(Iterator[Any]):
    """Wraps a replica's stream so that failures during iteration become :class:`ServiceError`."""

    def __init__(self, stream: StreamIterator, service: Service, method: str, label: str) -> None:
        self._stream, self._service, self._method, self._label = stream, service, method, label

    def __iter__(self) -> "_ServiceStream":
        return self

    def __next__(self) -> Any:
        try:
            return next(self._stream)
        except StopIteration:
            raise
        except Exception as exc:
            raise self._service._error(self._method, [(self._label, exc)]) from exc

    def close(self) -> None:
        """Stop the producer early."""
        self._stream.close()


def _merge_batch_stats(per_replica: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for stats in per_replica:
        for method, s in stats.items():
            m = merged.setdefault(method, {"batches": 0, "requests": 0, "rows": 0, "max_rows": 0})
            m["batches"] += s["batches"]
            m["requests"] += s["requests"]
            m["rows"] += s["rows"]
            m["max_rows"] = max(m["max_rows"], s["max_rows"])
    for m in merged.values():
        m["mean_rows"] = round(m["rows"] / m["batches"], 2) if m["batches"] else 0.0
    return merged


def _exception(future: Future) -> BaseException | None:
    if future.cancelled():
        return ServiceClosed("the call was cancelled while the service closed")
    return future.exception()


def _resolve(out: Future, *, result: Any = None, exc: BaseException | None = None) -> None:
    """Settle ``out`` unless a deadline (or the call) already did."""
    try:
        if exc is not None:
            out.set_exception(exc)
        else:
            out.set_result(result)
    except InvalidStateError:
        pass


__all__ = ["DEFAULT", "Service", "StartOnce"]
