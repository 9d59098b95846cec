"""The runtime's edges: stop, cancel, close, open/close failures, names in errors, key identity, submit."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from sage_core import BaseFunction, LocalEnvironment, MapFunction, SinkFunction, SourceFunction
from sage_core.errors import CloseFailed, JobFailed, OpenFailed

pytestmark = pytest.mark.timeout(60)


class Counter(SourceFunction):
    """An unbounded source of increasing integers."""

    def __init__(self) -> None:
        self.n = 0

    def execute(self, data: Any = None) -> int:
        self.n += 1
        return self.n


def assert_accounted(job: Any) -> dict[str, dict[str, int]]:
    """Every operator: in = out + filtered + failed + cancelled; returns the operators' figures."""
    operators = job.summary()["operators"]
    for op_id, f in operators.items():
        assert f["in"] == f["out"] + f["filtered"] + f["failed"] + f["cancelled"], (op_id, f)
    return operators


def backlogged_job(env: LocalEnvironment, per_record_s: float, backlog: int) -> tuple[Any, threading.Event]:
    """An unbounded source feeding a slow map; the event is set once ``backlog`` records the source
    made have not reached the map's function yet (they wait in its inbox)."""
    pace = threading.Event()  # never set: wait() paces the map (the workload)
    taken = [0]
    backlogged = threading.Event()

    class Ahead(SourceFunction):
        def __init__(self) -> None:
            self.n = 0

        def execute(self, data: Any = None) -> int:
            self.n += 1
            if self.n - taken[0] >= backlog:
                backlogged.set()
            return self.n

    def slow(x: int) -> int:
        taken[0] += 1
        pace.wait(per_record_s)
        return x

    env.from_source(Ahead).rebalance().map(slow).sink(lambda x: None)
    return env.submit(autostop=False), backlogged


def test_stop_drains_then_cancels_at_its_deadline_and_counts_what_it_dropped(no_leaked_threads: None) -> None:
    env = LocalEnvironment("stop", config={"job": {"queue_size": 16, "batch_size": 64}})
    job, backlogged = backlogged_job(env, per_record_s=0.005, backlog=8 * 64)  # 2.5 s of work left
    assert backlogged.wait(30)
    assert job.stop(timeout=0.2) == "cancelled"
    assert job.status == "cancelled"
    assert not job.runtime.running_tasks()
    ops = assert_accounted(job)
    assert ops["slow"]["cancelled"] > 0
    assert ops["source"]["out"] == ops["slow"]["in"]
    env.close()


def test_stop_that_drains_in_time_is_stopped(no_leaked_threads: None) -> None:
    env = LocalEnvironment("drains")
    got: list[int] = []
    first = threading.Event()
    env.from_source(Counter).map(lambda x: x * 2).sink(lambda x: (got.append(x), first.set()))
    job = env.submit(autostop=False)
    assert first.wait(10)
    assert job.stop() == "stopped"
    ops = assert_accounted(job)
    assert ops["source"]["out"] == len(got) and ops["map"]["cancelled"] == 0
    env.close()


def test_cancel_ends_at_once_with_a_hundred_thousand_records_buffered(no_leaked_threads: None) -> None:
    env = LocalEnvironment("cancel", config={"job": {"queue_size": 512, "batch_size": 256}})
    job, backlogged = backlogged_job(env, per_record_s=0.02, backlog=100_000 + 256)  # one batch: over 5 s
    assert backlogged.wait(30)
    assert job.cancel() == "cancelled"
    assert not job.runtime.running_tasks(), "cancel() returns once every task has ended (within 1 s)"
    ops = assert_accounted(job)
    assert ops["slow"]["cancelled"] >= 100_000
    assert ops["source"]["out"] == ops["slow"]["in"]
    env.close()


class SlowService:
    """A backend that answers after a pause, like a busy model."""

    def __init__(self) -> None:
        self.pause = threading.Event()

    def lookup(self, x: int) -> int:
        self.pause.wait(0.002)
        return x


class Lookup(MapFunction):
    def execute(self, x: int) -> int:
        return self.call_service["slow"].lookup(x)


def test_close_with_a_backlog_behind_a_slow_service_loses_nothing_silently(no_leaked_threads: None) -> None:
    env = LocalEnvironment("close", config={"job": {"error_policy": "dead_letter", "queue_size": 64}})
    env.register_service("slow", SlowService)
    got: list[int] = []
    first = threading.Event()

    def record(x: int) -> None:
        got.append(x)
        first.set()

    env.from_source(Counter).map(Lookup).sink(record)
    job = env.submit(autostop=False)
    assert first.wait(10)
    env.close()
    assert job.status in ("stopped", "cancelled")
    assert job.dead_letters() == [], "no record may fail because its service was closed under it"
    ops = assert_accounted(job)
    assert ops["lookup"]["failed"] == 0
    assert ops["record"]["in"] == len(got)


class Opened(MapFunction):
    closed = threading.Event()

    def open(self) -> None:
        type(self).closed.clear()

    def close(self) -> None:
        type(self).closed.set()

    def execute(self, x: int) -> int:
        return x


class BrokenOpen(MapFunction):
    def open(self) -> None:
        raise ConnectionError("no database")

    def execute(self, x: int) -> int:
        return x


def test_a_failing_open_names_the_function_and_closes_what_was_opened(no_leaked_threads: None) -> None:
    env = LocalEnvironment("open")
    env.from_batch(range(10)).map(Opened).map(BrokenOpen).sink(lambda x: None)
    with pytest.raises(OpenFailed, match=r"map BrokenOpen \(broken_open\): open\(\) raised ConnectionError: no database") as err:
        env.submit()
    assert isinstance(err.value.__cause__, ConnectionError)
    assert Opened.closed.is_set(), "the function opened before the failing one was closed"
    assert env.jobs[0].status == "failed"
    env.close()


class BrokenClose(MapFunction):
    def execute(self, x: int) -> int:
        return x

    def close(self) -> None:
        raise OSError("disk full")


class Flushing(SinkFunction):
    """Buffers records and writes them out in close()."""

    written: list[int] = []

    def __init__(self) -> None:
        self.buffer: list[int] = []

    def execute(self, x: int) -> None:
        self.buffer.append(x)

    def close(self) -> None:
        Flushing.written.extend(self.buffer)


def test_a_failing_close_is_reported_and_every_sink_still_flushes(no_leaked_threads: None) -> None:
    Flushing.written = []
    env = LocalEnvironment("close-fails")
    env.from_batch(range(1000)).map(BrokenClose).rebalance().map(BrokenClose, parallelism=2).sink(Flushing)
    with pytest.raises(CloseFailed) as err:
        env.submit()
    messages = [str(e) for e in err.value.exceptions]
    assert len(messages) == 3
    assert all("BrokenClose" in m and "close() raised OSError: disk full" in m for m in messages)
    assert sorted(Flushing.written) == list(range(1000))
    assert env.jobs[0].status == "failed"
    env.close()


def parse_record(record: str) -> int:
    return int(record)


def test_a_failed_record_names_the_users_function() -> None:
    env = LocalEnvironment("names")
    env.from_batch(["1", "x"]).map(parse_record).sink(lambda x: None)
    with pytest.raises(JobFailed, match=r"map .*parse_record \(parse_record\) failed on record 'x'") as err:
        env.submit()
    assert err.value.operator == "parse_record"
    env.close()


def test_operator_ids_are_readable_and_deduplicated() -> None:
    env = LocalEnvironment("ids")
    env.from_batch([1]).map(parse_record).map(parse_record).map(lambda x: x).map(Opened).sink(print)
    ids = [op.id for op in env.logical.operators()]
    assert ids == ["source", "parse_record", "parse_record_2", "map", "opened", "print"]


class PerKey(BaseFunction):
    """Records, per instance, the keys it saw and their types."""

    seen: dict[int, list[Any]] = {}
    lock = threading.Lock()

    def execute(self, key: Any, left: Any, right: Any) -> Any:
        with PerKey.lock:
            PerKey.seen.setdefault(self.ctx.instance, []).append(key)
        return (left, right)


def test_keys_equal_under_eq_share_one_instance_and_become_python_scalars() -> None:
    PerKey.seen = {}
    env = LocalEnvironment("keys")
    left = env.from_batch([3, 3.0, np.int64(3), np.float32(3.0), 7]).keyby(lambda k: k)
    right = env.from_batch([3, 7.0]).keyby(lambda k: k)
    got: list[Any] = []
    left.join(right, PerKey, parallelism=4).sink(got.append)
    env.submit()
    env.close()
    assert len(got) == 5, "every left 3 meets the right 3, and 7 meets 7.0"
    instances_with_three = [i for i, keys in PerKey.seen.items() if 3 in keys]
    assert len(instances_with_three) == 1
    assert not any(type(k).__module__ == "numpy" for keys in PerKey.seen.values() for k in keys)


def test_each_submit_runs_only_the_streams_built_since_the_previous_one() -> None:
    env = LocalEnvironment("twice")
    first: list[int] = []
    second: list[int] = []
    stream = env.from_batch([1, 2]).map(lambda x: x)
    stream.sink(first.append)
    env.submit()
    env.from_batch([3]).sink(second.append)
    env.submit()
    assert first == [1, 2] and second == [3]
    with pytest.raises(ValueError, match="already submitted"):
        stream.map(lambda x: x)
    env.close()


def test_collect_brings_every_record_back_after_submit() -> None:
    env = LocalEnvironment("collect")
    doubled = env.from_batch(range(50_000)).map(lambda x: x * 2).collect(max_buffered=4)
    env.submit()
    env.close()
    assert doubled.records == [x * 2 for x in range(50_000)]


def test_collect_streams_to_an_iterating_driver_with_backpressure(no_leaked_threads: None) -> None:
    env = LocalEnvironment("collect-live")
    live = env.from_source(Counter).collect(max_buffered=512)
    job = env.submit(autostop=False)
    got: list[int] = []
    for record in live:
        got.append(record)
        if len(got) == 1000:
            in_flight = job.summary()["operators"]["source"]["out"] - len(got)
            assert in_flight < 4 * 512, "the source waits while the driver does not read"
            job.stop()
    env.close()
    assert got[:1000] == list(range(1, 1001))
    assert got == list(range(1, len(got) + 1)), "in order of arrival, none lost"
    ops = assert_accounted(job)
    assert ops["collect"]["in"] == len(got)


def test_dead_letters_kept_in_memory_are_bounded_and_the_sink_sees_every_one() -> None:
    env = LocalEnvironment("letters", config={"job": {"error_policy": "dead_letter", "max_dead_letters": 10}})
    seen: list[Any] = []
    env.set_dead_letter_sink(seen.append)
    env.from_batch(range(100)).map(lambda x: 1 / 0).sink(lambda x: None)
    job = env.submit()
    env.close()
    assert len(seen) == 100 and job.summary()["dead_letters"] == 100
    assert [d.record for d in job.dead_letters()] == list(range(90, 100))
