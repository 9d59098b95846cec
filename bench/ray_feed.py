"""Feeding a long-running flow on Ray from the benchmark's process, and timing its results back.

On :class:`~sage_core.RemoteEnvironment` the source and the sink run in Ray actors, so the
benchmark cannot hand them records the way ``llm_vllm.Feed`` and ``llm_vllm.Counter`` do in one
process. Here two Ray queues cross the boundary instead::

    with RayFeed(report=operator.attrgetter("token_ids")) as feed:
        env.from_source(feed.source()).map(Generate(sampling), capacity=2048).sink(feed.sink())
        job = env.submit(autostop=False)
        results = feed.run(prompts, timeout_s=600, job=job)   # one result per prompt, any order
        job.stop()

The driver puts the records on the inbox in chunks (one queue call per chunk); the source actor
takes a chunk when its own buffer is empty, blocking ``poll_s`` at most, so the job can still be
stopped. The sink gathers what ``report`` makes of each record and a thread of its actor puts the
gathered lists on the outbox every ``flush_s``; the driver drains them until every record of the
run is back.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Self

from sage_core import SinkFunction, SourceFunction

RUN_TIMEOUT_S = 1800.0
"""Default wait for a run's results."""


def ship_by_value(*modules: ModuleType) -> None:
    """Send the functions and classes of ``modules`` to Ray workers by value.

    The benchmark's modules live in ``bench/``, which is not on the workers' import path; pickled
    by value, the flow's functions (and this module's source and sink) need no import there.
    """
    from ray import cloudpickle

    for module in modules:
        cloudpickle.register_pickle_by_value(module)


class QueueSource(SourceFunction):
    """An unbounded source reading chunks (lists of records) from a Ray queue; ``job.stop()`` ends it."""

    def __init__(self, inbox: Any, poll_s: float = 0.005) -> None:
        self.inbox = inbox
        self.poll_s = poll_s
        self._ready: collections.deque[Any] = collections.deque()

    def execute(self, data: Any = None) -> Any:
        """The next record; ``None`` when no chunk arrived within ``poll_s``."""
        if not self._ready:
            try:
                self._ready.extend(self.inbox.get(timeout=self.poll_s))
            except queue.Empty:  # ray.util.queue.Empty is one
                return None
        return self._ready.popleft()


class QueueSink(SinkFunction):
    """Sends ``report(record)`` of every record to a Ray queue, gathered into one list per ``flush_s``."""

    def __init__(self, outbox: Any, report: Callable[[Any], Any] | None = None, flush_s: float = 0.005) -> None:
        self.outbox = outbox
        self.report = report
        self.flush_s = flush_s
        self._gathered: list[Any] = []
        self._lock: threading.Lock | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the thread that flushes the gathered reports (in the sink's actor)."""
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._flush_every, name="bench-ray-feed-sink", daemon=True)
        self._thread.start()

    def execute(self, record: Any) -> None:
        """Gather the record's report."""
        assert self._lock is not None, "QueueSink.execute() before open()"
        reported = record if self.report is None else self.report(record)
        with self._lock:
            self._gathered.append(reported)

    def close(self) -> None:
        """Stop the flushing thread and send what is left."""
        if self._thread is not None and self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._flush()

    def _flush_every(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.flush_s):
            self._flush()

    def _flush(self) -> None:
        assert self._lock is not None
        with self._lock:
            gathered, self._gathered = self._gathered, []
        if gathered:
            self.outbox.put(gathered)


class RayFeed:
    """The driver's side: two Ray queues, the source and sink that use them, and :meth:`run`.

    ``report``: what the sink sends back for each record (default: the record itself); a function
    the workers can unpickle (a stdlib one such as ``operator.attrgetter``, or one shipped with
    :func:`ship_by_value`). ``chunk``: records per inbox item. Close it (or use ``with``) to end
    the queue actors.
    """

    def __init__(
        self, report: Callable[[Any], Any] | None = None, *, chunk: int = 128, poll_s: float = 0.005, flush_s: float = 0.005
    ) -> None:
        from ray.util.queue import Queue

        if chunk < 1:
            msg = f"RayFeed: chunk must be at least 1 record, got {chunk}"
            raise ValueError(msg)
        ship_by_value(sys.modules[__name__])
        self.report = report
        self.chunk = chunk
        self.poll_s = poll_s
        self.flush_s = flush_s
        self.inbox = Queue(actor_options={"num_cpus": 0})
        self.outbox = Queue(actor_options={"num_cpus": 0})
        self._late: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def source(self) -> QueueSource:
        """The flow's source (``env.from_source(feed.source())``)."""
        return QueueSource(self.inbox, self.poll_s)

    def sink(self) -> QueueSink:
        """The flow's sink (``.sink(feed.sink())``)."""
        return QueueSink(self.outbox, self.report, self.flush_s)

    def run(self, records: Sequence[Any], timeout_s: float = RUN_TIMEOUT_S, job: Any = None) -> list[Any]:
        """Feed ``records`` and wait until as many reports came back; returns them (in arrival order).

        Raises :class:`TimeoutError` when they are not all back within ``timeout_s`` seconds, and
        :class:`RuntimeError` as soon as ``job`` (when given) is no longer running. After either,
        late reports of that run may still arrive, so the feed refuses further runs.
        """
        if self._late is not None:
            msg = f"RayFeed.run: {self._late}; its late results would count in this run: start a new flow with a new RayFeed"
            raise RuntimeError(msg)
        wanted = len(records)
        for start in range(0, wanted, self.chunk):
            self.inbox.put(list(records[start:start + self.chunk]))
        reports: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(reports) < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                self._late = f"an earlier run timed out ({len(reports)} of {wanted} results within {timeout_s} s)"
                msg = (
                    f"RayFeed.run: only {len(reports)} of {wanted} results came back through the Ray queue within "
                    f"{timeout_s} s; the flow is slower than that or stuck (see job.summary() and the Ray actors' "
                    "logs), or raise timeout_s"
                )
                raise TimeoutError(msg)
            try:
                reports.extend(self.outbox.get(timeout=min(left, 0.5)))
            except queue.Empty:
                self._check_running(job, len(reports), wanted)
        return reports

    def close(self) -> None:
        """End both queue actors."""
        self.inbox.shutdown()
        self.outbox.shutdown()

    def _check_running(self, job: Any, got: int, wanted: int) -> None:
        if job is None or job.status == "running":
            return
        self._late = f"an earlier run's job ended ({job.status})"
        error = job.summary().get("error")
        msg = f"RayFeed.run: the job ended ({job.status}) after {got} of {wanted} results: {error or 'no error recorded'}"
        raise RuntimeError(msg)


__all__ = ["RUN_TIMEOUT_S", "QueueSink", "QueueSource", "RayFeed", "ship_by_value"]
