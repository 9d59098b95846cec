"""Pipeline figures of one job: counts from ``job.metrics()`` plus rates and latencies between snapshots.

Nothing here runs per record. Each :meth:`PipelineCollector.collect` takes one ``job.metrics()``
snapshot (at most every ``min_interval_s``; pollers in between get the cached one) and derives:

* throughput: records per second between the newest snapshot and the oldest one still inside
  ``window_s`` (records in, or records out for a source);
* latency: the runtime times each batch an operator processes (``busy_s``). For every interval
  between two snapshots, ``Δbusy_s / Δrecords_in`` is the mean time the operator spent per record in
  that interval; the last ``history`` such values form the rolling window that p50/p95/p99 are taken
  from. ``mean`` is ``busy_s / records_in`` over the whole job. These are processing times inside the
  operator (a call that returns a future counts its submission, not the service's answer; service
  latency is the service's own figure);
* per service: calls per second from successive ``calls`` counts, next to the service's own figures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["PipelineCollector", "graph_view", "percentile"]


@dataclass(frozen=True)
class _Sample:
    t: float
    ops: dict[str, tuple[int, int, float]]
    """Per operator: records in, records out, busy seconds."""
    calls: dict[str, int]
    """Per service: calls so far."""


class PipelineCollector:
    """Figures of one running job (``job.metrics()`` enriched with rates and latency percentiles)."""

    def __init__(self, job: Any, *, window_s: float = 5.0, min_interval_s: float = 0.2, history: int = 300) -> None:
        self.job = job
        self.name = f"pipeline:{job.name}"
        self.window_s = window_s
        self.min_interval_s = min_interval_s
        self.graph = graph_view(job.graph)
        self._order = [op["id"] for chain in self.graph["chains"] for op in chain["operators"]]
        self._lock = threading.RLock()
        self._samples: deque[_Sample] = deque()
        self._per_record: dict[str, deque[float]] = {}
        self._history = history
        self._last: dict[str, Any] | None = None
        self._final: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` froze the final figures."""
        return self._final is not None

    def collect(self) -> dict[str, Any]:
        """The job's figures now (or the cached ones if the last snapshot is younger than ``min_interval_s``)."""
        with self._lock:
            if self._final is not None:
                return self._final
            now = time.monotonic()
            if self._last is not None and self._samples and now - self._samples[-1].t < self.min_interval_s:
                return self._last
            if self._last is not None and _ended_unannounced(self.job):
                return {**self._last, "status": "finishing"}
            self._last = self._enrich(self.job.metrics(), now, final=False)
            return self._last

    def finish(self, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """Freeze the final figures (rates become the job's mean rates); later collects return them."""
        with self._lock:
            if self._final is None:
                figures = dict(summary) if summary is not None else self.job.metrics()
                figures.setdefault("queues", {})
                self._final = self._enrich(figures, time.monotonic(), final=True)
            return self._final

    # ------------------------------------------------------------------ derivation

    def _enrich(self, metrics: dict[str, Any], now: float, *, final: bool) -> dict[str, Any]:
        unordered = metrics.get("operators", {})
        # graph order (sources first), then anything the graph does not name
        operators = {op: unordered[op] for op in self._order if op in unordered}
        operators.update({op: figures for op, figures in unordered.items() if op not in operators})
        services = metrics.get("services") or {}
        sample = _Sample(
            t=now,
            ops={
                op: (int(f.get("in", 0)), int(f.get("out", 0)), float(f.get("busy_s", 0.0)))
                for op, f in operators.items()
            },
            calls={name: int(s.get("calls", 0)) for name, s in services.items() if isinstance(s, dict)},
        )
        previous = self._samples[-1] if self._samples else None
        if previous is not None:
            self._record_latency(previous, sample)
        self._samples.append(sample)
        while len(self._samples) > 2 and now - self._samples[1].t >= self.window_s:
            self._samples.popleft()
        oldest = self._samples[0]
        span = now - oldest.t
        elapsed = float(metrics.get("elapsed_s") or 0.0)
        ops_out = {}
        for op_id, figures in operators.items():
            records_in, records_out, busy_s = sample.ops[op_id]
            if final or span <= 0:
                rate_in = records_in / elapsed if elapsed > 0 else 0.0
                rate_out = records_out / elapsed if elapsed > 0 else 0.0
            else:
                before = oldest.ops.get(op_id, (0, 0, 0.0))
                rate_in = (records_in - before[0]) / span
                rate_out = (records_out - before[1]) / span
            is_source = figures.get("kind") == "source"
            ops_out[op_id] = {
                **figures,
                "errors": int(figures.get("failed", 0)),
                "rate_in": rate_in,
                "rate_out": rate_out,
                "throughput": rate_out if is_source else rate_in,
                "latency_ms": self._latency(op_id, records_in, busy_s),
            }
        services_out = {}
        for name, figures in services.items():
            if not isinstance(figures, dict):
                services_out[name] = figures
                continue
            calls = int(figures.get("calls", 0))
            before_calls = oldest.calls.get(name, 0)
            if final or span <= 0:
                rate = calls / elapsed if elapsed > 0 else 0.0
            else:
                rate = (calls - before_calls) / span
            services_out[name] = {**figures, "calls_per_s": rate}
        return {
            **metrics,
            "operators": ops_out,
            "services": services_out,
            "queues": metrics.get("queues", {}),
            "graph": self.graph,
            "window_s": 0.0 if final else round(span, 3),
        }

    def _record_latency(self, previous: _Sample, sample: _Sample) -> None:
        for op_id, (records_in, _, busy_s) in sample.ops.items():
            before = previous.ops.get(op_id)
            if before is None:
                continue
            d_in, d_busy = records_in - before[0], busy_s - before[2]
            if d_in > 0 and d_busy > 0:
                window = self._per_record.setdefault(op_id, deque(maxlen=self._history))
                window.append(d_busy / d_in)

    def _latency(self, op_id: str, records_in: int, busy_s: float) -> dict[str, float | None]:
        window = sorted(self._per_record.get(op_id, ()))
        mean = busy_s / records_in * 1000.0 if records_in else None
        return {
            "mean": mean,
            "p50": _ms(percentile(window, 0.50)),
            "p95": _ms(percentile(window, 0.95)),
            "p99": _ms(percentile(window, 0.99)),
            "samples": len(window),
        }


def _ended_unannounced(job: Any) -> bool:
    """The job's tasks ended but nobody has read ``job.status`` or waited yet.

    ``job.metrics()`` would then run the job-finished hooks on the poller's thread (the monitor's
    own request thread, which those hooks stop); the owner's ``wait()`` runs them instead.
    """
    runtime = getattr(job, "runtime", None)
    return getattr(job, "ended_at", 0.0) is None and runtime is not None and bool(runtime.join(0))


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of an ascending list by linear interpolation; ``None`` when empty."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def graph_view(graph: Any) -> dict[str, Any]:
    """The physical graph as JSON-ready data: chains (tasks) with their operators, and channels."""
    chains = []
    for chain in graph.chains.values():
        operators = []
        for op_id in chain.operators:
            spec = graph.operator(op_id)
            operators.append(
                {"id": op_id, "kind": getattr(spec.kind, "value", str(spec.kind)), "parallelism": spec.parallelism}
            )
        chains.append({"id": chain.id, "operators": operators, "parallelism": chain.parallelism})
    channels = [
        {
            "source": c.source,
            "target": c.target,
            "partitioning": getattr(c.partitioning, "value", str(c.partitioning)),
            "slot": c.slot,
        }
        for c in graph.channels
    ]
    return {"chains": chains, "channels": channels, "mermaid": graph.to_mermaid()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
