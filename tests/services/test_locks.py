"""The readers-writer lock backends share: readers overlap, a writer is alone, writers are not starved."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from sage_core.plugin import ReadWriteLock

WAIT_S = 5.0
"""How long a test waits for something that must happen (generous: the machine may be loaded)."""
BLOCKED_S = 0.2
"""How long a test watches something that must not happen."""

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def lock() -> ReadWriteLock:
    """A fresh lock."""
    return ReadWriteLock()


def start(target: Callable[[], None]) -> threading.Thread:
    """Run ``target`` on a daemon thread (a deadlocked lock must not hang the test run)."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


class SignallingCondition(threading.Condition):
    """A condition variable that sets :attr:`waited` when a thread first waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        """Signal, then wait as a plain condition does."""
        self.waited.set()
        return super().wait(timeout)


def test_readers_hold_the_lock_together(lock: ReadWriteLock) -> None:
    both_inside = threading.Barrier(3, timeout=WAIT_S)

    def reader() -> None:
        with lock.read():
            both_inside.wait()  # breaks (and the test fails) unless both readers are inside at once

    threads = [start(reader), start(reader)]
    both_inside.wait()
    for thread in threads:
        thread.join(WAIT_S)
    assert not both_inside.broken


def test_writer_waits_for_readers_and_readers_wait_for_writer(lock: ReadWriteLock) -> None:
    release_reader, writer_inside = threading.Event(), threading.Event()
    release_writer, late_reader_inside = threading.Event(), threading.Event()
    reader_inside = threading.Event()

    def reader() -> None:
        with lock.read():
            reader_inside.set()
            release_reader.wait(WAIT_S)

    def writer() -> None:
        with lock.write():
            writer_inside.set()
            release_writer.wait(WAIT_S)

    def late_reader() -> None:
        with lock.read():
            late_reader_inside.set()

    start(reader)
    assert reader_inside.wait(WAIT_S)
    start(writer)
    assert not writer_inside.wait(BLOCKED_S), "a writer got in while a reader held the lock"
    release_reader.set()
    assert writer_inside.wait(WAIT_S)
    start(late_reader)
    assert not late_reader_inside.wait(BLOCKED_S), "a reader got in while a writer held the lock"
    release_writer.set()
    assert late_reader_inside.wait(WAIT_S)


def test_writers_exclude_each_other(lock: ReadWriteLock) -> None:
    inside = 0
    most_inside = 0
    counter = threading.Lock()

    def writer() -> None:
        nonlocal inside, most_inside
        for _ in range(50):
            with lock.write():
                with counter:
                    inside += 1
                    most_inside = max(most_inside, inside)
                time.sleep(0.0005)  # the workload: a write that takes a while
                with counter:
                    inside -= 1

    threads = [start(writer) for _ in range(4)]
    for thread in threads:
        thread.join(WAIT_S * 4)
    assert most_inside == 1


def test_waiting_writer_goes_before_readers_arriving_after_it(lock: ReadWriteLock) -> None:
    order: list[str] = []
    first_inside, release_first = threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_inside.set()
            release_first.wait(WAIT_S)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("reader")

    lock._cond = condition = SignallingCondition()  # tells when the writer queues behind the reader
    start(first_reader)
    assert first_inside.wait(WAIT_S)
    writer_thread = start(writer)
    assert condition.waited.wait(WAIT_S), "the writer never waited for the reader"
    late_thread = start(late_reader)
    late_thread.join(BLOCKED_S)
    assert order == [], "a reader arriving after a waiting writer went in ahead of it"
    release_first.set()
    writer_thread.join(WAIT_S)
    late_thread.join(WAIT_S)
    assert order == ["writer", "reader"]


def test_a_stream_of_readers_does_not_starve_a_writer(lock: ReadWriteLock) -> None:
    stop = threading.Event()
    writer_done = threading.Event()

    all_reading = threading.Barrier(5, timeout=WAIT_S)

    def busy_reader() -> None:  # overlapping reads: without writer preference the lock is never free
        with lock.read():
            all_reading.wait()
        while not stop.is_set():
            with lock.read():
                time.sleep(0.001)  # the workload: a read that takes a while

    readers = [start(busy_reader) for _ in range(4)]
    all_reading.wait()  # every reader holds the lock at once before the writer comes

    def writer() -> None:
        with lock.write():
            writer_done.set()

    start(writer)
    try:
        assert writer_done.wait(WAIT_S), "the writer never got the lock past a stream of readers"
    finally:
        stop.set()
        for thread in readers:
            thread.join(WAIT_S)


def test_lock_is_released_when_the_block_raises(lock: ReadWriteLock) -> None:
    with pytest.raises(RuntimeError, match="inside write"):
        with lock.write():
            raise RuntimeError("inside write")
    with pytest.raises(RuntimeError, match="inside read"):
        with lock.read():
            raise RuntimeError("inside read")
    acquired = threading.Event()

    def writer() -> None:
        with lock.write():
            acquired.set()

    start(writer)
    assert acquired.wait(WAIT_S)
