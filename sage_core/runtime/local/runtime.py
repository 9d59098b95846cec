"""The local runtime: a thread per physical task, bounded queues between them (backpressure)."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from sage_core.compiler.logical import OperatorSpec, Partitioning
from sage_core.compiler.partitioners import make_splitter
from sage_core.compiler.physical import PhysicalGraph
from sage_core.runtime import gc_tuning
from sage_core.runtime.chain import BoundChain
from sage_core.runtime.context import RuntimeContext
from sage_core.runtime.errors import ErrorPolicy, job_error
from sage_core.runtime.local.task import OutputPort, TaskThread
from sage_core.runtime.records import END_OF_STREAM, WAKE, OperatorStats


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
        self._ended = False
        self._all_exited = threading.Event()
        self._live = 0
        self.inboxes = {
            chain_id: [queue.Queue(maxsize=queue_size) for _ in range(chain.parallelism)]
            for chain_id, chain in graph.chains.items()
        }
        bound = {
            chain_id: [BoundChain(graph, chain, instance, errors, make_context) for instance in range(chain.parallelism)]
            for chain_id, chain in graph.chains.items()
        }
        self.bound = bound
        self.chains: list[BoundChain] = [b for instances in bound.values() for b in instances]
        self.tasks: list[TaskThread] = []
        for chain_id, chain in graph.chains.items():
            inputs = graph.inputs(chain_id)
            upstream = sum(1 if c.partitioning is Partitioning.FORWARD else graph.chains[c.source].parallelism for c in inputs)
            keyed = frozenset(c.slot for c in inputs if c.keyed)
            for instance, task_id in enumerate(chain.task_ids()):
                outputs = [
                    OutputPort(
                        slot=c.slot,
                        split=make_splitter(c.partitioning, instance, graph.chains[c.target].parallelism),
                        inboxes=self.inboxes[c.target],
                        receiver=graph.chains[c.target].operators[0],
                        eos_targets=[instance]
                        if c.partitioning is Partitioning.FORWARD
                        else list(range(graph.chains[c.target].parallelism)),
                    )
                    for c in graph.outputs(chain_id)
                ]
                self.tasks.append(
                    TaskThread(
                        task_id,
                        bound[chain_id][instance],
                        self.inboxes[chain_id][instance] if inputs else None,
                        upstream,
                        keyed,
                        outputs,
                        batch_size,
                        self.stop_event,
                        self.abort_event,
                        self._on_error,
                        self._on_exit,
                    )
                )
        self._live = len(self.tasks)

    def start(self) -> None:
        """Start every task thread."""
        gc_tuning.job_started()
        for task in self.tasks:
            task.thread.start()

    def stop(self) -> None:
        """Sources stop producing; what is in flight drains."""
        self.stop_event.set()

    def cancel(self) -> None:
        """End every task at its next record; what they hold and their inboxes are counted as cancelled."""
        self._abort()

    def join(self, timeout: float | None) -> bool:
        """Wait for every task thread; whether all ended within ``timeout``.

        It waits on an event, not on ``Thread.join``: a Ctrl-C interrupting ``join`` makes Python
        3.11 take a live thread for ended (bpo-45274's cleanup releases the thread's own lock).
        """
        if not self._all_exited.wait(timeout):
            return False
        for task in self.tasks:
            task.thread.join()
        with self._error_lock:
            if not self._ended:
                self._ended = True
                self._count_stranded()
                gc_tuning.job_ended()
        return True

    def error(self) -> BaseException | None:
        """The first error that aborted the job, else the functions' close errors together."""
        return job_error(self._error, [error for chain in self.chains for error in chain.close_errors])

    def running_tasks(self) -> list[str]:
        """Ids of the tasks whose thread is still alive (inside a user's function after a cancel)."""
        return [task.task_name for task in self.tasks if task.thread.is_alive()]

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

    def _on_exit(self) -> None:
        with self._error_lock:
            self._live -= 1
            if self._live == 0:
                self._all_exited.set()

    def _on_error(self, task: str, exc: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = exc
        self._abort()

    def _abort(self) -> None:
        self.abort_event.set()
        self.stop_event.set()
        for chain in self.chains:
            chain.cancel()

    def _count_stranded(self) -> None:
        """Once every task has ended: records left in inboxes by an abort count as cancelled."""
        for chain_id, boxes in self.inboxes.items():
            for box, chain in zip(boxes, self.bound[chain_id]):
                stranded = 0
                while True:
                    try:
                        item = box.get_nowait()
                    except queue.Empty:
                        break
                    if item is not WAKE and item[1] is not END_OF_STREAM:
                        stranded += len(item[1])
                if stranded:
                    chain.dropped(stranded, chain.head)
