"""Batcher: concurrent requests stacked into one backend call and split back in order."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Iterator

import numpy as np
import pytest

from sage_core.errors import ServiceClosed
from sage_core.services.batching import Batcher, BatchSpec, batch_spec, batchable


class RowSums:
    """Returns one value per stacked row and records every call it received."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    @batchable(arg="rows", max_size=64, max_wait_ms=50)
    def total(self, rows: Any, scale: int = 1) -> list[float] | float:
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.shape == (3,):  # one row alone: a scalar, like a contract's 1-D query
            self.calls.append(1)
            return float(matrix.sum()) * scale
        if matrix.ndim != 2 or matrix.shape[1] != 3:
            raise ValueError(f"rows must have 3 columns, got shape {matrix.shape}")
        self.calls.append(len(matrix))
        return [float(r.sum()) * scale for r in matrix]

    @batchable(arg="texts", max_wait_ms=50)
    def upper(self, texts: list[str]) -> list[str]:
        self.calls.append(len(texts))
        return [t.upper() for t in texts]


@pytest.fixture
def backend() -> RowSums:
    return RowSums()


@pytest.fixture
def queue_of(backend: RowSums) -> Iterator[Any]:
    made: list[Batcher] = []

    def make(method: str, **overrides: Any) -> Batcher:
        bound = getattr(backend, method)
        spec = batch_spec(bound)
        spec = BatchSpec(spec.arg, overrides.get("max_size", spec.max_size), overrides.get("max_wait_ms", spec.max_wait_ms))
        made.append(Batcher(bound, spec))
        return made[-1]

    yield make
    for q in made:
        q.close()


def submit_together(queue: Batcher, requests: list[dict[str, Any]]) -> list[Future]:
    """Submit every request from its own thread, released at the same moment."""
    barrier = threading.Barrier(len(requests))
    futures: list[Future | None] = [None] * len(requests)

    def go(i: int) -> None:
        barrier.wait()
        futures[i] = queue.submit((), requests[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return futures  # type: ignore[return-value]


def test_concurrent_calls_are_stacked_into_few_backend_calls(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    futures = submit_together(queue, [{"rows": np.full(3, i, dtype=np.float32)} for i in range(32)])
    assert [f.result(5) for f in futures] == [3.0 * i for i in range(32)]
    assert sum(backend.calls) == 32 and len(backend.calls) < 8


def test_single_and_batch_callers_get_their_own_share(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    futures = submit_together(
        queue,
        [
            {"rows": np.ones(3, dtype=np.float32)},
            {"rows": np.full((2, 3), 2.0, dtype=np.float32)},
            {"rows": np.full(3, 5.0, dtype=np.float32)},
        ],
    )
    assert futures[0].result(5) == 3.0
    assert futures[1].result(5) == [6.0, 6.0]
    assert futures[2].result(5) == 15.0


def test_list_arguments_are_concatenated_and_a_string_is_one_item(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("upper")
    futures = submit_together(queue, [{"texts": ["a", "b"]}, {"texts": "c"}, {"texts": ["d"]}])
    assert [f.result(5) for f in futures] == [["A", "B"], "C", ["D"]]
    assert backend.calls == [4]


def test_requests_with_different_other_arguments_are_not_mixed(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    futures = submit_together(queue, [{"rows": np.ones(3), "scale": 1 + i % 2} for i in range(8)])
    assert [f.result(5) for f in futures] == [3.0 * (1 + i % 2) for i in range(8)]
    assert sorted(backend.calls) == [4, 4]


def test_a_bad_request_fails_only_its_own_caller(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    requests = [{"rows": np.ones(3)} for _ in range(6)] + [{"rows": np.ones(4)}]
    futures = submit_together(queue, requests)
    assert [f.result(5) for f in futures[:6]] == [3.0] * 6
    with pytest.raises(ValueError, match="3 columns"):
        futures[6].result(5)


def test_max_size_caps_the_rows_of_one_call(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total", max_size=5)
    futures = submit_together(queue, [{"rows": np.ones(3)} for _ in range(20)])
    assert [f.result(5) for f in futures] == [3.0] * 20
    assert max(backend.calls) <= 5 and sum(backend.calls) == 20


def test_positional_arguments_are_bound_by_name(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    assert queue.submit((np.ones(3),), {"scale": 3}).result(5) == 9.0


def test_wrong_number_of_results_is_reported_to_every_caller(queue_of: Any) -> None:
    class Broken:
        @batchable(arg="items", max_wait_ms=50)
        def run(self, items: list[int]) -> list[int]:
            return [1]

    queue = Batcher(Broken().run, batch_spec(Broken.run))
    try:
        futures = submit_together(queue, [{"items": [1]}, {"items": [2]}])
        for future in futures:
            with pytest.raises(ValueError, match="one result per input row"):
                future.result(5)
    finally:
        queue.close()


def test_async_batchable_method_is_batched_on_the_event_loop() -> None:
    class AsyncDoubler:
        def __init__(self) -> None:
            self.calls: list[int] = []

        @batchable(arg="values", max_wait_ms=50)
        async def double(self, values: list[int]) -> list[int]:
            self.calls.append(len(values))
            await asyncio.sleep(0.01)
            return [2 * v for v in values]

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    backend = AsyncDoubler()
    queue = Batcher(backend.double, batch_spec(backend.double), loop=loop)
    try:
        futures = submit_together(queue, [{"values": i} for i in range(16)])
        assert [f.result(5) for f in futures] == [2 * i for i in range(16)]
        assert sum(backend.calls) == 16 and len(backend.calls) < 4
    finally:
        queue.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_close_runs_queued_requests_and_refuses_new_ones(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    pending = queue.submit((), {"rows": np.ones(3)})
    queue.close()
    assert pending.result(5) == 3.0
    with pytest.raises(ServiceClosed):
        queue.submit((), {"rows": np.ones(3)}).result(5)


def test_decorator_keeps_the_method_callable_and_validates_its_arguments() -> None:
    assert RowSums().total(np.ones((2, 3))) == [3.0, 3.0]
    with pytest.raises(ValueError, match="max_size"):
        batchable("rows", max_size=0)
    with pytest.raises(ValueError, match="names no parameter"):
        Batcher(RowSums().total, BatchSpec("nope"))


def test_stats_count_batches_requests_and_rows(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    for f in submit_together(queue, [{"rows": np.ones((2, 3))} for _ in range(4)]):
        f.result(5)
    stats = queue.stats()
    assert stats["requests"] == 4 and stats["rows"] == 8 and stats["batches"] == len(backend.calls)


class Gate:
    """A sync batchable method that blocks until released and counts the calls running at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most_running = 0
        self.entered = threading.Semaphore(0)
        self._lock = threading.Lock()

    @batchable(arg="rows", max_wait_ms=0, max_in_flight=2)
    def echo(self, rows: list[int]) -> list[int]:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.entered.release()
        self.release.wait(10)
        with self._lock:
            self.running -= 1
        return list(rows)


@pytest.mark.parametrize("in_flight", [1, 2])
def test_max_in_flight_bounds_the_stacked_calls_running_at_once(in_flight: int) -> None:
    gate = Gate()
    queue = Batcher(gate.echo, BatchSpec("rows", max_wait_ms=0, max_in_flight=in_flight))
    try:
        first = queue.submit((), {"rows": [1]})
        assert gate.entered.acquire(timeout=5)
        second = queue.submit((), {"rows": [2]})
        both_running = gate.entered.acquire(timeout=0.5)
        assert both_running == (in_flight == 2)
        gate.release.set()
        assert (first.result(5), second.result(5)) == ([1], [2])
        assert gate.most_running == in_flight
    finally:
        gate.release.set()
        queue.close()


def test_every_batching_thread_stops_on_close_and_late_calls_are_refused() -> None:
    gate = Gate()
    gate.release.set()
    queue = Batcher(gate.echo, batch_spec(gate.echo))
    results = [queue.submit((), {"rows": [i]}) for i in range(20)]
    queue.close()
    assert [f.result(5) for f in results] == [[i] for i in range(20)]
    assert not any(thread.is_alive() for thread in queue._threads)
    with pytest.raises(ServiceClosed):
        queue.submit((), {"rows": [0]}).result(5)
    with pytest.raises(ValueError, match="max_in_flight"):
        batchable("rows", max_in_flight=0)


class Adaptive(Gate):
    """Chooses its calls in flight from its own state, as a GPU store does."""

    def __init__(self, on_gpu: bool) -> None:
        super().__init__()
        self.on_gpu = on_gpu

    @batchable(arg="rows", max_wait_ms=0, max_in_flight=lambda backend: 2 if backend.on_gpu else 1)
    def echo(self, rows: list[int]) -> list[int]:
        return Gate.echo(self, rows)


@pytest.mark.parametrize(("on_gpu", "threads"), [(True, 2), (False, 1)])
def test_max_in_flight_may_be_a_function_of_the_backend(on_gpu: bool, threads: int) -> None:
    backend = Adaptive(on_gpu)
    queue = Batcher(backend.echo, batch_spec(backend.echo))
    try:
        assert len(queue._threads) == threads
    finally:
        queue.close()


def test_batches_stop_waiting_once_as_many_callers_as_last_time_have_asked(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total", max_wait_ms=4000)  # a window far longer than the waits below allow
    first = submit_together(queue, [{"rows": np.full(3, i, dtype=np.float32)} for i in range(4)])
    assert [f.result(10) for f in first] == [0.0, 3.0, 6.0, 9.0]  # the first window runs out: 4 callers
    again = submit_together(queue, [{"rows": np.full(3, i, dtype=np.float32)} for i in range(4)])
    assert [f.result(2) for f in again] == [0.0, 3.0, 6.0, 9.0]  # all 4 in: no need to wait the window
    assert backend.calls == [4, 4]


def test_a_lone_caller_is_not_held_for_the_window(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total", max_wait_ms=4000)
    assert queue.submit((), {"rows": np.ones(3)}).result(10) == 3.0  # the first window runs out: 1 caller
    for i in range(3):
        assert queue.submit((), {"rows": np.full(3, i, dtype=np.float32)}).result(2) == 3.0 * i
    assert backend.calls == [1, 1, 1, 1]


def test_positional_arguments_bind_like_a_direct_call(backend: RowSums, queue_of: Any) -> None:
    queue = queue_of("total")
    assert queue.submit((np.ones(3), 2)).result(5) == 6.0
    assert queue.submit((np.ones(3),), {"scale": 3}).result(5) == 9.0
    with pytest.raises(TypeError):
        queue.submit((np.ones(3),), {"rows": np.ones(3)})  # rows given twice
    with pytest.raises(TypeError):
        queue.submit((np.ones(3), 2, 3))  # one positional argument too many
    with pytest.raises(TypeError):
        queue.submit((), {"scale": 2})  # rows missing
