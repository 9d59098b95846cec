"""DeadlineScheduler: deadlines fire unless cancelled, and cancelled ones do not pile up."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from sage_core.services.deadlines import DeadlineScheduler


@pytest.fixture
def scheduler() -> Iterator[DeadlineScheduler]:
    made = DeadlineScheduler("test-deadlines")
    yield made
    made.close()


def test_due_deadlines_fire_in_order_and_cancelled_ones_never(scheduler: DeadlineScheduler) -> None:
    fired: list[str] = []
    last = threading.Event()
    scheduler.schedule(0.02, lambda: fired.append("first"))
    scheduler.schedule(0.03, lambda: fired.append("cancelled")).cancel()
    scheduler.schedule(0.05, lambda: (fired.append("last"), last.set()))
    assert last.wait(10)
    assert fired == ["first", "last"]


def test_cancelled_deadlines_are_compacted_away(scheduler: DeadlineScheduler) -> None:
    for _ in range(10_000):
        scheduler.schedule(3600, lambda: None).cancel()
    kept = scheduler.schedule(3600, lambda: None)
    assert len(scheduler._heap) <= 2 * 1 + 256 + 1 and kept in scheduler._heap


def test_cancelling_after_firing_changes_nothing(scheduler: DeadlineScheduler) -> None:
    fired = threading.Event()
    deadline = scheduler.schedule(0.0, fired.set)
    assert fired.wait(10)
    deadline.cancel()
    assert scheduler.cancels == 0
