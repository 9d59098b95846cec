"""Fewer young-generation collections while jobs run.

Records in flight are many small, short-lived containers; with CPython's default threshold (700
allocations) the collector runs thousands of times per second and, with batches buffered in queues,
keeps rescanning survivors. Raising the first threshold while any job runs measured about 2x on the
keyed engine benchmark. The previous thresholds come back when the last job ends.
"""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 20_000

_lock = threading.Lock()
_running = 0
_saved: tuple[int, int, int] | None = None


def job_started() -> None:
    """Raise the young-generation threshold (first running job only)."""
    global _running, _saved
    with _lock:
        _running += 1
        if _running == 1:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], YOUNG_THRESHOLD), _saved[1], _saved[2])


def job_ended() -> None:
    """Restore the thresholds once no job runs."""
    global _running, _saved
    with _lock:
        _running -= 1
        if _running == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
