"""The job handle users get from ``env.submit()``: wait, stop, status, summary, metrics."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from sage_core.runtime.errors import ErrorPolicy, JobFailed
from sage_core.runtime.records import DeadLetter, OperatorStats

if TYPE_CHECKING:
    from sage_core.compiler.physical import PhysicalGraph

__all__ = ["JobFailed", "JobHandle", "Runtime"]


class Runtime(Protocol):
    """What a runtime (local threads, Ray actors) offers the job handle."""

    def start(self) -> None:
        """Start every task."""

    def stop(self) -> None:
        """Ask sources to stop; the rest drains and ends."""

    def join(self, timeout: float | None) -> bool:
        """Wait for every task to end; whether they all did."""

    def error(self) -> BaseException | None:
        """The first error that aborted the job, if any."""

    def operator_stats(self) -> dict[str, OperatorStats]:
        """Figures per operator id, summed over its instances."""

    def queue_depths(self) -> dict[str, int]:
        """Batches waiting in each task's inbox."""


class JobHandle:
    """A submitted job. ``status`` is one of running, completed, stopped, failed."""

    def __init__(self, name: str, graph: "PhysicalGraph", runtime: Runtime, errors: ErrorPolicy, services: Any) -> None:
        self.name = name
        self.graph = graph
        self.runtime = runtime
        self.errors = errors
        self.services = services
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._stopped = False
        self._finished_callbacks: list[Any] = []
        self._finish_lock = threading.Lock()

    @property
    def status(self) -> str:
        """running, completed, stopped (by ``stop()``) or failed."""
        if self.ended_at is None:
            if not self.runtime.join(0):
                return "running"
            self._finish()
        if self.runtime.error() is not None:
            return "failed"
        return "stopped" if self._stopped else "completed"

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout`` seconds pass); returns the status.

        Raises :class:`JobFailed` when a record failed under the ``fail`` policy. Ctrl-C stops the
        job cleanly, then re-raises ``KeyboardInterrupt``.
        """
        try:
            done = self.runtime.join(timeout)
        except KeyboardInterrupt:
            self.stop()
            self.runtime.join(None)
            self._finish()
            raise
        if done:
            self._finish()
            error = self.runtime.error()
            if error is not None:
                raise error
        return self.status

    def stop(self, timeout: float | None = 30.0) -> str:
        """Stop the sources, let records in flight drain, wait; returns the status."""
        self._stopped = self.ended_at is None
        self.runtime.stop()
        if self.runtime.join(timeout):
            self._finish()
        return self.status

    def dead_letters(self) -> list[DeadLetter]:
        """Records that failed under the ``dead_letter`` policy."""
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
        """Status, timings and per operator accounting (in = out + filtered + failed)."""
        summary = self.metrics()
        summary.pop("queues")
        summary["dead_letters"] = len(self.errors.dead_letters)
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
