"""The runtime's edges as the monitor shows them: cancelled records, start failures, restarts, job statuses.

Real jobs (``cancelled_job`` and ``restarted_job`` in conftest.py) read through the served endpoints:
``/metrics`` parsed with prometheus_client's parser, ``/api/metrics`` as the dashboard reads it, and
``sage top --once --url``.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from sage_core.cli import build_cli
from sage_monitor.hub import MonitorHub
from sage_monitor.prometheus import JOB_STATUSES, job_families
from sage_monitor.server import MonitorServer

pytestmark = pytest.mark.timeout(120)

REASON = "RuntimeError: CUDA unavailable: no NVIDIA driver found"


def scrape(server: MonitorServer) -> dict[str, Any]:
    """``/metrics`` parsed into families by name."""
    with urllib.request.urlopen(server.url + "metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def api(server: MonitorServer) -> dict[str, Any]:
    """``/api/metrics``: what the dashboard polls."""
    with urllib.request.urlopen(server.url + "api/metrics", timeout=10) as response:
        return dict(json.load(response))


def values(family: Any, key: str, **labels: str) -> dict[str, float]:
    """``{sample.labels[key]: value}`` of the samples of ``family`` carrying ``labels``."""
    return {
        s.labels[key]: s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())
    }


def cells(line: str) -> list[str]:
    """The cells of one line of a rich table (header or row)."""
    return [cell.strip() for cell in re.split(r"[│┃]", line)[1:-1]]


def header_of(output: str, column: str) -> str:
    """The header line of the table that has ``column``."""
    return next(line for line in output.splitlines() if column in cells(line))


def test_cancelled_records_are_counted_per_operator_in_metrics_and_the_json(
    hub: MonitorHub, server: MonitorServer, cancelled_job: Any
) -> None:
    hub.watch(cancelled_job)
    summary = cancelled_job.summary()
    assert summary["status"] == "cancelled"
    families = scrape(server)

    cancelled = values(families["sage_operator_cancelled"], "operator", job="cancelled")
    assert cancelled == {op: f["cancelled"] for op, f in summary["operators"].items()}
    assert cancelled["lookup_slowly"] >= 32, "at least the batches waiting in the map's inbox were dropped"
    assert all(s.name == "sage_operator_cancelled_total" for s in families["sage_operator_cancelled"].samples)
    records_in = values(families["sage_operator_records"], "operator", job="cancelled", direction="in")
    records_out = values(families["sage_operator_records"], "operator", job="cancelled", direction="out")
    filtered = values(families["sage_operator_filtered"], "operator", job="cancelled")
    failed = values(families["sage_operator_failed"], "operator", job="cancelled")
    for op in summary["operators"]:
        assert records_in[op] == records_out[op] + filtered[op] + failed[op] + cancelled[op], op

    status = values(families["sage_job_status"], "status", job="cancelled")
    assert status == {known: float(known == "cancelled") for known in JOB_STATUSES}
    assert values(families["sage_job_running"], "status", job="cancelled") == {"cancelled": 0.0}

    (watched,) = api(server)["jobs"]
    assert watched["status"] == "cancelled"
    assert watched["operators"]["lookup_slowly"]["cancelled"] == summary["operators"]["lookup_slowly"]["cancelled"]


def test_a_backend_that_fails_to_start_is_counted_in_metrics_and_its_reason_is_in_the_json(
    hub: MonitorHub, server: MonitorServer, cancelled_job: Any
) -> None:
    hub.watch(cancelled_job)
    families = scrape(server)

    failures = values(families["sage_service_start_failures"], "backend", job="cancelled", service="names")
    assert failures == {"NoGpu": 1.0, "OnCpu": 0.0}
    (sample,) = [s for s in families["sage_service_start_failures"].samples if s.labels["backend"] == "NoGpu"]
    assert sample.name == "sage_service_start_failures_total"
    assert set(sample.labels) == {"job", "service", "backend"}, "the reason is no label (unbounded values)"
    every_label = {v for family in families.values() for s in family.samples for v in s.labels.values()}
    assert not [v for v in every_label if "CUDA" in v]
    usable = values(families["sage_service_backend_usable"], "backend", service="names")
    assert usable == {"NoGpu": 0.0, "OnCpu": 1.0}
    assert values(families["sage_service_restarts"], "service", job="cancelled") == {"names": 0.0}

    names = api(server)["jobs"][0]["services"]["names"]
    (failure,) = names["start_failures"]
    assert failure["backend"] == "NoGpu" and failure["reason"] == REASON and "NoGpu" in failure["replica"]
    assert names["restarts"] == 0 and names["served_by"]["NoGpu"] == 0 and names["served_by"]["OnCpu"] > 0


def test_a_restarted_process_replica_is_counted_per_service_and_per_replica(
    no_sage_threads: None, hub: MonitorHub, server: MonitorServer, restarted_job: Any
) -> None:
    hub.watch(restarted_job)
    families = scrape(server)
    assert values(families["sage_service_restarts"], "service", job="restarted") == {"where": 1.0}
    (replica,) = families["sage_service_replica_restarts"].samples
    assert replica.labels["service"] == "where" and replica.labels["backend"] == "Pid" and replica.value == 1.0
    assert values(families["sage_service_start_failures"], "backend", service="where") == {"Pid": 0.0}

    where = api(server)["jobs"][0]["services"]["where"]
    assert where["restarts"] == 1 and where["start_failures"] == []
    assert where["backends"][0]["replicas"][0]["restarts"] == 1


def test_top_shows_cancelled_records_start_failures_and_the_status(
    hub: MonitorHub, server: MonitorServer, cancelled_job: Any
) -> None:
    hub.watch(cancelled_job)
    dropped = cancelled_job.summary()["operators"]["lookup_slowly"]["cancelled"]
    result = CliRunner().invoke(build_cli(), ["top", "--once", "--url", server.url], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert "job cancelled  [cancelled]" in result.output
    header = header_of(result.output, "cancelled")
    row = next(line for line in result.output.splitlines() if "lookup_slowly" in line)
    assert cells(row)[cells(header).index("cancelled")] == f"{dropped:,}"
    service = next(line for line in result.output.splitlines() if cells(line)[:1] == ["names"])
    assert cells(service)[cells(header_of(result.output, "start failures")).index("start failures")] == "NoGpu 1"
    assert f"names · NoGpu (names/NoGpu/s0r0): {REASON}" in result.output


def test_top_shows_a_restart_count(hub: MonitorHub, server: MonitorServer, restarted_job: Any) -> None:
    hub.watch(restarted_job)
    result = CliRunner().invoke(build_cli(), ["top", "--once", "--url", server.url], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    header = header_of(result.output, "restarts")
    row = next(line for line in result.output.splitlines() if cells(line)[:1] == ["where"])
    assert cells(row)[cells(header).index("restarts")] == "1"
    assert "start failures (skipped" not in result.output, "no start failure, no list"


@pytest.mark.parametrize("status", [*JOB_STATUSES, "unknown"])
def test_the_status_gauge_has_one_sample_per_known_status(status: str) -> None:
    families = {f.name: f for f in job_families([{"job": "j", "status": status, "operators": {}}])}
    samples = {s.labels["status"]: s.value for s in families["sage_job_status"].samples}
    assert set(JOB_STATUSES) <= set(samples) and samples[status] == 1.0 and sum(samples.values()) == 1.0
