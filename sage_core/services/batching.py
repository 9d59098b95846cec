"""Request batching: concurrent calls of a batchable method become one stacked backend call.

A backend marks a method with :func:`batchable`::

    class MyStore:
        @batchable(arg="query", max_size=256, max_wait_ms=2)
        def search(self, query, top_k=10, filter=None): ...

The service layer then gives each replica one :class:`Batcher` per batchable method, with one
dedicated thread. The thread takes the first waiting request, collects more for at most
``max_wait_ms`` (or until ``max_size`` rows), groups them by their *other* arguments (``top_k``,
``filter``: only equal ones share a call), stacks ``arg`` along the first axis and calls the
method once per group. The wait ends early once as many requests are in as the queue expects:
the most recent batches tell how many callers there are (a batch whose window ran out sets the
estimate, one that filled up early can only raise it; the first batch waits the whole window), so
a lone caller is served at once and callers that each wait for their last answer are stacked as
soon as they have all asked again, instead of idling out the window. Stacking rules:

* numpy arrays: 1-D rows are stacked, 2-D arrays concatenated (a mix works);
* lists and tuples are concatenated; any other value (``str``, a dict) is one item.

The result (a list or an array with one entry per stacked row) is split back in order: a caller
that sent one item (a 1-D vector, a ``str``) gets element 0 of its share, a caller that sent a
batch gets its slice. Batchable methods must be safe to run again: when a stacked call raises, its
halves are retried (recursively), so one caller's bad input fails only that caller at the cost
of a few extra calls.

``async def`` methods work too: the call is scheduled on the replica's event loop and the thread
moves on to the next batch while it runs. Sync methods run on the batching threads themselves:
``max_in_flight`` threads (default 1) take turns collecting, and each runs the batch it collected,
so up to ``max_in_flight`` stacked calls of one replica are in flight at once. Two let a backend that
serialises its device work (a GPU index under a lock) search one batch while the next is stacked,
checked and split; the method must then be thread-safe.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence, TypeVar

import numpy as np

from sage_core.errors import ServiceClosed

F = TypeVar("F", bound=Callable[..., Any])

BATCHABLE_ATTR = "__sage_batchable__"
"""Attribute set by :func:`batchable` on the function it marks."""

log = logging.getLogger("sage.services.batching")


@dataclass(frozen=True)
class BatchSpec:
    """How a method is batched: the argument stacked, the largest batch, the longest wait, the calls in flight."""

    arg: str
    max_size: int = 256
    max_wait_ms: float = 2.0
    max_in_flight: int | Callable[[Any], int] = 1

    def __post_init__(self) -> None:
        if not self.arg or not isinstance(self.arg, str):
            msg = f"batchable: arg must name the argument to stack (a str), got {self.arg!r}"
            raise ValueError(msg)
        if int(self.max_size) < 1:
            msg = f"batchable({self.arg!r}): max_size must be >= 1, got {self.max_size}"
            raise ValueError(msg)
        if float(self.max_wait_ms) < 0:
            msg = f"batchable({self.arg!r}): max_wait_ms must be >= 0, got {self.max_wait_ms}"
            raise ValueError(msg)
        if not callable(self.max_in_flight) and int(self.max_in_flight) < 1:
            msg = f"batchable({self.arg!r}): max_in_flight must be >= 1 or a function of the backend, got {self.max_in_flight}"
            raise ValueError(msg)

    def in_flight_for(self, backend: Any) -> int:
        """``max_in_flight`` for this backend object (a function of it is called once, here)."""
        value = int(self.max_in_flight(backend)) if callable(self.max_in_flight) else int(self.max_in_flight)
        if value < 1:
            msg = f"batchable({self.arg!r}): max_in_flight must be >= 1, got {value} for {type(backend).__name__}"
            raise ValueError(msg)
        return value


def batchable(
    arg: str, *, max_size: int = 256, max_wait_ms: float = 2.0, max_in_flight: int | Callable[[Any], int] = 1
) -> Callable[[F], F]:
    """Mark a backend method whose concurrent calls may be stacked along ``arg`` into one call.

    The method itself is unchanged (calling it directly does no batching); the service layer reads
    the mark. ``max_in_flight`` > 1 declares a sync method thread-safe and lets that many stacked
    calls run at once; it may be a function of the backend object (a GPU store gains from two, a
    CPU-bound one loses batch size). A service's ``batch: {max_size, max_wait_ms, max_in_flight}``
    config overrides these.
    """
    spec = BatchSpec(arg=arg, max_size=max_size, max_wait_ms=max_wait_ms, max_in_flight=max_in_flight)

    def mark(fn: F) -> F:
        setattr(fn, BATCHABLE_ATTR, spec)
        return fn

    return mark


def batch_spec(method: Any) -> BatchSpec | None:
    """The :class:`BatchSpec` of a method marked with :func:`batchable`, else ``None``."""
    spec = getattr(method, BATCHABLE_ATTR, None)
    return spec if isinstance(spec, BatchSpec) else None


class _Request:
    """One caller's share of a batch."""

    __slots__ = ("value", "others", "key", "future", "rows", "single")

    def __init__(self, value: Any, others: dict[str, Any], future: Future) -> None:
        self.value = value
        self.others = others
        try:  # the common case: plain hashable arguments such as top_k
            self.key: Hashable = tuple(sorted(others.items()))
            hash(self.key)
        except TypeError:
            self.key = _freeze(others)
        self.future = future
        self.rows, self.single = _shape(value)


_STOP = object()
_UNKNOWN = 1 << 62
"""The expected batch before the first window has run out: wait the whole window."""


class Batcher:
    """Coalesces concurrent calls of one batchable method of one backend object.

    ``method`` is the bound method; ``loop`` the event loop (running in another thread) on which an
    ``async def`` method is scheduled. :meth:`submit` returns a ``concurrent.futures.Future``.
    """

    def __init__(
        self,
        method: Callable[..., Any],
        spec: BatchSpec,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str = "",
    ) -> None:
        self.method = method
        self.spec = spec
        self.name = name or getattr(method, "__qualname__", "batch")
        self.is_async = inspect.iscoroutinefunction(method)
        if self.is_async and loop is None:
            msg = f"{self.name}: an async batchable method needs the replica's event loop"
            raise ValueError(msg)
        self._loop = loop
        self._signature = inspect.signature(method)
        if spec.arg not in self._signature.parameters:
            msg = f"{self.name}: @batchable(arg={spec.arg!r}) names no parameter of the method"
            raise ValueError(msg)
        kinds = [p.kind for p in self._signature.parameters.values()]
        self._positional: tuple[str, ...] | None = (
            None  # positional-only or *args: only Signature.bind maps them right
            if inspect.Parameter.POSITIONAL_ONLY in kinds or inspect.Parameter.VAR_POSITIONAL in kinds
            else tuple(n for n, p in self._signature.parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        )
        self._max_size = int(spec.max_size)
        self._max_wait = float(spec.max_wait_ms) / 1000.0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._carry: _Request | None = None
        self._expected = _UNKNOWN  # requests a batch is expected to gather (see the module docstring)
        self._wanted = 0  # queue length at which submit() wakes the collector; 0 while nobody waits
        self._arrived = threading.Event()
        self._closed = False
        self._stats_lock = threading.Lock()
        self._collecting = threading.Lock()  # one thread collects at a time; the others run their batch
        self.batches = 0
        self.requests = 0
        self.rows = 0
        self.max_rows = 0
        backend = getattr(method, "__self__", None)
        threads = 1 if self.is_async else spec.in_flight_for(backend)  # an async call never blocks its thread
        self._running = threads
        self._threads = [
            threading.Thread(target=self._run, name=f"sage-batch-{self.name}-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ public

    def submit(self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Future:
        """Queue one call; the Future resolves to this caller's share of the batched result."""
        kwargs = dict(kwargs or {})
        names = self._positional
        if args and names is not None and len(args) <= len(names) and kwargs.keys().isdisjoint(names[: len(args)]):
            kwargs.update(zip(names, args))  # what Signature.bind gives, at a quarter of its cost per call
        elif args or self.spec.arg not in kwargs:
            kwargs = dict(self._signature.bind(*args, **kwargs).arguments)  # or the TypeError saying what is wrong
        if self.spec.arg not in kwargs:
            kwargs = dict(self._signature.bind(**kwargs).arguments)
        value = kwargs.pop(self.spec.arg)
        future: Future = Future()
        if self._closed:
            future.set_exception(ServiceClosed(f"{self.name}: batching queue is closed"))
            return future
        self._queue.put(_Request(value, kwargs, future))
        wanted = self._wanted
        if wanted and self._queue.qsize() >= wanted:
            self._arrived.set()  # the collector is waiting for exactly this many: one wake-up per batch
        return future

    def stats(self) -> dict[str, float]:
        """Batches run, requests and rows served, mean and max rows per batch."""
        with self._stats_lock:
            mean = self.rows / self.batches if self.batches else 0.0
            return {
                "batches": self.batches,
                "requests": self.requests,
                "rows": self.rows,
                "mean_rows": round(mean, 2),
                "max_rows": self.max_rows,
            }

    def close(self, timeout: float | None = 5.0) -> None:
        """Run what is already queued, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._arrived.set()  # a collector waiting for more requests sees the stop now
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        for thread in self._threads:
            thread.join(None if timeout is None else max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ the batching thread

    def _run(self) -> None:
        while True:
            with self._collecting:
                batch, stop = self._collect()
            if batch:
                self._dispatch(batch)
            if stop:
                break
        with self._stats_lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self._fail_leftovers()
        else:
            self._queue.put(_STOP)  # the next thread stops too

    def _collect(self) -> tuple[list[_Request], bool]:
        """Block for a first request, then gather more until full or ``max_wait`` has passed."""
        first = self._carry
        self._carry = None
        if first is None:
            first = self._queue.get()
            if first is _STOP:
                return [], True
        batch = [first]
        rows = first.rows
        deadline = time.monotonic() + self._max_wait
        get_nowait = self._queue.get_nowait
        expected = self._expected
        while rows < self._max_size:
            try:
                item = get_nowait()
            except queue.Empty:
                if len(batch) >= expected:
                    self._expected = max(expected, len(batch))
                    return batch, False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._expected = len(batch)  # a whole window brought this many: the callers there are
                    return batch, False
                self._wait_for(expected - len(batch), remaining)
                continue
            if item is _STOP:
                return batch, True
            if rows + item.rows > self._max_size:
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        self._expected = max(expected, len(batch))
        return batch, False

    def _wait_for(self, more: int, timeout: float) -> None:
        """Block until ``more`` requests are queued or ``timeout`` passes.

        ``submit`` sets the event only when the queue reaches that length: one wake-up per batch
        instead of one per request (each wake-up hands the GIL back and forth with the callers).
        """
        self._arrived.clear()
        self._wanted = more
        if self._queue.qsize() < more:
            self._arrived.wait(timeout)
        self._wanted = 0

    def _dispatch(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        groups: dict[Hashable, list[_Request]] = {}
        for request in live:
            groups.setdefault(request.key, []).append(request)
        for group in groups.values():
            self._record(group)
            if len(group) == 1:
                self._call_one(group[0])
            else:
                self._call_group(group)

    def _record(self, group: list[_Request]) -> None:
        rows = sum(r.rows for r in group)
        with self._stats_lock:
            self.batches += 1
            self.requests += len(group)
            self.rows += rows
            if rows > self.max_rows:
                self.max_rows = rows

    def _call_group(self, group: list[_Request]) -> None:
        if len(group) == 1:
            self._call_one(group[0])
            return
        try:
            stacked = _stack([r.value for r in group], [r.single for r in group])
        except Exception:  # mixed shapes or dtypes
            self._bisect(group)
            return
        kwargs = dict(group[0].others)
        kwargs[self.spec.arg] = stacked
        if self.is_async:
            try:
                task = asyncio.run_coroutine_threadsafe(self.method(**kwargs), self._loop)  # type: ignore[arg-type]
            except Exception as exc:
                _fail_all(group, exc)
                return
            task.add_done_callback(lambda done: self._finish_group(group, done))
            return
        try:
            result = self.method(**kwargs)
        except Exception:
            self._bisect(group)
            return
        self._split(group, result)

    def _finish_group(self, group: list[_Request], done: Future) -> None:
        if done.cancelled() or done.exception() is not None:
            self._bisect(group)
        else:
            self._split(group, done.result())

    def _bisect(self, group: list[_Request]) -> None:
        """Retry the halves of a failed batch, so that a bad request ends up failing alone."""
        middle = len(group) // 2
        self._call_group(group[:middle])
        self._call_group(group[middle:])

    def _call_one(self, request: _Request) -> None:
        kwargs = dict(request.others)
        kwargs[self.spec.arg] = request.value
        future = request.future
        if self.is_async:
            try:
                task = asyncio.run_coroutine_threadsafe(self.method(**kwargs), self._loop)  # type: ignore[arg-type]
            except Exception as exc:
                future.set_exception(exc)
                return
            task.add_done_callback(lambda done: _copy_outcome(done, future))
            return
        try:
            result = self.method(**kwargs)
        except Exception as exc:
            future.set_exception(exc)
            return
        future.set_result(result)

    def _split(self, group: list[_Request], result: Any) -> None:
        total = sum(r.rows for r in group)
        try:
            size = len(result)
        except TypeError:
            size = -1
        if size != total:
            exc = ValueError(
                f"{self.name}: batchable method returned {size if size >= 0 else type(result).__name__} "
                f"results for {total} stacked inputs; it must return one result per input row"
            )
            _fail_all(group, exc)
            return
        start = 0
        for request in group:
            end = start + request.rows
            request.future.set_result(result[start] if request.single else result[start:end])
            start = end

    def _fail_leftovers(self) -> None:
        leftovers = [self._carry] if self._carry is not None else []
        self._carry = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftovers.append(item)
        for request in leftovers:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(ServiceClosed(f"{self.name}: service closed before the call ran"))


# ---------------------------------------------------------------------- helpers


def _shape(value: Any) -> tuple[int, bool]:
    """Rows a value contributes and whether it is a single item."""
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            return value.shape[0], False
        return 1, True
    if isinstance(value, (list, tuple)):
        return len(value), False
    return 1, True


def _stack(values: list[Any], singles: list[bool]) -> Any:
    """Stack values along the first axis (see the module docstring for the rules)."""
    if all(isinstance(v, np.ndarray) for v in values):
        if all(singles):
            return np.stack(values)
        parts = [v.reshape(1, -1) if single else v for v, single in zip(values, singles)]
        return np.concatenate(parts)
    if any(isinstance(v, np.ndarray) for v in values):
        msg = "cannot stack numpy arrays with other values"
        raise TypeError(msg)
    out: list[Any] = []
    for value, single in zip(values, singles):
        if single:
            out.append(value)
        else:
            out.extend(value)
    return out


def _freeze(value: Any) -> Hashable:
    """A hashable key for the non-stacked arguments; unhashable values never share a batch."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("unhashable", id(value))
    return value


def _fail_all(group: list[_Request], exc: BaseException) -> None:
    for request in group:
        request.future.set_exception(exc)


def _copy_outcome(done: Future, target: Future) -> None:
    exc = done.exception()
    if exc is None:
        target.set_result(done.result())
    else:
        target.set_exception(exc)


__all__ = ["BATCHABLE_ATTR", "BatchSpec", "Batcher", "batch_spec", "batchable"]
