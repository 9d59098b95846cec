"""The local runtime: a thread per physical task, bounded queues between them (backpressure)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from sage_core.api.functions import RuntimeContext
from sage_core.compiler.logical import OperatorSpec, Partitioning
from sage_core.compiler.partitioners import make_splitter
from sage_core.compiler.physical import PhysicalGraph
from sage_core.runtime.chain import BoundChain
from sage_core.runtime import gc_tuning
from sage_core.runtime.errors import ErrorPolicy
from sage_core.runtime.local.task import OutputPort, TaskAborted, TaskThread
from sage_core.runtime.records import OperatorStats


class LocalRuntime:
    """Runs a :class:`PhysicalGraph` on threads of this process."""

    def __init__(
        self,
        graph: PhysicalGraph,
        errors: ErrorPolicy,
        make_context: Callable[[OperatorSpec, int], RuntimeContext],
        *,
        queue_size: int = 64,
        batch_size: int = 256,
    ) -> None:
        self.graph = graph
        self.stop_event = threading.Event()
        self.abort_event = threading.Event()
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._gc_relaxed = False
        inboxes = {
            chain_id: [queue.Queue(maxsize=queue_size) for _ in range(chain.parallelism)]
            for chain_id, chain in graph.chains.items()
        }
        self.inboxes = inboxes
        self.chains: list[BoundChain] = []
        self.threads: list[TaskThread] = []
        for chain_id, chain in graph.chains.items():
            inputs = graph.inputs(chain_id)
            upstream = sum(1 if c.partitioning is Partitioning.FORWARD else graph.chains[c.source].parallelism for c in inputs)
            keyed = frozenset(c.slot for c in inputs if c.keyed)
            for instance, task_id in enumerate(chain.task_ids()):
                bound = BoundChain(graph, chain, instance, errors, make_context)
                outputs = [
                    OutputPort(
                        slot=c.slot,
                        split=make_splitter(c.partitioning, instance, graph.chains[c.target].parallelism),
                        inboxes=inboxes[c.target],
                        eos_targets=[instance]
                        if c.partitioning is Partitioning.FORWARD
                        else list(range(graph.chains[c.target].parallelism)),
                    )
                    for c in graph.outputs(chain_id)
                ]
                self.chains.append(bound)
                self.threads.append(
                    TaskThread(
                        task_id,
                        bound,
                        inboxes[chain_id][instance] if inputs else None,
                        upstream,
                        keyed,
                        outputs,
                        batch_size,
                        self.stop_event,
                        self.abort_event,
                        self._on_error,
                    )
                )

    def start(self) -> None:
        """Start every task thread."""
        gc_tuning.job_started()
        self._gc_relaxed = True
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Sources stop producing; what is in flight drains."""
        self.stop_event.set()

    def join(self, timeout: float | None) -> bool:
        """Wait for every task thread; whether all ended within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            while thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                thread.join(0.1 if remaining is None else min(0.1, remaining))
        with self._error_lock:
            if self._gc_relaxed:
                self._gc_relaxed = False
                gc_tuning.job_ended()
        return True

    def error(self) -> BaseException | None:
        """The first error that aborted the job."""
        return self._error

    def operator_stats(self) -> dict[str, OperatorStats]:
        """Figures per operator, summed over instances."""
        totals: dict[str, OperatorStats] = {}
        for bound in self.chains:
            for op_id, stats in bound.stats().items():
                totals.setdefault(op_id, OperatorStats()).add(stats)
        return totals

    def queue_depths(self) -> dict[str, int]:
        """Batches waiting per task inbox."""
        depths: dict[str, Any] = {}
        for chain_id, boxes in self.inboxes.items():
            for i, box in enumerate(boxes):
                depths[f"{chain_id}#{i}"] = box.qsize()
        return depths

    def _on_error(self, task: str, exc: BaseException) -> None:
        if isinstance(exc, TaskAborted):
            return
        with self._error_lock:
            if self._error is None:
                self._error = exc
        self.abort_event.set()
        self.stop_event.set()
