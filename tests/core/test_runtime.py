"""Local runtime behaviour: backpressure, stopping, Ctrl-C, threads, asynchronous maps."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import psutil
import pytest

from sage_core import LocalEnvironment, SourceFunction

SINK_RECORDS = 50_000
"""Records the slow sink takes before the backpressure test looks at how far the source got."""


class Ticks(SourceFunction):
    """An unbounded source of increasing integers."""

    def __init__(self) -> None:
        self.n = 0

    def execute(self, data: object = None) -> int:
        self.n += 1
        return self.n


def test_ten_million_records_into_a_slow_sink_keep_memory_bounded(no_leaked_threads: None) -> None:
    process = psutil.Process()
    env = LocalEnvironment("pressure", config={"job": {"queue_size": 8, "batch_size": 256}})
    produced, seen, most_ahead = [0], [0], [0]
    enough = threading.Event()

    def records() -> Iterator[dict]:
        for i in range(10_000_000):
            produced[0] += 1
            yield {"id": i, "payload": "x" * 64}

    def slow_sink(record: dict) -> None:
        seen[0] += 1
        most_ahead[0] = max(most_ahead[0], produced[0] - seen[0])
        if seen[0] % 256 == 0:
            time.sleep(0.002)  # the workload: a sink far slower than the source
        if seen[0] == SINK_RECORDS:
            enough.set()

    env.from_batch(records()).map(lambda r: r, parallelism=2).sink(slow_sink)  # queues between the three
    before = process.memory_info().rss
    job = env.submit(autostop=False)
    assert enough.wait(120), f"the sink saw only {seen[0]} records"
    grown = process.memory_info().rss - before
    job.stop()
    env.close()
    # without backpressure the source runs millions of records ahead (over 2 GB); queues hold a few thousand
    assert most_ahead[0] < 20_000, f"the source ran {most_ahead[0]} records ahead of the sink"
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_unbounded_source_stops_on_stop_and_drains(no_leaked_threads: None) -> None:
    env = LocalEnvironment("unbounded")
    got: list[int] = []
    first = threading.Event()

    def sink(value: int) -> None:
        got.append(value)
        first.set()

    env.from_source(Ticks).map(lambda x: x * 10).sink(sink)
    job = env.submit(autostop=False)
    assert first.wait(10), "no record reached the sink"
    assert job.status == "running"
    assert job.stop() == "stopped"
    env.close()
    summary = job.summary()["operators"]
    assert summary["source"]["out"] == len(got) > 0


def test_ctrl_c_stops_an_unbounded_job_cleanly(tmp_path) -> None:
    script = tmp_path / "forever.py"
    script.write_text(
        textwrap.dedent(
            """
            import signal
            import threading
            from sage_core import LocalEnvironment, SourceFunction

            signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the parent ignores SIGINT

            class Ticks(SourceFunction):
                def execute(self, data=None):
                    return 1

            env = LocalEnvironment("forever")
            env.from_source(Ticks).sink(lambda x: None)
            try:
                job = env.submit(autostop=False)
                print("started", flush=True)
                job.wait()
            except KeyboardInterrupt:
                env.close()
                alive = [t.name for t in threading.enumerate() if t.name.startswith("sage-") and t.is_alive()]
                print("stopped", job.status, alive, flush=True)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == "stopped stopped []"


def test_no_thread_is_left_behind(no_leaked_threads: None) -> None:
    env = LocalEnvironment("threads")
    stream = env.from_batch(range(1000)).map(lambda x: x, parallelism=3)
    stream.keyby(lambda x: x % 5).map(lambda x: x, parallelism=2).sink(lambda x: None)
    env.submit()
    env.close()


@pytest.mark.parametrize("ordered", [True, False])
def test_map_returning_futures_keeps_capacity_in_flight(ordered: bool) -> None:
    capacity = 16
    pool = ThreadPoolExecutor(max_workers=2 * capacity)
    in_flight, peak, lock = [0], [0], threading.Lock()
    capacity_reached = threading.Event()
    pending: list[Future] = []
    most_pending = [0]

    def slow_square(x: int) -> int:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            if in_flight[0] == capacity:
                capacity_reached.set()
        if not capacity_reached.wait(10):  # the first calls hold until the map has them all in flight
            capacity_reached.set()  # it never had: let the rest run, and the asserts below fail
        with lock:
            in_flight[0] -= 1
        return x * x

    def call(x: int) -> Future:  # called by the map's one thread
        pending[:] = [f for f in pending if not f.done()]
        most_pending[0] = max(most_pending[0], len(pending))
        pending.append(pool.submit(slow_square, x))
        return pending[-1]

    env = LocalEnvironment("async")
    got: list[int] = []
    env.from_batch(range(300)).map(call, capacity=capacity, ordered=ordered).map(lambda y: y + 1).sink(got.append)
    job = env.submit()
    env.close()
    pool.shutdown()
    expected = [x * x + 1 for x in range(300)]
    assert (got if ordered else sorted(got)) == expected
    assert peak[0] == capacity, f"{peak[0]} calls in flight at most, capacity {capacity}"
    assert most_pending[0] == capacity - 1, f"the map made a call with {most_pending[0]} others unfinished, capacity {capacity}"
    assert job.summary()["operators"]["map"]["out"] == 300


def test_map_returning_several_futures_gets_all_results() -> None:
    pool = ThreadPoolExecutor(max_workers=4)
    env = LocalEnvironment("async-many")
    got: list = []
    env.from_batch(range(10)).map(lambda x: [pool.submit(abs, -x), pool.submit(str, x)]).sink(got.append)
    env.submit()
    env.close()
    pool.shutdown()
    assert sorted(got) == [[x, str(x)] for x in range(10)]


def test_task_threads_are_named_after_their_chain() -> None:
    env = LocalEnvironment("names")
    names: list[str] = []
    env.from_batch([1]).map(lambda x: threading.current_thread().name).sink(names.append)
    env.submit()
    env.close()
    assert names == ["sage-task-source+map+append#0"]


def test_gc_thresholds_are_raised_while_a_job_runs_and_restored_after() -> None:
    import gc

    before = gc.get_threshold()
    seen: list[tuple] = []
    env = LocalEnvironment("gc")
    env.from_batch(range(3)).map(lambda x: gc.get_threshold()).sink(seen.append)
    env.submit()
    env.close()
    assert seen[0][0] >= 20_000 and gc.get_threshold() == before
