"""Operator runners: apply one operator instance to batches of records.

Every runner calls the user's function over the whole batch with a C-level ``map`` and no
per-record bookkeeping (:meth:`OperatorRunner.call_each`); when the function raises, the error
policy handles that record and the loop resumes after it, so no record is processed twice. Both
runtimes use these runners.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain, compress
from typing import Any, Callable

from sage_core.compiler.logical import OperatorSpec, OpKind
from sage_core.compiler.partitioners import PLAIN_KEYS, canonical_key
from sage_core.runtime.async_calls import AsyncCalls, is_pending
from sage_core.runtime.errors import ErrorPolicy
from sage_core.runtime.permit import Permit
from sage_core.runtime.records import OperatorStats

DEFAULT_CAPACITY = 256

CANCEL_GRANULARITY_S = 0.02
"""Batches faster than this on average run to their end after a cancel; slower ones stop at the next record."""


class _Failed:
    """Stands in the results for a record whose call raised; false, so filters drop it."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False


FAILED = _Failed()


class OperatorRunner:
    """Runs one operator instance; subclasses implement :meth:`process`."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy, permit: Permit) -> None:
        self.spec = spec
        self.call = call
        self.errors = errors
        self.stats = OperatorStats()
        self.permit = permit
        """The task's permit (shared by its runners): revoked, records left in a batch are cancelled."""

    def process(self, batch: list, slot: int = 0) -> list:
        """Outputs for one input batch."""
        raise TypeError(f"{type(self).__name__} does not process records")

    def poll(self) -> list:
        """Outputs of asynchronous calls that finished since the last call."""
        return []

    def flush(self) -> list:
        """Outputs still owed once the input has ended (waits for pending calls)."""
        return []

    @property
    def pending(self) -> int:
        """Records accepted whose output is not produced yet."""
        return 0

    def cancel(self) -> None:
        """Drop what the runner still holds (the job was cancelled): counted as cancelled."""

    def admitted(self, batch: list) -> Any:
        """The records of ``batch`` this runner may still process: all of them unless the job is cancelled.

        A runner whose batches have taken under :data:`CANCEL_GRANULARITY_S` on average iterates the
        batch plainly (a cancel waits for the batch's end, soon); a slow one, or a new one, goes
        through its permit, which a cancel empties to stop at the next record.
        """
        stats = self.stats
        if stats.batches and stats.busy_s < CANCEL_GRANULARITY_S * stats.batches:
            return iter(batch)
        return compress(batch, self.permit.cover(len(batch)))

    def cancelled(self, count: int) -> None:
        """Count ``count`` records that reached this runner and were dropped by a cancel."""
        self.stats.cancelled += count

    def fail(self, record: Any, exc: BaseException) -> None:
        """Count a failed record and apply the error policy."""
        self.stats.failed += 1
        self.errors.handle(self.spec, record, exc)

    def filtered(self, count: int, batch: list, results: list) -> None:
        """Count ``count`` records of ``batch`` whose result is empty (false, not failed) as filtered.

        When the job has a record watcher, it is told which records they are.
        """
        self.stats.filtered += count
        if count and self.errors.watcher is not None:
            self.errors.dropped(self.spec, [r for r, result in zip(batch, results) if not result and result is not FAILED])

    def call_each(self, batch: list, fn: Callable[[Any], Any]) -> tuple[list, int]:
        """``fn`` of every record (a C-level ``map``) and how many failed; a failure leaves FAILED.

        When ``fn`` raises, the error policy handles the record and the loop resumes after it, so no
        record is processed twice. A cancel stops the loop at the next record: the results are then
        shorter than the batch, and the records left are counted as cancelled.
        """
        self.stats.records_in += len(batch)
        failed = self.stats.failed
        results: list = []
        extend = results.extend
        it = self.admitted(batch)
        while True:
            try:
                extend(map(fn, it))
                break
            except Exception as exc:
                self.fail(batch[len(results)], exc)
                results.append(FAILED)
        if len(results) < len(batch):
            self.cancelled(len(batch) - len(results))
        return results, self.stats.failed - failed

    def passed(self, out: list, consumed: int = 0) -> list:
        """Count ``out`` as passed downstream (``consumed``: records in that produced it)."""
        self.stats.records_out += consumed or len(out)
        self.stats.emitted += len(out)
        return out


def _without_failed(results: list, failed: int) -> list:
    return [r for r in results if r is not FAILED] if failed else results


class MapRunner(OperatorRunner):
    """One output per record. A function returning Futures switches the runner to asynchronous mode."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy, permit: Permit) -> None:
        super().__init__(spec, call, errors, permit)
        self.async_calls: AsyncCalls | None = None
        if spec.capacity is not None:
            self.async_calls = AsyncCalls(self, spec.capacity, spec.ordered)

    def process(self, batch: list, slot: int = 0) -> list:
        if self.async_calls is not None:
            return self._process_async(batch)
        results, failed = self.call_each(batch, self.call)
        out = _without_failed(results, failed)
        if out and is_pending(out[0]):
            self.async_calls = AsyncCalls(self, DEFAULT_CAPACITY, self.spec.ordered)
            kept = _without_failed(list(zip(batch, results)), failed) if failed else list(zip(batch, results))
            return self.async_calls.submit([r for r, _ in kept], [v for _, v in kept])
        return self.passed(out)

    def _process_async(self, batch: list) -> list:
        """Call the function record by record, never holding more than ``capacity`` calls in flight."""
        self.stats.records_in += len(batch)
        out: list = []
        fn = self.call
        calls = self.async_calls
        assert calls is not None
        done = 0
        for x in self.admitted(batch):
            done += 1
            try:
                result = fn(x)
            except Exception as exc:
                self.fail(x, exc)
                continue
            calls.submit_one(x, result, out)
        if done < len(batch):
            self.cancelled(len(batch) - done)
        out.extend(calls.poll())
        return out

    def poll(self) -> list:
        return self.async_calls.poll() if self.async_calls else []

    def cancel(self) -> None:
        if self.async_calls is not None:
            self.cancelled(self.async_calls.cancel())

    def flush(self) -> list:
        return self.async_calls.drain() if self.async_calls else []

    @property
    def pending(self) -> int:
        return self.async_calls.in_flight if self.async_calls else 0


class FilterRunner(OperatorRunner):
    """Keeps the records for which the function returns true."""

    def process(self, batch: list, slot: int = 0) -> list:
        results, failed = self.call_each(batch, self.call)
        out = list(compress(batch, results))
        self.filtered(len(results) - len(out) - failed, batch, results)
        return self.passed(out)


class FlatMapRunner(OperatorRunner):
    """Zero or more outputs per record; a record yielding none counts as filtered."""

    def process(self, batch: list, slot: int = 0) -> list:
        results, _ = self.call_each(batch, self._expand)
        out = list(chain.from_iterable(r for r in results if r))
        self.filtered(sum(1 for r in results if r is not FAILED and not r), batch, results)
        return self.passed(out, consumed=sum(1 for r in results if r))

    def _expand(self, record: Any) -> list:
        result = self.call(record)
        return list(result) if result is not None else []


class KeyByRunner(OperatorRunner):
    """Pairs each record with its key; the channel after it partitions by the key."""

    def process(self, batch: list, slot: int = 0) -> list:
        keys, failed = self.call_each(batch, self.call)
        pairs = list(zip(keys, batch))
        return self.passed([p for p in pairs if p[0] is not FAILED] if failed else pairs)


class SinkRunner(OperatorRunner):
    """Consumes records."""

    def process(self, batch: list, slot: int = 0) -> list:
        results, failed = self.call_each(batch, self.call)
        self.stats.records_out += len(results) - failed
        return []


class CoMapRunner(OperatorRunner):
    """Two inputs: ``call`` is a pair of functions, one per input slot."""

    def process(self, batch: list, slot: int = 0) -> list:
        results, failed = self.call_each(batch, self.call[slot])
        return self.passed(_without_failed(results, failed))


class JoinRunner(OperatorRunner):
    """Symmetric hash join of two keyed inputs (records arrive as ``(key, record)`` pairs)."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy, permit: Permit) -> None:
        super().__init__(spec, call, errors, permit)
        self.state: dict[Any, tuple[list, list]] = defaultdict(lambda: ([], []))

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        done = 0
        for key, record in self.admitted(batch):
            done += 1
            if type(key) not in PLAIN_KEYS:  # numpy scalars: the join state and function see Python ones
                key = canonical_key(key)
            sides = self.state[key]
            sides[slot].append(record)
            matched = 0
            try:
                for other in sides[1 - slot]:
                    left, right = (record, other) if slot == 0 else (other, record)
                    joined = self.call(key, left, right)
                    if joined is not None:
                        out.append(joined)
                        matched += 1
            except Exception as exc:
                self.fail(record, exc)
                continue
            if matched:
                stats.records_out += 1
            else:
                stats.filtered += 1
        if done < len(batch):
            self.cancelled(len(batch) - done)
        stats.emitted += len(out)
        return out


RUNNERS: dict[OpKind, type[OperatorRunner]] = {
    OpKind.MAP: MapRunner,
    OpKind.FILTER: FilterRunner,
    OpKind.FLATMAP: FlatMapRunner,
    OpKind.KEYBY: KeyByRunner,
    OpKind.SINK: SinkRunner,
    OpKind.COMAP: CoMapRunner,
    OpKind.JOIN: JoinRunner,
}

