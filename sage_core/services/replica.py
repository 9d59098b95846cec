"""One copy of a backend: created once on its own worker thread, then serving calls.

A :class:`Replica` owns

* a :class:`WorkerPool` of ``workers`` threads: the backend is created on one of them, and sync
  methods run on them, so concurrent calls are served concurrently;
* an asyncio event loop on its own thread, started when the backend has ``async def`` methods or
  async-generator methods: coroutines are scheduled there with ``run_coroutine_threadsafe``, so
  thousands can be in flight without a thread each;
* one :class:`~sage_core.services.batching.Batcher` per ``@batchable`` method.

Method styles: ``sync`` and ``async`` return a value; ``stream`` (generator) and ``async_stream``
(async generator) yield items: :meth:`Replica.submit` collects them into a list, and
:meth:`Replica.open_stream` gives a blocking
:class:`~sage_core.services.streams.StreamIterator` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from sage_core.errors import BackendUnavailable, ServiceClosed
from sage_core.services.batching import Batcher, BatchSpec, batch_spec
from sage_core.services.config import BatchConfig
from sage_core.services.streams import StreamIterator, pump_async, pump_sync

log = logging.getLogger("sage.services")

RESERVED_METHODS = frozenset({"close"})
"""Backend methods the service layer owns (a flow cannot call them)."""


def method_styles(backend: Any) -> dict[str, str]:
    """Public methods of ``backend`` and their style: sync, async, stream or async_stream."""
    styles: dict[str, str] = {}
    for name in dir(backend):
        if name.startswith("_") or name in RESERVED_METHODS:
            continue
        if isinstance(inspect.getattr_static(backend, name, None), property):
            continue
        attr = getattr(backend, name, None)
        if not callable(attr) or isinstance(attr, type):
            continue
        if inspect.isasyncgenfunction(attr):
            styles[name] = "async_stream"
        elif inspect.iscoroutinefunction(attr):
            styles[name] = "async"
        elif inspect.isgeneratorfunction(attr):
            styles[name] = "stream"
        else:
            styles[name] = "sync"
    return styles


class WorkerPool:
    """A fixed set of threads running submitted calls in order; cheaper than a ThreadPoolExecutor."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-w{i}", daemon=True) for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on a worker; the Future gets its result or exception."""
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Run what is queued, stop the threads, fail anything submitted too late."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[0].set_running_or_notify_cancel():
                item[0].set_exception(ServiceClosed("the service closed before this call ran"))

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller, never lost
                future.set_exception(exc)
            else:
                future.set_result(result)


class ReplicaState:
    """What routing reads of a replica, local or on Ray: its state, methods and load, and why it refuses a call."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.state = "new"  # new | starting | ready | unavailable | failed | restarting | closed
        self.error: BaseException | None = None
        self.restarts = 0
        self.stale = False
        self.backend: Any = None
        self.methods: dict[str, str] = {}
        self.in_flight = 0
        self.served = 0
        self.failed = 0
        self._started: Future | None = None
        self._lock = threading.Condition()

    @property
    def usable(self) -> bool:
        """Ready, and not left behind by a write that failed here but succeeded elsewhere."""
        return self.state == "ready" and not self.stale

    @property
    def title(self) -> str:
        """The replica in words: ``replica s0r1 of service 'vdb' (backend 'numpy')`` for the label ``vdb/numpy/s0r1``."""
        parts = self.label.rsplit("/", 2)
        if len(parts) != 3:
            return self.label
        service, backend, replica = parts
        return f"replica {replica} of service {service!r} (backend {backend!r})"

    def _finished(self, future: Future) -> None:
        failed = future.cancelled() or future.exception() is not None
        with self._lock:
            self.in_flight -= 1
            if failed:
                self.failed += 1
            else:
                self.served += 1
            if self.in_flight == 0:
                self._lock.notify_all()

    def _refusal(self, method: str) -> Exception:
        if self.state == "closed":
            return ServiceClosed(f"{self.label} is closed")
        if self.state != "ready":
            return RuntimeError(f"{self.label} is {self.state}: {self.error}")
        return AttributeError(f"{self.label} has no method {method!r}; methods: {', '.join(sorted(self.methods))}")


class Replica(ReplicaState):
    """One backend object with its workers, event loop and batching queues."""

    def __init__(
        self,
        label: str,
        create: Callable[[], Any],
        *,
        workers: int = 4,
        batch: BatchConfig | None = None,
        thread_name: str = "sage-service",
    ) -> None:
        super().__init__(label)
        self._create = create
        self._batch = batch
        self._thread_name = thread_name
        self._pool = WorkerPool(workers, thread_name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._batchers: dict[str, Batcher] = {}
        self._bound: dict[str, Callable[..., Any]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Future:
        """Create the backend on a worker thread (once); the Future fails when that raises (not ``BackendUnavailable``)."""
        with self._lock:
            if self._started is None:
                self.state = "starting"
                self._started = self._pool.submit(self._build)
            return self._started

    def _build(self) -> None:
        try:
            backend = self._create()
            if inspect.isawaitable(backend):
                backend = asyncio.run_coroutine_threadsafe(_awaited(backend), self._ensure_loop()).result()
        except BackendUnavailable as exc:
            self.state, self.error = "unavailable", exc  # the service logs it as a start failure
            return
        except BaseException as exc:
            self.state, self.error = "failed", exc
            raise
        self.backend = backend
        self.methods = method_styles(backend)
        self._bound = {name: getattr(backend, name) for name in self.methods}
        if any(style.startswith("async") for style in self.methods.values()):
            self._ensure_loop()
        enabled = self._batch is None or self._batch.enabled
        for name, style in self.methods.items():
            spec = batch_spec(self._bound[name])
            if spec is None or not enabled or style not in ("sync", "async"):
                continue
            if self._batch is not None:
                batch = self._batch
                spec = BatchSpec(spec.arg, batch.max_size, batch.max_wait_ms, batch.max_in_flight or spec.max_in_flight)
            self._batchers[name] = Batcher(
                self._bound[name], spec, loop=self._loop, name=f"{self._thread_name.removeprefix('sage-')}.{name}"
            )
        with self._lock:
            if self.state == "starting":
                self.state = "ready"

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued calls, close the backend once, stop every thread. Idempotent."""
        with self._lock:
            if self.state == "closed":
                return
            self.state = "closed"
        deadline = time.monotonic() + timeout
        self._pool.close(max(0.1, deadline - time.monotonic()))
        for batcher in self._batchers.values():
            batcher.close(max(0.1, deadline - time.monotonic()))
        with self._lock:
            self._lock.wait_for(lambda: self.in_flight == 0, max(0.0, deadline - time.monotonic()))
        if self.backend is not None and callable(getattr(self.backend, "close", None)):
            try:
                result = self.backend.close()
                if inspect.isawaitable(result) and self._loop is not None:
                    asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result(timeout)
            except Exception:  # closing must go on for the other replicas
                log.exception("%s: backend close() failed", self.label)
        self._stop_loop(timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"{self._thread_name}-loop", daemon=True)
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop

    def _stop_loop(self, timeout: float) -> None:
        loop, thread = self._loop, self._loop_thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_pending(), loop).result(timeout)
        except Exception:
            log.warning("%s: pending coroutines did not stop in time", self.label)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    # ------------------------------------------------------------------ calls

    def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Future:
        """Run one call (batched when the method is batchable); streams are collected into a list."""
        style = self.methods.get(method)
        if self.state != "ready" or style is None:
            return _failed(self._refusal(method))
        with self._lock:
            self.in_flight += 1
        try:
            batcher = self._batchers.get(method)
            fn = self._bound[method]
            if batcher is not None:
                future = batcher.submit(args, kwargs)
            elif style == "sync":
                future = self._pool.submit(fn, *args, **kwargs)
            elif style == "async":
                future = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop)  # type: ignore[arg-type]
            elif style == "async_stream":
                future = asyncio.run_coroutine_threadsafe(_collect(fn(*args, **kwargs)), self._loop)  # type: ignore[arg-type]
            else:
                future = self._pool.submit(lambda: list(fn(*args, **kwargs)))
        except Exception as exc:  # bad arguments to an async method fail here, synchronously
            future = _failed(exc)
        future.add_done_callback(self._finished)
        return future

    def open_stream(
        self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None
    ) -> "StreamIterator":
        """Start a (async) generator method; items arrive through a blocking iterator."""
        style = self.methods.get(method)
        if self.state != "ready" or style not in ("stream", "async_stream"):
            raise self._refusal(method)
        stream = StreamIterator(timeout)
        with self._lock:
            self.in_flight += 1
        fn = self._bound[method]
        try:
            if style == "async_stream":
                task = asyncio.run_coroutine_threadsafe(pump_async(fn(*args, **kwargs), stream), self._loop)  # type: ignore[arg-type]
            else:
                task = self._pool.submit(pump_sync, fn, args, kwargs, stream)
        except Exception as exc:
            task = _failed(exc)
            stream.fail(exc)
        stream._task = task
        task.add_done_callback(self._finished)
        return stream

    def batch_stats(self) -> dict[str, dict[str, float]]:
        """Batching statistics per batchable method."""
        return {name: batcher.stats() for name, batcher in self._batchers.items()}

async def _collect(agen: Any) -> list[Any]:
    return [item async for item in agen]


async def _awaited(value: Any) -> Any:
    return await value


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _failed(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


__all__ = ["Replica", "ReplicaState", "WorkerPool", "method_styles"]
