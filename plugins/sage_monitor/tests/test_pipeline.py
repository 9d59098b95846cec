"""The pipeline collector on real jobs: counts, throughput, latency, queues, errors, services."""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import pytest

from sage_core import LocalEnvironment
from sage_monitor.pipeline import PipelineCollector, percentile


def test_final_figures_match_the_job_summary_and_rates_are_job_means() -> None:
    env = LocalEnvironment("bounded")
    env.from_batch(range(10_000)).map(lambda n: n + 1, name="inc").filter(lambda n: n % 2 == 0, name="even").sink(
        lambda n: None, name="drop"
    )
    job = env.submit(autostop=True)
    env.close()
    collector = PipelineCollector(job)
    summary = job.summary()
    final = collector.finish(summary)
    assert final["status"] == "finished"
    assert list(final["operators"])[0].startswith("source"), "operators come in graph order, source first"
    for op_id, figures in summary["operators"].items():
        ours = final["operators"][op_id]
        assert (ours["in"], ours["out"], ours["failed"]) == (figures["in"], figures["out"], figures["failed"])
        expected = (figures["out"] if figures["kind"] == "source" else figures["in"]) / summary["elapsed_s"]
        assert ours["throughput"] == pytest.approx(expected)
    assert final["operators"]["even"]["filtered"] == 5_000
    assert collector.collect() is final, "after finish() every poll sees the frozen figures"


def test_throughput_is_the_rate_between_snapshots(start_job: Callable[..., Any]) -> None:
    job = start_job(rate=500.0)
    collector = PipelineCollector(job, min_interval_s=0.0)
    first = collector.collect()["operators"]["numbers"]["out"]
    advanced = threading.Event()
    while not advanced.wait(0.01):  # until the source has produced 200 more records
        if job.summary()["operators"]["numbers"]["out"] >= first + 200:
            advanced.set()
    figures = collector.collect()
    source = figures["operators"]["numbers"]
    assert source["throughput"] == pytest.approx((source["out"] - first) / figures["window_s"], rel=0.01)
    assert figures["operators"]["double"]["throughput"] == pytest.approx(figures["operators"]["double"]["rate_in"])
    assert figures["window_s"] > 0


def test_latency_percentiles_come_from_busy_time_per_record(start_job: Callable[..., Any]) -> None:
    job = start_job(rate=500.0)
    collector = PipelineCollector(job, min_interval_s=0.0)
    snapshots = [collector.collect()["operators"]["double"]]
    while len(snapshots) < 8:  # a snapshot each time the map has taken more records
        grew = threading.Event()
        while not grew.wait(0.01):
            if job.summary()["operators"]["double"]["in"] > snapshots[-1]["in"]:
                grew.set()
        snapshots.append(collector.collect()["operators"]["double"])
    per_record = sorted(
        (b["busy_s"] - a["busy_s"]) / (b["in"] - a["in"])
        for a, b in itertools.pairwise(snapshots)
        if b["in"] > a["in"] and b["busy_s"] > a["busy_s"]
    )
    latency = snapshots[-1]["latency_ms"]
    assert latency["samples"] == len(per_record) >= 3
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        assert latency[name] == pytest.approx(percentile(per_record, q) * 1000.0), name
    assert latency["mean"] == pytest.approx(snapshots[-1]["busy_s"] / snapshots[-1]["in"] * 1000.0)


def test_queue_depth_shows_batches_waiting_before_a_held_parallel_stage(
    start_job: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    release = threading.Event()

    def held(n: int) -> int:
        release.wait(30)
        return n

    config = {"job": {"batch_size": 4, "queue_size": 8}}
    job = start_job(rate=5000.0, map_fn=held, parallelism=2, config=config)
    collector = PipelineCollector(job, min_interval_s=0.0)
    try:
        queues = wait_for(lambda: {t: d for t, d in collector.collect()["queues"].items() if d > 0}, timeout=10)
        assert all(task.startswith("double") for task in queues), queues
        assert max(queues.values()) <= 8, "never more than queue_size batches wait"
    finally:
        release.set()


def test_failed_records_are_counted_as_errors_of_their_operator(
    start_job: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    def picky(n: int) -> int:
        if n % 10 == 0:
            raise ValueError(f"{n} is a multiple of ten")
        return n

    job = start_job(rate=2000.0, map_fn=picky, config={"job": {"error_policy": "skip"}})
    collector = PipelineCollector(job, min_interval_s=0.0)
    wait_for(lambda: collector.collect()["operators"]["double"]["errors"] >= 20)
    job.stop()
    final = collector.finish(job.summary())
    double = final["operators"]["double"]
    assert double["errors"] == double["failed"] == double["in"] // 10
    assert final["operators"]["numbers"]["errors"] == 0


class Broken:
    """A backend whose every call raises: the fallback serves instead."""

    def lookup(self, key: str) -> str:
        raise RuntimeError("the primary is down")


class Working:
    """The fallback backend."""

    def lookup(self, key: str) -> str:
        return key.upper()


def test_service_figures_show_calls_served_by_the_fallback_and_batch_sizes(wait_for: Callable[..., Any]) -> None:
    env = LocalEnvironment("services")
    env.register_service("names", Broken, fallback=[{"factory": Working}])
    env.register_service("embedder", kind="embedding", backend="hashing", options={"dim": 16}, device="cpu")

    def work(n: int) -> Any:
        env.services.sync["names"].lookup(key=f"k{n}")
        return env.services.async_["embedder"].embed(texts=f"text {n}")

    env.from_batch(range(400)).map(work, capacity=32, name="work").sink(lambda v: None, name="drop")
    job = env.submit(autostop=False)
    collector = PipelineCollector(job, min_interval_s=0.0)
    try:
        running = wait_for(lambda: (f := collector.collect()) and f["services"]["names"]["calls"] > 0 and f)
        assert running["services"]["names"]["calls_per_s"] >= 0
        job.wait(30)
        final = collector.finish(job.summary())
    finally:
        env.close()
    names = final["services"]["names"]
    assert names["calls"] == 400 and names["fallback_calls"] == 400
    fallback = [backend for backend in names["served_by"] if backend != next(iter(names["served_by"]))]
    assert fallback and names["served_by"][fallback[0]] == 400, names["served_by"]
    assert names["calls_per_s"] > 0
    embed = final["services"]["embedder"]["batch"]["embed"]
    assert embed["requests"] == 400 and embed["batches"] <= 400 and embed["max_rows"] >= 1


def test_percentile_interpolates_and_handles_edges() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
