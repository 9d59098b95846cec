"""Source runners: where a task's records come from (an iterable, a BatchFunction, a SourceFunction)."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

from sage_core.runtime.records import OperatorStats


class SourceRunner:
    """Produces batches: ``next_batch(n)`` returns up to ``n`` records, ``None`` when exhausted.

    An unbounded source returns an empty list when nothing is ready.
    """

    def __init__(self, op_id: str, pull: Callable[[int], list | None], stats: OperatorStats, bounded: bool) -> None:
        self.op_id = op_id
        self._pull = pull
        self.stats = stats
        self.bounded = bounded

    def next_batch(self, size: int) -> list | None:
        """The next batch of records, ``[]`` for "none yet", ``None`` at the end."""
        batch = self._pull(size)
        if batch:
            self.stats.records_in += len(batch)
            self.stats.records_out += len(batch)
            self.stats.emitted += len(batch)
        return batch


def iterable_puller(iterable: Any) -> Callable[[int], list | None]:
    """Batches from any iterable (list, generator, ...)."""
    iterator: Iterator = iter(iterable)

    def pull(size: int) -> list | None:
        batch = list(itertools.islice(iterator, size))
        return batch or None

    return pull


def batch_function_puller(execute: Callable[[], Any]) -> Callable[[int], list | None]:
    """Batches from a :class:`BatchFunction` (``None`` from ``execute`` ends the stream)."""
    done = False

    def pull(size: int) -> list | None:
        nonlocal done
        if done:
            return None
        batch = []
        for _ in range(size):
            record = execute()
            if record is None:
                done = True
                break
            batch.append(record)
        return batch or None

    return pull


def source_function_puller(execute: Callable[[], Any]) -> Callable[[int], list | None]:
    """Batches from an unbounded :class:`SourceFunction` (``None`` means nothing ready now)."""

    def pull(size: int) -> list:
        batch = []
        for _ in range(size):
            record = execute()
            if record is None:
                break
            batch.append(record)
        return batch

    return pull
