"""The job handle users get from ``env.submit()``: wait, stop, cancel, status, summary, metrics.

Lifecycle, the same on every runtime:

- ``stop(timeout)`` is graceful: sources stop, records in flight drain, and at the deadline
  (:data:`STOP_TIMEOUT_S` by default) the job is cancelled.
- ``cancel()`` ends every task at its next record. What it drops is counted per operator as
  ``cancelled``, so ``in = out + filtered + failed + cancelled`` holds.
- Ctrl-C (or SIGTERM) in ``wait()`` stops with the short deadline; a second Ctrl-C cancels at once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from sage_core.errors import JobFailed
from sage_core.runtime.errors import ErrorPolicy
from sage_core.runtime.records import DeadLetter, OperatorStats
from sage_core.runtime.signals import terminate_as_interrupt

if TYPE_CHECKING:
    from sage_core.compiler.physical import PhysicalGraph
    from sage_core.config import SageConfig

__all__ = ["CANCEL_JOIN_S", "STOP_TIMEOUT_S", "JobFailed", "JobHandle", "Runtime"]

STOP_TIMEOUT_S = 5.0
"""How long ``stop()``, Ctrl-C and ``env.close()`` let records in flight drain before cancelling."""

CANCEL_JOIN_S = 1.0
"""How long ``cancel()`` waits for tasks to leave the record in hand before it reports them."""

COLLECT_POLL_S = 0.05
"""While waiting, how often collected records move from their channel to the driver."""

log = logging.getLogger("sage.job")


class Runtime(Protocol):
    """What a runtime (local threads, Ray actors) offers the job handle."""

    def start(self) -> None:
        """Start every task."""

    def stop(self) -> None:
        """Ask sources to stop; the rest drains and ends."""

    def cancel(self) -> None:
        """End every task at its next record, counting what is dropped as cancelled."""

    def join(self, timeout: float | None) -> bool:
        """Wait for every task to end; whether they all did."""

    def error(self) -> BaseException | None:
        """The first error that aborted the job, if any."""

    def running_tasks(self) -> list[str]:
        """Tasks that have not ended yet."""

    def operator_stats(self) -> dict[str, OperatorStats]:
        """Figures per operator id, summed over its instances."""

    def queue_depths(self) -> dict[str, int]:
        """Batches waiting in each task's inbox."""


class JobHandle:
    """A submitted job. ``status`` is one of running, finished, stopped, cancelled, failed."""

    def __init__(
        self, name: str, graph: "PhysicalGraph", runtime: Runtime, errors: ErrorPolicy, services: Any, config: "SageConfig"
    ) -> None:
        self.name = name
        self.graph = graph
        self.runtime = runtime
        self.errors = errors
        self.services = services
        self.config = config
        """The environment's configuration; a plugin reads its own section with ``job.config.section(name)``."""
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._stopped = False
        self._cancelled = False
        self._finished_callbacks: list[Any] = []
        self._finish_lock = threading.Lock()
        self.collectors: list[Any] = []
        """The job's collected streams (``stream.collect()``), filled while it is waited on."""

    @property
    def status(self) -> str:
        """running; finished (the input ended); stopped (``stop()`` drained in time); cancelled; failed."""
        if self.ended_at is None and not self._cancelled:
            if not self.runtime.join(0):
                return "running"
            self._finish()
        if self.runtime.error() is not None:
            return "failed"
        if self._cancelled:
            return "cancelled"
        return "stopped" if self._stopped else "finished"

    @property
    def running(self) -> bool:
        """Whether some task may still process records."""
        return self.ended_at is None and not self.runtime.join(0)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout`` seconds pass); returns the status.

        Raises :class:`JobFailed` when a record failed under the ``fail`` policy. Ctrl-C or SIGTERM
        stops the job (drain for up to :data:`STOP_TIMEOUT_S`, then cancel; a second Ctrl-C cancels
        at once), then re-raises ``KeyboardInterrupt``.
        """
        try:
            with terminate_as_interrupt():
                done = self._join(timeout)
        except KeyboardInterrupt:
            self.interrupt()
            raise
        if done:
            self._finish()
            error = self.runtime.error()
            if error is not None:
                raise error
        return self.status

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> str:
        """Stop the sources and let records in flight drain; cancel what is left after ``timeout`` seconds.

        Returns the status: never running (``stopped`` when everything drained, ``cancelled`` when
        the deadline cancelled the rest).
        """
        if self.running:
            self._stopped = True
            self.runtime.stop()
            if not self._join(timeout):
                return self.cancel()
            self._finish()
        return self.status

    def cancel(self) -> str:
        """End the job now: every task stops at its next record; dropped records are counted as cancelled."""
        if self.running:
            self._cancelled = True
            self.runtime.cancel()
            if self._join(CANCEL_JOIN_S):
                self._finish()
            else:
                log.warning(
                    "job %s cancelled; still inside a function: %s (it ends when that call returns)",
                    self.name, ", ".join(self.runtime.running_tasks()),
                )
        return self.status

    def _join(self, timeout: float | None) -> bool:
        """Wait for the tasks like ``runtime.join``, moving collected records to the driver meanwhile."""
        if not self.collectors:
            return self.runtime.join(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = COLLECT_POLL_S if deadline is None else max(0.0, min(COLLECT_POLL_S, deadline - time.monotonic()))
            moved = sum(collected.pump(wait_s=step / len(self.collectors)) for collected in self.collectors)
            if self.runtime.join(0 if moved else step / 10):
                for collected in self.collectors:
                    collected.pump()
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def interrupt(self) -> None:
        """What Ctrl-C does: say so on one line, stop with the short deadline; a second Ctrl-C cancels now."""
        try:
            with terminate_as_interrupt():
                print(
                    f"sage: interrupted: stopping job {self.name!r}, draining for up to {STOP_TIMEOUT_S:g} s "
                    "then cancelling (Ctrl-C again cancels now)",
                    file=sys.stderr, flush=True,
                )
                self.stop()
        except KeyboardInterrupt:
            print(f"sage: cancelling job {self.name!r} now", file=sys.stderr, flush=True)
            self.cancel()

    def dead_letters(self) -> list[DeadLetter]:
        """Records that failed under the ``dead_letter`` policy (the newest ``job.max_dead_letters``)."""
        return list(self.errors.dead_letters)

    def metrics(self) -> dict[str, Any]:
        """A live snapshot: per operator figures, queue depths, services."""
        elapsed = (self.ended_at or time.time()) - self.started_at
        operators = {}
        for op_id, stats in self.runtime.operator_stats().items():
            spec = self.graph.operator(op_id)
            operators[op_id] = {**stats.as_dict(), "kind": spec.kind.value, "parallelism": spec.parallelism}
        metrics: dict[str, Any] = {
            "job": self.name,
            "status": self.status,
            "elapsed_s": round(elapsed, 6),
            "operators": operators,
            "queues": self.runtime.queue_depths(),
        }
        if self.services is not None and hasattr(self.services, "metrics"):
            metrics["services"] = self.services.metrics()
        return metrics

    def summary(self) -> dict[str, Any]:
        """Status, timings and per operator accounting (in = out + filtered + failed + cancelled)."""
        summary = self.metrics()
        summary.pop("queues")
        summary["dead_letters"] = self.errors.dead_letter_count
        error = self.runtime.error()
        summary["error"] = None if error is None else str(error)
        return summary

    def on_finished(self, callback: Any) -> None:
        """Call ``callback(job)`` once when the job ends (used for the job-finished hook)."""
        self._finished_callbacks.append(callback)

    def _finish(self) -> None:
        """Record the end time and run the finished-callbacks, once, whichever thread gets here first."""
        with self._finish_lock:
            if self.ended_at is not None:
                return
            self.ended_at = time.time()
            for callback in self._finished_callbacks:
                callback(self)
