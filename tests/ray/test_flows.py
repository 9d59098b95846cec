"""The same flows on both runtimes: every test runs on LocalEnvironment, then on RemoteEnvironment.

Sinks write JSON lines into a directory (the ``written`` fixture) so that a sink running in a Ray
actor and one running in a thread are read back the same way.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from sage_core import JobFailed, MapFunction, SourceFunction
from sage_core.plugin import batchable


def test_map_filter_flatmap_across_parallel_tasks_deliver_every_record(environment, written) -> None:
    make_sink, read = written
    env = environment("flow")
    (
        env.from_batch(list(range(400)))
        .map(lambda x: x * 3, parallelism=2)
        .filter(lambda x: x % 2 == 0)
        .rebalance()
        .flatmap(lambda x: [x, -x], parallelism=3)
        .sink(make_sink(), parallelism=2)
    )
    job = env.submit()
    expected = [s * v for v in range(0, 1200, 3) if v % 2 == 0 for s in (1, -1)]
    assert sorted(read()) == sorted(expected)
    operators = job.summary()["operators"]
    assert job.status == "finished"
    assert operators["filter"] == operators["filter"] | {"in": 400, "out": 200, "filtered": 200}
    assert operators["flatmap"]["emitted"] == 400


def test_keyby_sends_every_record_of_a_key_to_one_instance(environment, written) -> None:
    make_sink, read = written
    env = environment("keyed")

    class Tag(MapFunction):
        def execute(self, record: dict) -> dict:
            return {**record, "instance": self.ctx.instance}

    words = [{"word": w} for w in ["a", "b", "c", "d", "e", "f"] * 20]
    env.from_batch(words).keyby(lambda r: r["word"]).map(Tag, parallelism=3).sink(make_sink())
    env.submit()
    rows = read()
    instances: dict[str, set[int]] = {}
    for row in rows:
        instances.setdefault(row["word"], set()).add(row["instance"])
    assert Counter(r["word"] for r in rows) == Counter(w["word"] for w in words)
    assert all(len(seen) == 1 for seen in instances.values())


def test_keyed_join_pairs_records_with_equal_keys(environment, written) -> None:
    make_sink, read = written
    env = environment("join")
    left = env.from_batch([("k1", "L1"), ("k2", "L2")]).keyby(lambda r: r[0])
    right = env.from_batch([("k1", "R1"), ("k1", "R1b"), ("k3", "R3")]).keyby(lambda r: r[0])
    left.join(right, lambda key, a, b: [key, a[1], b[1]], parallelism=2).sink(make_sink())
    env.submit()
    assert sorted(read()) == [["k1", "L1", "R1"], ["k1", "L1", "R1b"]]


def test_a_failing_record_fails_the_job_naming_the_operator(environment) -> None:
    env = environment("fails")

    def explode(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    env.from_batch(list(range(20))).map(explode, name="explode").sink(lambda x: None, parallelism=2)
    with pytest.raises(JobFailed, match=r"map .*explode \(explode\) failed on record 7: ValueError: seven"):
        env.submit()


def test_dead_letter_policy_keeps_failed_records_and_goes_on(environment, written) -> None:
    make_sink, read = written
    env = environment("letters", config={"job": {"error_policy": "dead_letter"}})
    env.from_batch(list(range(10))).map(lambda x: 10 // (x % 5), parallelism=2).sink(make_sink())
    job = env.submit()
    letters = job.dead_letters()
    assert sorted(letter.record for letter in letters) == [0, 5]
    assert all("ZeroDivisionError" in letter.error for letter in letters)
    assert len(read()) == 8 and job.summary()["dead_letters"] == 2


class Doubler:
    """A service whose method is batched: concurrent calls become one call on an array."""

    def __init__(self) -> None:
        self.calls = 0

    @batchable(arg="values", max_size=64, max_wait_ms=5)
    def double(self, values: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(values) * 2


class AsyncDouble(MapFunction):
    def execute(self, x: int) -> Any:
        return self.call_service_async["doubler"].double(np.array([x]))


def test_async_service_calls_keep_order_and_are_batched(environment, written) -> None:
    make_sink, read = written
    env = environment("async")
    env.register_service("doubler", Doubler, replicas=2)
    env.from_batch(list(range(300))).map(AsyncDouble, capacity=32).map(lambda a: int(a[0])).sink(make_sink())
    job = env.submit()
    assert read() == [2 * x for x in range(300)]
    doubler = job.summary()["services"]["doubler"]
    assert doubler["calls"] == 300 and doubler["errors"] == 0
    assert doubler["batch"]["double"]["mean_rows"] > 1.0


class Lookup(MapFunction):
    def execute(self, x: int) -> Any:
        return self.call_service["vdb"].search(np.eye(4, dtype=np.float32)[x % 4], top_k=1)[0].id


def test_sharded_replicated_store_with_fallback_answers_like_one_store(environment, written) -> None:
    make_sink, read = written
    env = environment("shards")
    env.register_service("vdb", kind="vdb", backend="numpy", options={"dim": 4}, shards=2, replicas=2, fallback=["numpy"])
    vdb = env.services.sync["vdb"]
    vdb.add(vectors=np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"])
    env.from_batch(list(range(8))).map(Lookup, parallelism=2).sink(make_sink())
    job = env.submit()
    assert sorted(read()) == sorted(["a", "b", "c", "d"] * 2)
    metrics = job.summary()["services"]["vdb"]
    assert vdb.count() == 4
    assert [b["backend"] for b in metrics["backends"]] == ["numpy", "numpy#1"]
    assert len(metrics["backends"][0]["replicas"]) == 4


class Flaky:
    """A primary backend that always fails; the fallback answers."""

    def answer(self, x: int) -> int:
        raise RuntimeError("primary down")


class Steady:
    def answer(self, x: int) -> int:
        return x + 1


class Ask(MapFunction):
    def execute(self, x: int) -> int:
        return self.call_service["svc"].answer(x)


def test_fallback_answers_when_the_primary_raises(environment, written) -> None:
    make_sink, read = written
    env = environment("fallback")
    env.register_service("svc", Flaky, fallback=[Steady])
    env.from_batch(list(range(5))).map(Ask).sink(make_sink())
    job = env.submit()
    assert sorted(read()) == [1, 2, 3, 4, 5]
    served = job.summary()["services"]["svc"]["served_by"]
    assert served == {"Flaky": 0, "Steady": 5}


class Ticks(SourceFunction):
    """An unbounded source of increasing integers, a little slowly."""

    def __init__(self) -> None:
        self.n = 0

    def execute(self, data: Any = None) -> int:
        time.sleep(0.0005)
        self.n += 1
        return self.n


def test_unbounded_source_stops_and_drains(environment, written) -> None:
    make_sink, read = written
    env = environment("unbounded")
    env.from_source(Ticks).map(lambda x: x, parallelism=2).sink(make_sink())
    job = env.submit(autostop=False)
    deadline = time.monotonic() + 60
    while not read() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.status == "running"
    assert job.stop(timeout=60) == "stopped"
    got = read()
    assert job.summary()["operators"]["source"]["out"] == len(got) > 0
    assert sorted(got) == list(range(1, len(got) + 1))


def test_a_channel_delivers_batches_in_the_order_they_were_sent(environment, written) -> None:
    make_sink, read = written
    env = environment("order", config={"job": {"batch_size": 4, "queue_size": 8}})
    env.from_batch(list(range(600))).map(lambda x: x).rebalance().map(lambda x: x).sink(make_sink())
    env.submit()
    assert read() == list(range(600))


class Tokens:
    """A service with a streaming method."""

    def tokens(self, n: int) -> Any:
        for i in range(n):
            yield f"t{i}"


class Stream(MapFunction):
    def execute(self, n: int) -> list:
        streamed = list(self.call_service["gen"].tokens(n))
        collected = self.call_service_async["gen"].tokens(n).result()
        return [streamed, collected]


def test_streaming_methods_yield_items_and_async_calls_collect_them(environment, written) -> None:
    make_sink, read = written
    env = environment("streams")
    env.register_service("gen", Tokens)
    env.from_batch([1, 3]).map(Stream).sink(make_sink())
    env.submit()
    assert read() == [[["t0"], ["t0"]], [["t0", "t1", "t2"], ["t0", "t1", "t2"]]]


def test_a_service_failure_reaches_the_job_as_the_service_error(environment) -> None:
    env = environment("service-error")
    env.register_service("svc", Flaky)
    env.from_batch([1]).map(Ask).sink(lambda x: None)
    with pytest.raises(JobFailed) as failure:
        env.submit()
    assert "service 'svc': answer() failed on backend Flaky: RuntimeError: primary down" in str(failure.value)
    assert type(failure.value.cause).__name__ == "ServiceError" and failure.value.cause.service == "svc"


def test_collect_brings_records_back_to_the_driver_in_order(environment) -> None:
    env = environment("collect")
    doubled = env.from_batch(list(range(2000))).map(lambda x: x * 2).collect(max_buffered=512)
    env.submit()
    assert doubled.records == [x * 2 for x in range(2000)]


def test_collect_streams_while_the_job_runs(environment) -> None:
    env = environment("collect-live")
    live = env.from_source(Ticks).collect()
    job = env.submit(autostop=False)
    got: list[int] = []
    for record in live:
        got.append(record)
        if len(got) == 300:
            job.stop(timeout=60)
    assert got == list(range(1, len(got) + 1)) and len(got) >= 300


def slow_identity(x: int) -> int:
    """A map slow enough (10 ms a record) to keep a backlog behind it."""
    threading.Event().wait(0.01)
    return x


def test_cancel_ends_the_job_and_counts_what_it_dropped(environment) -> None:
    env = environment("cancel", config={"job": {"batch_size": 64, "queue_size": 8}})
    started = env.from_source(Ticks).rebalance().map(slow_identity).collect()
    job = env.submit(autostop=False)
    next(iter(started))
    assert job.cancel() == "cancelled"
    job.wait(timeout=60)
    operators = job.summary()["operators"]
    for op_id, f in operators.items():
        assert f["in"] == f["out"] + f["filtered"] + f["failed"] + f["cancelled"], (op_id, f)
    assert operators["source"]["out"] == operators["slow_identity"]["in"]


@pytest.mark.ray
def test_a_sink_appending_to_a_driver_list_on_ray_warns(environment, request) -> None:
    if request.node.callspec.params["environment"] != "ray":
        pytest.skip("a warning about Ray actors")
    env = environment("warns")
    results: list[int] = []
    env.from_batch([1, 2]).sink(results.append)
    with pytest.warns(RuntimeWarning, match=r"sink list.append \(append\) runs in a Ray actor.*stream.collect\(\)"):
        env.submit()


def test_collected_records_stay_readable_after_close(environment) -> None:
    env = environment("collect-close")
    got = env.from_batch([1, 2, 3]).collect()
    env.submit()
    env.close()
    assert got.records == [1, 2, 3]
