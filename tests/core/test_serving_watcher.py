"""The job's record watcher (``env.set_record_watcher``): told of every record that fails or is dropped."""

from __future__ import annotations

from typing import Any

import pytest

from sage_core import LocalEnvironment
from sage_core.runtime.records import DeadLetter


class Watcher:
    """Keeps what it is told."""

    def __init__(self) -> None:
        self.failed_records: list[tuple[str, Any]] = []
        self.dropped_records: list[tuple[str, Any]] = []

    def failed(self, letter: DeadLetter) -> None:
        self.failed_records.append((letter.operator, letter.record))

    def dropped(self, operator: str, records: list[Any]) -> None:
        self.dropped_records.extend((operator, record) for record in records)


def explode(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
def test_the_watcher_sees_each_record_failed_or_dropped_and_where(policy: str, collected: list) -> None:
    watcher = Watcher()
    with LocalEnvironment("watched", config={"job": {"error_policy": policy, "batch_size": 4}}) as env:
        env.set_record_watcher(watcher)
        (
            env.from_batch(range(20))
            .filter(lambda x: x % 3 != 0, name="no-threes")   # drops 0, 3, ..., 18
            .map(explode, name="explode")                      # fails on 7
            .flatmap(lambda x: [x] if x % 5 else [], name="no-fives")  # drops 5, 10
            .sink(collected.append)
        )
        env.submit()
    assert sorted(watcher.dropped_records) == sorted(
        [("no-threes", x) for x in range(0, 20, 3)] + [("no-fives", 5), ("no-fives", 10)]
    )
    assert watcher.failed_records == [("explode", 7)]
    assert sorted(collected) == [x for x in range(20) if x % 3 and x % 5 and x != 7]


@pytest.mark.timeout(60)
def test_a_filter_dropping_nothing_tells_the_watcher_nothing(collected: list) -> None:
    watcher = Watcher()
    with LocalEnvironment("quiet") as env:
        env.set_record_watcher(watcher)
        env.from_batch(range(10)).filter(lambda x: True).flatmap(lambda x: [x]).sink(collected.append)
        env.submit()
    assert watcher.dropped_records == [] and watcher.failed_records == [] and len(collected) == 10
