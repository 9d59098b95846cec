"""``/metrics``: scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from typing import Any, Callable

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from sage_core import LocalEnvironment
from sage_monitor.hub import MonitorHub
from sage_monitor.prometheus import gpu_families


def scrape(url: str) -> tuple[str, dict[str, Any]]:
    """The response's content type and its families by name."""
    with urllib.request.urlopen(url + "metrics", timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    return content_type, {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any, **labels: str) -> list[Any]:
    """Samples of ``family`` whose labels include ``labels``."""
    return [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


class Broken:
    """A primary backend that always fails (the fallback serves)."""

    def lookup(self, key: str) -> str:
        raise RuntimeError("down")


class Working:
    """The fallback backend."""

    def lookup(self, key: str) -> str:
        return key


def test_metrics_endpoint_exposes_operators_queues_services_and_gpus(hub: MonitorHub, server: Any) -> None:
    env = LocalEnvironment("scraped", config={"job": {"error_policy": "skip"}})
    env.register_service("names", Broken, fallback=[{"factory": Working}])

    def work(n: int) -> int:
        if n % 50 == 0:
            raise ValueError("a bad record")
        env.services.sync["names"].lookup(key=str(n))
        return n

    env.from_batch(range(1000)).map(work, name="work").sink(lambda n: None, name="drop")
    job = env.submit(autostop=False)
    hub.watch(job)
    job.wait(30)
    metrics = job.metrics()
    env.close()

    content_type, families = scrape(server.url)
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    records = families["sage_operator_records"]
    assert records.type == "counter"
    for op_id, figures in metrics["operators"].items():
        (in_,) = samples(records, job="scraped", operator=op_id, direction="in")
        (out,) = samples(records, job="scraped", operator=op_id, direction="out")
        assert (in_.value, out.value) == (figures["in"], figures["out"])
        assert in_.name == "sage_operator_records_total"
    (failed,) = samples(families["sage_operator_failed"], operator="work")
    assert failed.value == 20
    assert {s.labels["task"] for s in families["sage_queue_depth"].samples} == set(metrics["queues"])
    calls = {
        s.labels["backend"]: s.value for s in samples(families["sage_service_calls"], job="scraped", service="names")
    }
    assert calls == metrics["services"]["names"]["served_by"] and sum(calls.values()) == 980
    (fallbacks,) = samples(families["sage_service_fallback_calls"], service="names")
    assert fallbacks.value == 980
    replicas = samples(families["sage_service_replica_served"], service="names")
    assert sum(s.value for s in replicas) == 980 and all("replica" in s.labels for s in replicas)
    assert families["sage_gpu_available"].samples[0].value in (0.0, 1.0)
    (running,) = families["sage_job_running"].samples
    assert running.value == 0.0 and running.labels["status"] == "finished"


def test_every_family_follows_prometheus_naming(hub: MonitorHub, server: Any, start_job: Callable[..., Any]) -> None:
    hub.watch(start_job(rate=1000.0))
    _, families = scrape(server.url)
    assert families, "a running job gives families"
    for name, family in families.items():
        assert name.startswith("sage_"), name
        assert family.documentation, f"{name} has no HELP text"
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == name + "_total"
            assert "job" in sample.labels or name.startswith("sage_gpu"), (name, sample.labels)


def test_figures_live_in_the_monitors_own_registry_not_the_global_one(
    hub: MonitorHub, server: Any, start_job: Callable[..., Any]
) -> None:
    hub.watch(start_job(rate=1000.0))
    scrape(server.url)
    global_names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not {name for name in global_names if name.startswith("sage_")}


def test_gpu_families_use_base_units() -> None:
    reading = {  # one H100 as GpuCollector reports it
        "available": True,
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "utilization_gpu_pct": 37,
                "utilization_memory_pct": 12,
                "memory_used_bytes": 8 * 2**30,
                "memory_total_bytes": 80 * 2**30,
                "temperature_c": 41,
                "power_w": 180.5,
                "power_limit_w": 700.0,
                "sm_clock_mhz": 1980,
                "processes": [
                    {"pid": 4242, "name": "python", "memory_used_bytes": 2**30},
                    {"pid": 7, "name": "x", "memory_used_bytes": None},
                ],
            }
        ],
    }
    families = {family.name: family for family in gpu_families(reading)}

    def value(name: str) -> float:
        return families[name].samples[0].value

    assert value("sage_gpu_available") == 1.0
    assert value("sage_gpu_utilization_ratio") == 0.37
    assert value("sage_gpu_memory_used_bytes") == 8 * 2**30
    assert value("sage_gpu_sm_clock_hertz") == 1.98e9
    assert value("sage_gpu_power_watts") == 180.5
    assert families["sage_gpu_utilization_ratio"].samples[0].labels == {"gpu": "0", "name": "NVIDIA H100 80GB HBM3"}
    processes = families["sage_gpu_process_memory_used_bytes"].samples
    assert [(s.labels["pid"], s.value) for s in processes] == [("4242", float(2**30))], (
        "unknown sizes are left out, not zero"
    )
