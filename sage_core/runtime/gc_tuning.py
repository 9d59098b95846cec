"""Fewer young-generation collections while jobs run.

Records in flight are many small, short-lived containers; with CPython's default threshold (700
allocations) the collector runs thousands of times per second and, with batches buffered in queues,
keeps rescanning survivors. Raising the first threshold while any job runs measured about 2x on the
keyed engine benchmark.

Calls in flight to a service (thousands of Futures, each with its lock and callbacks) survive young
collections and fill the older generations, whose collections then rescan them, and a full one
rescans the whole heap: with torch and a model loaded, hundreds of thousands of objects. So the
older thresholds rise too, and the heap that exists when the first job starts (libraries, models,
the services' backends) is frozen out of every collection (:func:`gc.freeze`) until the last
job ends. Together they made one-text-per-call embedding through a service 1.5x faster (GPU-like
backend, 4096 calls in flight). The previous thresholds come back, and the heap thaws, when the
last job ends.
"""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 20_000
OLDER_THRESHOLDS = (100, 1000)
"""Young collections per middle-generation one, and middle ones per full collection, while jobs run."""

_lock = threading.Lock()
_running = 0
_saved: tuple[int, int, int] | None = None


def job_started() -> None:
    """Raise the thresholds and freeze the heap (first running job only)."""
    global _running, _saved
    with _lock:
        _running += 1
        if _running == 1:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], YOUNG_THRESHOLD), *(max(a, b) for a, b in zip(_saved[1:], OLDER_THRESHOLDS)))
            gc.freeze()


def job_ended() -> None:
    """Restore the thresholds and thaw the heap once no job runs."""
    global _running, _saved
    with _lock:
        _running -= 1
        if _running == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            _saved = None
