"""Records whose map function returned Futures: kept in flight up to a capacity, emitted on completion.

This is how one map task keeps a GPU service saturated: it does not wait for one call before
making the next. ``ordered=True`` emits in input order; otherwise results leave as they complete.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sage_core.runtime.operators import OperatorRunner

Pending = tuple[Any, Any]
"""``(input record, Future or list of Futures)``."""


class AsyncCalls:
    """The in-flight calls of one map operator instance."""

    def __init__(self, runner: "OperatorRunner", capacity: int, ordered: bool) -> None:
        self.runner = runner
        self.capacity = capacity
        self.ordered = ordered
        self.in_flight = 0
        self.wake: Callable[[], None] = lambda: None
        """Set by the task: called (from any thread) when a call completes and no wake-up is pending."""
        self._queue: deque[Pending] = deque()
        self._done: SimpleQueue[Pending] = SimpleQueue()
        self._wake_pending = False
        """One wake-up covers every call that completes before the task collects: a batch of 256
        results resolving at once wakes the task once, not 256 times."""

    def submit(self, records: list, results: list) -> list:
        """Accept a batch's results (Futures or values); returns outputs ready now."""
        out: list = []
        for record, result in zip(records, results):
            self.submit_one(record, result, out)
        out.extend(self._collect(block=False))
        return out

    def submit_one(self, record: Any, result: Any, out: list) -> None:
        """Accept one result; when ``capacity`` calls are in flight, wait for one into ``out``."""
        if not is_pending(result):
            self._emit(out, result)
            return
        self.in_flight += 1
        if self.ordered:
            self._queue.append((record, result))
            _on_done(result, self._completed)
        else:
            _on_done(result, lambda item=(record, result): (self._done.put(item), self._completed()))
        if self.in_flight >= self.capacity:
            out.extend(self._collect(block=True))

    def poll(self) -> list:
        """Outputs of calls finished so far (never blocks)."""
        return self._collect(block=False) if self.in_flight else []

    def drain(self) -> list:
        """Wait for every call in flight; their outputs."""
        out: list = []
        while self.in_flight:
            out.extend(self._collect(block=True))
        return out

    def cancel(self) -> int:
        """Give up every call in flight (their Futures are cancelled where possible); how many were dropped."""
        dropped = self.in_flight
        pending = [result for _, result in self._queue]
        while not self._done.empty():
            pending.append(self._done.get()[1])
        for result in pending:
            for future in result if isinstance(result, (list, tuple)) else (result,):
                future.cancel()
        self._queue.clear()
        self.in_flight = 0
        return dropped

    def _completed(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self.wake()

    def _collect(self, block: bool) -> list:
        self._wake_pending = False  # before reading: a call completing after this wakes the task again
        out: list = []
        if self.ordered:
            while self._queue and (_done(self._queue[0][1]) or (block and not out)):
                record, result = self._queue.popleft()
                self._finish(out, record, result)
                block = False
        else:
            while not self._done.empty() or (block and not out):
                record, result = self._done.get()
                self._finish(out, record, result)
                block = False
        return out

    def _finish(self, out: list, record: Any, result: Any) -> None:
        self.in_flight -= 1
        try:
            value = [f.result() for f in result] if isinstance(result, (list, tuple)) else result.result()
        except Exception as exc:
            self.runner.fail(record, exc)
            return
        self._emit(out, value)

    def _emit(self, out: list, value: Any) -> None:
        out.append(value)
        self.runner.stats.records_out += 1
        self.runner.stats.emitted += 1


def is_pending(result: Any) -> bool:
    """Whether a map result is a Future or a non-empty list of Futures."""
    return isinstance(result, Future) or (
        isinstance(result, (list, tuple)) and bool(result) and all(isinstance(f, Future) for f in result)
    )


def _done(result: Any) -> bool:
    if isinstance(result, Future):
        return result.done()
    return all(f.done() for f in result)


def _on_done(result: Any, callback: Callable[[], Any]) -> None:
    """Call ``callback`` once when ``result`` (a Future or a list of them) has completed."""
    if isinstance(result, Future):
        result.add_done_callback(lambda _f: callback())
        return
    remaining = [len(result)]
    lock = threading.Lock()

    def one_done(_f: Future) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    for future in result:
        future.add_done_callback(one_done)
