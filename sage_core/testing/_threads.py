"""Run writers and readers on several threads at once, for the suites' concurrency checks.

Threads start together behind a barrier and the interpreter switches threads every 10 µs instead
of every 5 ms, so races that need an unlucky interleaving show up within a few hundred calls.
Readers repeat until every writer has finished (an event, no sleeps); any exception in any thread
fails the check with the thread's name.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

THREADS = 8
"""Threads every suite's concurrency check runs at once."""

SWITCH_INTERVAL_S = 1e-5


def run_concurrently(
    writers: Sequence[Callable[[], None]], readers: Sequence[Callable[[], None]] = (), timeout: float = 60.0
) -> None:
    """Run each writer once and each reader over and over until the writers are done, all at once.

    Raises ``AssertionError`` naming the first thread that raised (its exception chained), or the
    threads still running after ``timeout`` seconds (a deadlock).
    """
    writers_left = [len(writers)]
    done = threading.Event()
    counted = threading.Lock()
    barrier = threading.Barrier(len(writers) + len(readers))
    errors: list[tuple[str, BaseException]] = []

    def write(work: Callable[[], None]) -> None:
        try:
            work()
        finally:
            with counted:
                writers_left[0] -= 1
                if not writers_left[0]:
                    done.set()

    def read(work: Callable[[], None]) -> None:
        work()
        while not done.is_set():
            work()

    def guarded(run: Callable[[Callable[[], None]], None], work: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                barrier.wait(timeout)
                run(work)
            except BaseException as exc:  # noqa: BLE001 - every failure is reported below
                errors.append((threading.current_thread().name, exc))
                done.set()

        return body

    threads = [
        threading.Thread(target=guarded(write, w), name=f"writer-{i}", daemon=True) for i, w in enumerate(writers)
    ] + [threading.Thread(target=guarded(read, r), name=f"reader-{i}", daemon=True) for i, r in enumerate(readers)]
    with frequent_switches():
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {timeout:.0f} s (a deadlock?): {', '.join(stuck)}"
    if errors:
        name, exc = errors[0]
        msg = f"{len(errors)} of {len(threads)} threads failed; {name} raised {type(exc).__name__}: {exc}"
        raise AssertionError(msg) from exc


@contextmanager
def frequent_switches() -> Iterator[None]:
    """Make the interpreter switch threads every 10 µs inside the block."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


__all__ = ["THREADS", "run_concurrently"]
