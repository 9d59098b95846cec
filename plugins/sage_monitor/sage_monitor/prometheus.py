"""Prometheus exposition: a custom collector turning a hub snapshot into metric families on scrape.

No global mutable gauges: every scrape reads :meth:`MonitorHub.snapshot` and builds fresh families
in a registry of its own (not ``prometheus_client.REGISTRY``). Names follow Prometheus conventions:
base units (seconds, bytes, hertz, watts, ratios 0..1), ``_total`` for counters, labels ``job``,
``operator``, ``task``, ``service``, ``backend``, ``replica``, ``gpu``.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric

from sage_monitor.hub import MonitorHub

__all__ = ["SnapshotCollector", "gpu_families", "job_families", "render"]

QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))

JOB_STATUSES = ("running", "finishing", "finished", "stopped", "cancelled", "failed")
"""Every status ``sage_job_status`` reports (``finishing``: the tasks ended, the owner has not waited yet)."""


class SnapshotCollector:
    """A ``prometheus_client`` collector reading the hub on every ``collect()``."""

    def __init__(self, hub: MonitorHub) -> None:
        self.hub = hub

    def describe(self) -> list[Metric]:
        """Nothing up front (the families depend on the jobs being watched)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The families of one snapshot."""
        snapshot = self.hub.snapshot()
        yield from job_families(snapshot.get("jobs", []))
        yield from gpu_families(snapshot.get("collectors", {}).get("gpu"))


def render(hub: MonitorHub, accept: str = "") -> tuple[bytes, str]:
    """The exposition of the hub's figures and its content type (what ``GET /metrics`` returns).

    The format follows the scraper's ``Accept`` header as ``prometheus_client`` negotiates it: the
    text format 0.0.4 by default, OpenMetrics or text 1.0.0 when asked for.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(hub))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


# --------------------------------------------------------------------------- jobs and operators


def job_families(jobs: list[dict[str, Any]]) -> Iterator[Metric]:
    """Job, operator, queue and service families for every watched job."""
    running = GaugeMetricFamily("sage_job_running", "1 while the job runs, 0 once it ended", labels=["job", "status"])
    statuses = GaugeMetricFamily(
        "sage_job_status",
        "1 for the job's current status, 0 for the others (" + " | ".join(JOB_STATUSES) + ")",
        labels=["job", "status"],
    )
    elapsed = GaugeMetricFamily(
        "sage_job_elapsed_seconds", "Seconds since the job started (to its end once ended)", labels=["job"]
    )
    records = CounterMetricFamily(
        "sage_operator_records",
        "Records an operator took in (direction=in) and produced (direction=out)",
        labels=["job", "operator", "direction"],
    )
    emitted = CounterMetricFamily(
        "sage_operator_emitted",
        "Records an operator passed downstream (flatmap: after expansion)",
        labels=["job", "operator"],
    )
    filtered = CounterMetricFamily("sage_operator_filtered", "Records a filter dropped", labels=["job", "operator"])
    failed = CounterMetricFamily("sage_operator_failed", "Records whose function raised", labels=["job", "operator"])
    cancelled = CounterMetricFamily(
        "sage_operator_cancelled",
        "Records a cancel (or a stop past its deadline) dropped: in = out + filtered + failed + cancelled",
        labels=["job", "operator"],
    )
    busy = CounterMetricFamily(
        "sage_operator_busy_seconds", "Seconds an operator spent processing batches", labels=["job", "operator"]
    )
    latency = GaugeMetricFamily(
        "sage_operator_record_latency_seconds",
        "Processing time per record: quantiles over a rolling window of batch intervals",
        labels=["job", "operator", "quantile"],
    )
    parallelism = GaugeMetricFamily(
        "sage_operator_parallelism", "Parallel instances of an operator", labels=["job", "operator"]
    )
    queues = GaugeMetricFamily("sage_queue_depth", "Batches waiting in a task's inbox", labels=["job", "task"])
    for job in jobs:
        name = str(job.get("job", ""))
        status = str(job.get("status", ""))
        running.add_metric([name, status], 1.0 if status == "running" else 0.0)
        for known in (*JOB_STATUSES, status) if status and status not in JOB_STATUSES else JOB_STATUSES:
            statuses.add_metric([name, known], 1.0 if known == status else 0.0)
        elapsed.add_metric([name], float(job.get("elapsed_s") or 0.0))
        for op_id, op in job.get("operators", {}).items():
            labels = [name, op_id]
            records.add_metric([*labels, "in"], op.get("in", 0))
            records.add_metric([*labels, "out"], op.get("out", 0))
            emitted.add_metric(labels, op.get("emitted", 0))
            filtered.add_metric(labels, op.get("filtered", 0))
            failed.add_metric(labels, op.get("failed", 0))
            cancelled.add_metric(labels, op.get("cancelled", 0))
            busy.add_metric(labels, float(op.get("busy_s", 0.0)))
            parallelism.add_metric(labels, op.get("parallelism", 1))
            figures = op.get("latency_ms") or {}
            for quantile, key in QUANTILES:
                if figures.get(key) is not None:
                    latency.add_metric([*labels, quantile], figures[key] / 1000.0)
        for task, depth in (job.get("queues") or {}).items():
            queues.add_metric([name, task], depth)
    yield from (running, statuses, elapsed, records, emitted, filtered, failed, cancelled, busy, latency, parallelism)
    yield queues
    yield from service_families(jobs)


def service_families(jobs: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per service: calls by serving backend, errors, fallbacks, latency, batch sizes, start failures,
    restarts, replica load.

    A start failure's reason (an exception's text) is no label (its values are unbounded): it is in the
    log line the service writes and in the dashboard; here each backend counts its failed replicas.
    """
    by_service = ["job", "service"]
    by_replica = ["job", "service", "backend", "replica"]
    calls = CounterMetricFamily(
        "sage_service_calls",
        "Calls a service answered, by the backend that served them",
        labels=[*by_service, "backend"],
    )
    errors = CounterMetricFamily("sage_service_errors", "Calls that failed on every backend", labels=by_service)
    timeouts = CounterMetricFamily("sage_service_timeouts", "Calls that ran past their deadline", labels=by_service)
    fallbacks = CounterMetricFamily(
        "sage_service_fallback_calls", "Calls served by a fallback instead of the primary backend", labels=by_service
    )
    in_flight = GaugeMetricFamily("sage_service_in_flight", "Calls in progress", labels=by_service)
    latency = GaugeMetricFamily(
        "sage_service_latency_seconds", "Call latency quantiles over recent calls", labels=[*by_service, "quantile"]
    )
    batch = GaugeMetricFamily(
        "sage_service_batch_size", "Rows per backend call of a batched method", labels=[*by_service, "method", "stat"]
    )
    batches = CounterMetricFamily(
        "sage_service_batches", "Backend calls a batched method made", labels=[*by_service, "method"]
    )
    rows = CounterMetricFamily(
        "sage_service_batch_rows", "Rows batched methods handed to the backend", labels=[*by_service, "method"]
    )
    usable = GaugeMetricFamily(
        "sage_service_backend_usable", "1 when a backend of the chain can serve", labels=[*by_service, "backend"]
    )
    start_failures = CounterMetricFamily(
        "sage_service_start_failures",
        "Replicas of a backend that failed to start and were skipped for the next fallback (reason: log, dashboard)",
        labels=[*by_service, "backend"],
    )
    restarts = CounterMetricFamily(
        "sage_service_restarts", "Process replicas restarted after their process died", labels=by_service
    )
    replica_restarts = CounterMetricFamily(
        "sage_service_replica_restarts",
        "Times a process replica was restarted after its process died",
        labels=by_replica,
    )
    load = GaugeMetricFamily(
        "sage_service_replica_in_flight", "Calls in flight on a replica (its load)", labels=by_replica
    )
    served = CounterMetricFamily("sage_service_replica_served", "Calls a replica served", labels=by_replica)
    failed = CounterMetricFamily("sage_service_replica_failed", "Calls that failed on a replica", labels=by_replica)
    for job in jobs:
        name = str(job.get("job", ""))
        for service, figures in (job.get("services") or {}).items():
            if not isinstance(figures, dict):
                continue
            labels = [name, service]
            for backend, count in (figures.get("served_by") or {}).items():
                calls.add_metric([*labels, str(backend)], count)
            errors.add_metric(labels, figures.get("errors", 0))
            timeouts.add_metric(labels, figures.get("timeouts", 0))
            fallbacks.add_metric(labels, figures.get("fallback_calls", 0))
            in_flight.add_metric(labels, figures.get("in_flight", 0))
            for key, value in (figures.get("latency_ms") or {}).items():
                if key.startswith("p") and key[1:].isdigit() and value is not None:
                    latency.add_metric([*labels, str(int(key[1:]) / 100)], value / 1000.0)
            for method, stats in (figures.get("batch") or {}).items():
                batches.add_metric([*labels, method], stats.get("batches", 0))
                rows.add_metric([*labels, method], stats.get("rows", 0))
                batch.add_metric([*labels, method, "mean"], stats.get("mean_rows", 0.0))
                batch.add_metric([*labels, method, "max"], stats.get("max_rows", 0))
            restarts.add_metric(labels, figures.get("restarts", 0))
            failures = {str(group.get("backend", "")): 0 for group in figures.get("backends") or []}
            for failure in figures.get("start_failures") or []:
                backend = str(failure.get("backend", ""))
                failures[backend] = failures.get(backend, 0) + 1
            for backend, count in failures.items():
                start_failures.add_metric([*labels, backend], count)
            for group in figures.get("backends") or []:
                backend = str(group.get("backend", ""))
                usable.add_metric([*labels, backend], 1.0 if group.get("usable") else 0.0)
                for replica in group.get("replicas") or []:
                    replica_labels = [*labels, backend, str(replica.get("replica", ""))]
                    load.add_metric(replica_labels, replica.get("in_flight", 0))
                    served.add_metric(replica_labels, replica.get("served", 0))
                    failed.add_metric(replica_labels, replica.get("failed", 0))
                    replica_restarts.add_metric(replica_labels, replica.get("restarts", 0))
    yield from (
        calls,
        errors,
        timeouts,
        fallbacks,
        in_flight,
        latency,
        batch,
        batches,
        rows,
        usable,
        start_failures,
        restarts,
        load,
        served,
        failed,
        replica_restarts,
    )


# --------------------------------------------------------------------------- GPUs


def gpu_families(figures: dict[str, Any] | None) -> Iterator[Metric]:
    """Per GPU utilisation, memory, temperature, power, SM clock, and memory per process."""
    figures = figures or {}
    available = GaugeMetricFamily("sage_gpu_available", "1 when NVML sees at least one GPU")
    available.add_metric([], 1.0 if figures.get("available") and figures.get("gpus") else 0.0)
    yield available
    per_gpu = {
        "utilization_gpu_pct": GaugeMetricFamily(
            "sage_gpu_utilization_ratio", "Share of time a kernel ran (0..1)", labels=["gpu", "name"]
        ),
        "utilization_memory_pct": GaugeMetricFamily(
            "sage_gpu_memory_utilization_ratio",
            "Share of time device memory was read or written (0..1)",
            labels=["gpu", "name"],
        ),
        "memory_used_bytes": GaugeMetricFamily(
            "sage_gpu_memory_used_bytes", "Device memory in use", labels=["gpu", "name"]
        ),
        "memory_total_bytes": GaugeMetricFamily(
            "sage_gpu_memory_total_bytes", "Device memory in all", labels=["gpu", "name"]
        ),
        "temperature_c": GaugeMetricFamily(
            "sage_gpu_temperature_celsius", "GPU core temperature", labels=["gpu", "name"]
        ),
        "power_w": GaugeMetricFamily("sage_gpu_power_watts", "Power draw", labels=["gpu", "name"]),
        "power_limit_w": GaugeMetricFamily(
            "sage_gpu_power_limit_watts", "Enforced power limit", labels=["gpu", "name"]
        ),
        "sm_clock_mhz": GaugeMetricFamily(
            "sage_gpu_sm_clock_hertz", "Streaming multiprocessor clock", labels=["gpu", "name"]
        ),
    }
    scale = {"utilization_gpu_pct": 0.01, "utilization_memory_pct": 0.01, "sm_clock_mhz": 1e6}
    process_memory = GaugeMetricFamily(
        "sage_gpu_process_memory_used_bytes", "Device memory a process holds", labels=["gpu", "pid", "process"]
    )
    for gpu in figures.get("gpus", []):
        labels = [str(gpu.get("index")), str(gpu.get("name") or "")]
        for key, family in per_gpu.items():
            if gpu.get(key) is not None:
                family.add_metric(labels, gpu[key] * scale.get(key, 1.0))
        for proc in gpu.get("processes", []):
            if proc.get("memory_used_bytes") is not None:
                process_memory.add_metric(
                    [labels[0], str(proc["pid"]), str(proc.get("name", ""))], proc["memory_used_bytes"]
                )
    yield from per_gpu.values()
    yield process_memory
