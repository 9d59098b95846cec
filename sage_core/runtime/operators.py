"""Operator runners: apply one operator instance to batches of records.

The fast path is a plain loop over the batch with no per-record bookkeeping; when the user's
function raises, the loop resumes after the failing record once the error policy has handled it
(so no record is processed twice). Both runtimes use these runners.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from sage_core.compiler.logical import OperatorSpec, OpKind
from sage_core.runtime.async_calls import AsyncCalls, is_pending
from sage_core.runtime.errors import ErrorPolicy
from sage_core.runtime.records import OperatorStats

DEFAULT_CAPACITY = 256


class OperatorRunner:
    """Runs one operator instance; subclasses implement :meth:`process`."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy) -> None:
        self.spec = spec
        self.call = call
        self.errors = errors
        self.stats = OperatorStats()

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

    def fail(self, record: Any, exc: BaseException) -> None:
        """Count a failed record and apply the error policy."""
        self.stats.failed += 1
        self.errors.handle(self.spec, record, exc)


class MapRunner(OperatorRunner):
    """One output per record. A function returning Futures switches the runner to asynchronous mode."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy) -> None:
        super().__init__(spec, call, errors)
        self.async_calls: AsyncCalls | None = None
        if spec.capacity is not None:
            self.async_calls = AsyncCalls(self, spec.capacity, spec.ordered)

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        if self.async_calls is not None:
            return self._process_async(batch)
        out: list = []
        append = out.append
        fn = self.call
        it = iter(batch)
        while True:
            try:
                for x in it:
                    append(fn(x))
                break
            except Exception as exc:
                self.fail(x, exc)
        if out and is_pending(out[0]):
            self.async_calls = AsyncCalls(self, DEFAULT_CAPACITY, self.spec.ordered)
            return self.async_calls.submit(batch, out)
        stats.records_out += len(out)
        stats.emitted += len(out)
        return out

    def _process_async(self, batch: list) -> list:
        """Call the function record by record, never holding more than ``capacity`` calls in flight."""
        out: list = []
        fn = self.call
        calls = self.async_calls
        assert calls is not None
        for x in batch:
            try:
                result = fn(x)
            except Exception as exc:
                self.fail(x, exc)
                continue
            calls.submit_one(x, result, out)
        out.extend(calls.poll())
        return out

    def poll(self) -> list:
        return self.async_calls.poll() if self.async_calls else []

    def flush(self) -> list:
        return self.async_calls.drain() if self.async_calls else []

    @property
    def pending(self) -> int:
        return self.async_calls.in_flight if self.async_calls else 0


class FilterRunner(OperatorRunner):
    """Keeps the records for which the function returns true."""

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        append = out.append
        fn = self.call
        failed = stats.failed
        it = iter(batch)
        while True:
            try:
                for x in it:
                    if fn(x):
                        append(x)
                break
            except Exception as exc:
                self.fail(x, exc)
        stats.records_out += len(out)
        stats.emitted += len(out)
        stats.filtered += len(batch) - len(out) - (stats.failed - failed)
        return out


class FlatMapRunner(OperatorRunner):
    """Zero or more outputs per record; a record yielding none counts as filtered."""

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        extend = out.extend
        fn = self.call
        failed = stats.failed
        empty = 0
        it = iter(batch)
        while True:
            try:
                for x in it:
                    result = fn(x)
                    items = list(result) if result is not None else ()
                    if items:
                        extend(items)
                    else:
                        empty += 1
                break
            except Exception as exc:
                self.fail(x, exc)
        stats.filtered += empty
        stats.records_out += len(batch) - empty - (stats.failed - failed)
        stats.emitted += len(out)
        return out


class KeyByRunner(OperatorRunner):
    """Pairs each record with its key; the channel after it partitions by the key."""

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        append = out.append
        fn = self.call
        it = iter(batch)
        while True:
            try:
                for x in it:
                    append((fn(x), x))
                break
            except Exception as exc:
                self.fail(x, exc)
        stats.records_out += len(out)
        stats.emitted += len(out)
        return out


class SinkRunner(OperatorRunner):
    """Consumes records."""

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        fn = self.call
        failed = stats.failed
        it = iter(batch)
        while True:
            try:
                for x in it:
                    fn(x)
                break
            except Exception as exc:
                self.fail(x, exc)
        stats.records_out += len(batch) - (stats.failed - failed)
        return []


class CoMapRunner(OperatorRunner):
    """Two inputs: ``call`` is a pair of functions, one per input slot."""

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        append = out.append
        fn = self.call[slot]
        it = iter(batch)
        while True:
            try:
                for x in it:
                    append(fn(x))
                break
            except Exception as exc:
                self.fail(x, exc)
        stats.records_out += len(out)
        stats.emitted += len(out)
        return out


class JoinRunner(OperatorRunner):
    """Symmetric hash join of two keyed inputs (records arrive as ``(key, record)`` pairs)."""

    def __init__(self, spec: OperatorSpec, call: Callable[..., Any], errors: ErrorPolicy) -> None:
        super().__init__(spec, call, errors)
        self.state: dict[Any, tuple[list, list]] = defaultdict(lambda: ([], []))

    def process(self, batch: list, slot: int = 0) -> list:
        stats = self.stats
        stats.records_in += len(batch)
        out: list = []
        for key, record in batch:
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

