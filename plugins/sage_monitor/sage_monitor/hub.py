"""The monitor's one source of figures: the jobs it watches and the registered collectors.

The dashboard (``/api/metrics``), the Prometheus endpoint (``/metrics``) and ``sage top`` all read
:meth:`MonitorHub.snapshot`. A snapshot is taken only when one of them asks, and reused for
``max_age_s`` so that several pollers cost one snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable

from sage_monitor.pipeline import PipelineCollector

log = logging.getLogger("sage.monitor")

__all__ = ["MonitorHub"]


class MonitorHub:
    """Jobs being watched (each through a :class:`PipelineCollector`) plus other metrics collectors.

    ``collectors`` is a callable returning the collectors to poll (objects with ``name`` and
    ``collect() -> dict``), by default the ones plugins registered through ``sage_metrics_collectors``.
    """

    def __init__(
        self, collectors: Callable[[], Iterable[Any]] | None = None, *, max_age_s: float = 0.25, keep_finished: int = 8
    ) -> None:
        self._collectors = collectors if collectors is not None else _registered_collectors
        self.max_age_s = max_age_s
        self.keep_finished = keep_finished
        self._lock = threading.RLock()  # re-entered when a poll ends up running the job-finished hook
        self._jobs: dict[int, PipelineCollector] = {}
        self._cached: dict[str, Any] | None = None
        self._cached_at = 0.0
        self._broken: set[str] = set()

    # ------------------------------------------------------------------ jobs

    def watch(self, job: Any) -> PipelineCollector:
        """Start watching ``job`` (a :class:`sage_core.JobHandle`); returns its collector."""
        with self._lock:
            collector = self._jobs.get(id(job))
            if collector is None:
                collector = self._jobs[id(job)] = PipelineCollector(job)
                self._cached = None
            return collector

    def finish(self, job: Any, summary: dict[str, Any] | None = None) -> None:
        """Freeze ``job``'s final figures; they stay in snapshots (the last ``keep_finished`` jobs)."""
        with self._lock:
            collector = self._jobs.get(id(job))
        if collector is None:
            return
        collector.finish(summary)
        with self._lock:
            finished = [key for key, c in self._jobs.items() if c.finished]
            for key in finished[: max(0, len(finished) - self.keep_finished)]:
                del self._jobs[key]
            self._cached = None

    def watching(self, job: Any) -> bool:
        """Whether ``job`` is watched."""
        with self._lock:
            return id(job) in self._jobs

    @property
    def running(self) -> int:
        """How many watched jobs have not finished."""
        with self._lock:
            return sum(1 for c in self._jobs.values() if not c.finished)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, max_age_s: float | None = None) -> dict[str, Any]:
        """``{"time", "jobs": [...], "collectors": {name: figures}}``; reused while younger than ``max_age_s``."""
        max_age = self.max_age_s if max_age_s is None else max_age_s
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached_at < max_age:
                return self._cached
            jobs = list(self._jobs.values())
            snapshot = {
                "time": time.time(),
                "jobs": [_collect_job(collector) for collector in jobs],
                "collectors": self._collect_others(),
            }
            self._cached, self._cached_at = snapshot, now
            return snapshot

    def _collect_others(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for collector in self._collectors():
            name = getattr(collector, "name", type(collector).__name__)
            try:
                figures[name] = collector.collect()
            except Exception as exc:  # a broken collector shows its error, the others still report
                figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
                if name not in self._broken:
                    self._broken.add(name)
                    log.warning("metrics collector %r failed: %s", name, exc)
        return figures


def _collect_job(collector: PipelineCollector) -> dict[str, Any]:
    try:
        return collector.collect()
    except Exception as exc:  # one job's broken figures must not hide the others
        log.debug("reading job %r failed", collector.job.name, exc_info=True)
        return {
            "job": collector.job.name,
            "status": "unknown",
            "error": f"{type(exc).__name__}: {exc}",
            "operators": {},
            "queues": {},
            "graph": collector.graph,
        }


def _registered_collectors() -> list[Any]:
    from sage_core.plugin import get_plugin_manager

    return get_plugin_manager().collectors()
