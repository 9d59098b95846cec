"""Timeouts for asynchronous calls without a thread per call: one scheduler thread, one heap.

Cancelled entries stay in the heap until they surface or the heap is compacted (when it holds
more than twice the live entries), so memory stays proportional to the calls in flight.

Cancelling takes no lock: every call that finishes in time cancels its deadline, often in bursts on
the thread that splits a batch among its callers, while callers schedule new ones; a shared lock
there made the two hand it (and the GIL) back and forth once per call.
"""

from __future__ import annotations

import heapq
import logging
import itertools
import threading
import time
from typing import Callable

log = logging.getLogger("sage.services")


class Deadline:
    """A scheduled callback; :meth:`cancel` it when the call finished in time."""

    __slots__ = ("when", "seq", "callback", "_owner")

    def __init__(self, when: float, seq: int, callback: Callable[[], None], owner: "DeadlineScheduler") -> None:
        self.when = when
        self.seq = seq
        self.callback: Callable[[], None] | None = callback
        self._owner = owner

    def __lt__(self, other: "Deadline") -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        """Drop the callback (no effect once it has fired; one firing at this very moment may still run)."""
        if self.callback is not None:
            self.callback = None  # one attribute store: atomic, the scheduler skips cleared entries
            self._owner.cancels += 1


class DeadlineScheduler:
    """Runs callbacks at their deadlines on one daemon thread (started on first use)."""

    def __init__(self, name: str = "sage-deadlines") -> None:
        self.name = name
        self._heap: list[Deadline] = []
        self._scheduled = 0
        self.cancels = 0
        """Deadlines cancelled so far (counted without a lock: it only steers compaction)."""
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` (on the scheduler thread) after ``delay_s`` seconds unless cancelled."""
        entry = Deadline(time.monotonic() + delay_s, next(self._seq), callback, self)
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._scheduled += 1
            if len(self._heap) > 2 * (self._scheduled - self.cancels) + 256:
                self._heap = [e for e in self._heap if e.callback is not None]
                heapq.heapify(self._heap)
                self._scheduled, self.cancels = len(self._heap) + 1, 0
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def close(self) -> None:
        """Stop the thread; pending callbacks never fire. Idempotent."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    head = self._heap[0]
                    if head.callback is None:
                        heapq.heappop(self._heap)
                        continue
                    wait = head.when - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                entry = heapq.heappop(self._heap)
                callback, entry.callback = entry.callback, None
                self._scheduled -= 1
            if callback is not None:
                try:
                    callback()
                except Exception:  # a failing callback must not stop the other deadlines
                    log.exception("deadline callback failed")


__all__ = ["Deadline", "DeadlineScheduler"]
