"""A chain's operator instances bound to the user's functions, run back to back in one task."""

from __future__ import annotations

import copy
import inspect
import threading
import time
from time import perf_counter
from typing import Any, Callable

from sage_core.compiler.logical import OperatorSpec, OpKind
from sage_core.compiler.physical import Chain, PhysicalGraph
from sage_core.errors import OpenFailed
from sage_core.runtime.context import OperatorFunction, RuntimeContext
from sage_core.runtime.errors import ErrorPolicy, lifecycle_error
from sage_core.runtime.operators import RUNNERS, OperatorRunner
from sage_core.runtime.permit import Permit
from sage_core.runtime.records import OperatorStats
from sage_core.runtime.sources import (
    SourceRunner,
    batch_function_puller,
    iterable_puller,
    source_function_puller,
)


class BoundChain:
    """One task's instances of a chain's operators: an optional source, then runners in order."""

    def __init__(
        self,
        graph: PhysicalGraph,
        chain: Chain,
        instance: int,
        errors: ErrorPolicy,
        make_context: Callable[[OperatorSpec, int], RuntimeContext],
    ) -> None:
        self.chain = chain
        self.instance = instance
        self.source: SourceRunner | None = None
        self.runners: list[OperatorRunner] = []
        self.functions: list[tuple[OperatorSpec, Any]] = []
        self.permit = Permit()
        self.close_errors: list[Exception] = []
        """What ``close()`` raised, per function, at the end of :meth:`run_task`."""
        self._dropped: dict[str, int] = {}
        self._dropped_lock = threading.Lock()
        for op_id in chain.operators:
            spec = graph.operator(op_id)
            target = instantiate(spec, make_context(spec, instance))
            self.functions.append((spec, target))
            if spec.kind is OpKind.SOURCE:
                self.source = build_source(spec, target)
            else:
                self.runners.append(RUNNERS[spec.kind](spec, entry_point(spec, target), errors, self.permit))

    @property
    def head_is_join(self) -> bool:
        """Whether the first runner takes ``(key, record)`` pairs as they arrive."""
        return bool(self.runners) and self.runners[0].spec.kind is OpKind.JOIN

    def open(self) -> None:
        """Call ``open()`` on every function instance, in chain order, on the task's thread.

        When one raises, those already opened are closed (their close errors ride along as notes)
        and :class:`OpenFailed` names the operator, chained to the cause.
        """
        for i, (spec, target) in enumerate(self.functions):
            if not isinstance(target, OperatorFunction):
                continue
            try:
                target.open()
            except Exception as exc:
                error = lifecycle_error(OpenFailed, spec.label, "open", exc)
                for close_failure in self.close(self.functions[:i]):
                    error.add_note(str(close_failure))
                raise error from exc

    def close(self, functions: list[tuple[OperatorSpec, Any]] | None = None) -> list[Exception]:
        """Call ``close()`` on every function instance (or those given), even after one raised; the errors."""
        errors: list[Exception] = []
        for spec, target in self.functions if functions is None else functions:
            if isinstance(target, OperatorFunction):
                try:
                    target.close()
                except Exception as exc:
                    errors.append(lifecycle_error(RuntimeError, spec.label, "close", exc))
        return errors

    def cancel(self) -> None:
        """Stop at the next record and drop what the runners hold (counted as cancelled); any thread may call it."""
        self.permit.revoke()

    def drop_pending(self) -> None:
        """On the task's thread, after a cancel: count what asynchronous calls still held as cancelled."""
        for runner in self.runners:
            runner.cancel()

    @property
    def head(self) -> str:
        """The id of the operator that receives this task's inbox."""
        return self.runners[0].spec.id

    def dropped(self, count: int, operator: str) -> None:
        """Count ``count`` records bound for ``operator`` (this task's head, or a receiver's) that a
        cancel dropped before it processed them: they count there as in and cancelled. Any thread."""
        with self._dropped_lock:
            self._dropped[operator] = self._dropped.get(operator, 0) + count

    def process(self, batch: list, slot: int = 0, start: int = 0) -> list:
        """Push a batch through the runners from index ``start``; returns the chain's output."""
        for runner in self.runners[start:]:
            if not batch:
                return batch
            began = perf_counter()
            batch = runner.process(batch, slot)
            stats = runner.stats
            stats.busy_s += perf_counter() - began
            stats.batches += 1
            slot = 0
        return batch

    def run_task(self, read_input: Callable[[], None], aborted: Callable[[], bool], emit: Callable[[list], None], end: Callable[[], None]) -> None:
        """A task's whole life: open the functions, ``read_input`` until it returns, then (unless
        ``aborted()``) emit what :meth:`flush` still owes and call ``end`` (end-of-stream markers).

        The functions are closed whatever happens, every one even when another's ``close()``
        raised; those errors are kept in ``close_errors`` for the runtime to report at the job's
        end (they do not abort the job, so downstream sinks still flush). Other errors propagate.
        """
        self.open()
        try:
            read_input()
            if not aborted():
                emit(self.flush())
                end()
        finally:
            if aborted():
                self.drop_pending()
            self.close_errors = self.close()

    def run_source(self, batch_size: int, running: Callable[[], bool], emit: Callable[[list], None]) -> None:
        """Pull batches from the source through the chain into ``emit`` until it ends or ``running()`` is false.

        An unbounded source with nothing ready is polled with a growing pause (up to 10 ms); calls in
        flight are polled after every batch.
        """
        source = self.source
        assert source is not None, "run_source() needs a chain that starts with a source"
        idle = 0.0
        while running():
            batch = source.next_batch(batch_size)
            if batch is None:
                return
            if batch:
                idle = 0.0
                emit(self.process(batch))
            else:
                idle = min(0.01, idle * 2 or 0.0005)
                time.sleep(idle)
            if self.pending:
                emit(self.poll())

    @property
    def pending(self) -> int:
        """Records waiting on asynchronous calls anywhere in the chain."""
        return sum(runner.pending for runner in self.runners)

    def poll(self) -> list:
        """Outputs of asynchronous calls that completed, pushed through the rest of the chain."""
        out: list = []
        for i, runner in enumerate(self.runners):
            if runner.pending:
                ready = runner.poll()
                if ready:
                    out.extend(self.process(ready, 0, i + 1))
        return out

    def flush(self) -> list:
        """At end of input: wait for every pending call, in chain order; the remaining output."""
        out: list = []
        for i, runner in enumerate(self.runners):
            ready = runner.flush()
            if ready:
                out.extend(self.process(ready, 0, i + 1))
        return out

    def stats(self) -> dict[str, OperatorStats]:
        """This instance's figures per operator id."""
        figures = {runner.spec.id: runner.stats for runner in self.runners}
        if self.source is not None:
            figures[self.source.op_id] = self.source.stats
        with self._dropped_lock:
            dropped = list(self._dropped.items())
        for op_id, count in dropped:
            stats = copy.copy(figures[op_id]) if op_id in figures else OperatorStats()
            stats.records_in += count
            stats.cancelled += count
            figures[op_id] = stats
        return figures

    def set_wake(self, wake: Callable[[], None]) -> None:
        """Give every asynchronous runner the task's wake-up call."""
        for runner in self.runners:
            async_calls = getattr(runner, "async_calls", None)
            if async_calls is not None:
                async_calls.wake = wake


def instantiate(spec: OperatorSpec, ctx: RuntimeContext) -> Any:
    """A function class is instantiated per instance; a function object is copied when parallel."""
    function = spec.function
    if inspect.isclass(function) and issubclass(function, OperatorFunction):
        target = function()
    elif isinstance(function, OperatorFunction):
        target = copy.deepcopy(function) if spec.parallelism > 1 else function
    else:
        return function
    if isinstance(target, OperatorFunction):
        target.ctx = ctx
    return target


def entry_point(spec: OperatorSpec, target: Any) -> Any:
    """What the runner calls: ``execute``, the ``(map0, map1)`` pair for comap, or the callable."""
    if spec.kind is OpKind.COMAP:
        if isinstance(target, (tuple, list)):
            return tuple(target)
        return (target.map0, target.map1)
    if isinstance(target, OperatorFunction):
        return target.execute
    return target


def build_source(spec: OperatorSpec, target: Any) -> SourceRunner:
    """The source runner for a source operator."""
    stats = OperatorStats()
    if spec.source_kind == "source_function":
        return SourceRunner(spec.id, source_function_puller(target.execute), stats, bounded=False)
    if spec.source_kind == "batch_function":
        return SourceRunner(spec.id, batch_function_puller(target.execute), stats, bounded=True)
    return SourceRunner(spec.id, iterable_puller(target), stats, bounded=True)
