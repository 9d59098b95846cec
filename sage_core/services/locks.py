"""Concurrency helpers shared by backends: a readers-writer lock.

Backends run under a service's thread pool, so several requests may call one backend at once.
A store whose reads can safely overlap (a search reading arrays while another search reads them
too) guards its state with :class:`ReadWriteLock`: reads share the lock, writes hold it alone.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class ReadWriteLock:
    """Many concurrent readers, or one writer alone.

    Writers are preferred: once a writer waits, new readers wait behind it, so a steady stream of
    readers cannot starve writes (readers already inside finish first). A steady stream of writers
    can, in turn, delay readers; that suits stores whose writes are rarer than their reads.

    Not reentrant: a thread holding the lock (either way) must not acquire it again, and a reader
    cannot upgrade to a writer; both deadlock.

    Example::

        lock = ReadWriteLock()
        with lock.read():     # shared with other readers
            ...
        with lock.write():    # exclusive
            ...
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared with other readers, for the ``with`` block."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock alone, for the ``with`` block."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: let the readers held back go on
                self._writers_waiting -= 1
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


__all__ = ["ReadWriteLock"]
