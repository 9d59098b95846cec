"""The Ray runtime: the physical graph's tasks as Ray actors, driven from the user's process.

Every task's setup is pickled first (so a function that cannot travel fails the submit before
any actor starts), then one named actor per task is created, and ``run(setup)`` is called on each;
a task finds its receivers by name. :meth:`RayRuntime.join` waits for the ``run`` calls. The first
failure aborts every task, as locally. When the job has ended the actors are killed and the final
figures kept.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any, Callable

import ray
from ray import cloudpickle

from sage_core.compiler.logical import OperatorSpec, Partitioning
from sage_core.compiler.physical import Chain, PhysicalGraph
from sage_core.runtime.context import RuntimeContext
from sage_core.runtime.errors import ErrorPolicy, job_error
from sage_core.runtime.ray.services import RemoteService
from sage_core.runtime.ray.task_actor import (
    ChainSpecs,
    OutputSpec,
    RemoteTaskActor,
    TaskOutcome,
    TaskSetup,
)
from sage_core.runtime.records import OperatorStats

STATS_TIMEOUT_S = 10.0
"""How long a live metrics read waits for the task actors."""

INLINE_BYTES = 100 * 1024
"""Larger task setups (a source's data, big functions) go to the object store once, by reference."""


class RayRuntime:
    """Runs a :class:`PhysicalGraph` as one Ray actor per task."""

    def __init__(
        self,
        graph: PhysicalGraph,
        errors: ErrorPolicy,
        make_context: Callable[[OperatorSpec, int], RuntimeContext],
        services: dict[str, RemoteService],
        *,
        job_name: str,
        actor_options: Callable[[Chain], dict[str, Any]],
        batch_size: int = 256,
        window: int = 16,
    ) -> None:
        self.graph = graph
        self.errors = errors
        self.actors: dict[str, Any] = {}
        self._sources: list[str] = []
        self._runs: dict[ray.ObjectRef, str] = {}
        self._final: dict[str, dict[str, OperatorStats]] = {}
        self._sent: dict[str, int] = {}
        """Records pushed to each receiving operator by tasks that ended (see :meth:`operator_stats`)."""
        self._placement: dict[str, dict[str, Any]] = {}
        self._setups: dict[str, Any] = {}
        """Each task's pickled setup (an ObjectRef when large), kept for ``run`` retries after restarts."""
        self._error: BaseException | None = None
        self._close_errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._released = False
        run = uuid.uuid4().hex[:8]
        names = {task: f"sage/{job_name}/{run}/{task}" for chain in graph.chains.values() for task in chain.task_ids()}
        for chain_id, chain in graph.chains.items():  # every setup first: nothing is started if one fails
            inputs = graph.inputs(chain_id)
            upstream = sum(1 if c.partitioning is Partitioning.FORWARD else graph.chains[c.source].parallelism for c in inputs)
            keyed = frozenset(c.slot for c in inputs if c.keyed)
            specs = ChainSpecs({op: graph.operator(op) for op in chain.operators})
            outputs = [
                OutputSpec(
                    c.slot, c.partitioning, [names[t] for t in graph.chains[c.target].task_ids()],
                    graph.chains[c.target].operators[0],
                )
                for c in graph.outputs(chain_id)
            ]
            for instance, task_id in enumerate(chain.task_ids()):
                contexts = {op: replace(make_context(graph.operator(op), instance), services=None) for op in chain.operators}
                setup = TaskSetup(
                    task_id, chain, instance, specs, contexts, dict(services), errors.policy,
                    upstream, keyed, outputs, batch_size, window, errors.watcher,
                )
                self._setups[task_id] = _serialize(task_id, setup)
                if not inputs:
                    self._sources.append(task_id)
        for chain in graph.chains.values():
            options = actor_options(chain)
            for task_id in chain.task_ids():
                blob = self._setups[task_id]
                if len(blob) > INLINE_BYTES:
                    self._setups[task_id] = ray.put(blob)
                self.actors[task_id] = RemoteTaskActor.options(**options, name=names[task_id]).remote(task_id)

    def start(self) -> None:
        """Call ``run`` on every task actor."""
        with self._lock:
            self._runs = {actor.run.remote(self._setups[task]): task for task, actor in self.actors.items()}

    def stop(self) -> None:
        """Sources stop producing; what is in flight drains."""
        with self._lock:
            if not self._released:
                for task in self._sources:
                    self.actors[task].stop.remote()

    def cancel(self) -> None:
        """Every task ends at its next record; what they drop is counted as cancelled."""
        with self._lock:
            self._abort_all()

    def running_tasks(self) -> list[str]:
        """Tasks whose ``run`` has not returned yet."""
        with self._lock:
            return sorted(self._runs.values())

    def join(self, timeout: float | None) -> bool:
        """Wait for every task; whether all ended within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                runs = list(self._runs)
                if not runs:
                    self._release()
                    return True
            remaining = None if deadline is None else deadline - time.monotonic()
            wait_s = 0.2 if remaining is None else max(0.0, min(0.2, remaining))
            ready, rest = ray.wait(runs, num_returns=1, timeout=wait_s)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            with self._lock:
                for ref in ready:
                    task = self._runs.pop(ref, None)
                    if task is not None:
                        self._collect(task, ref)
                if self._runs and remaining is not None and remaining <= 0:
                    return False

    def error(self) -> BaseException | None:
        """The first error that aborted the job, else the functions' close errors together."""
        return job_error(self._error, self._close_errors)

    def operator_stats(self) -> dict[str, OperatorStats]:
        """Figures per operator, summed over instances (live while running, final after)."""
        per_task = dict(self._final)
        live = [task for task in self.actors if task not in per_task]
        if live and not self._released:
            refs = [self.actors[task].stats.remote() for task in live]
            try:
                per_task.update(zip(live, ray.get(refs, timeout=STATS_TIMEOUT_S)))
            except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
                pass  # a restarting or busy actor: its figures appear on the next read
        totals = {op: OperatorStats() for chain in self.graph.chains.values() for op in chain.operators}
        for figures in per_task.values():
            for op_id, stats in figures.items():
                totals.setdefault(op_id, OperatorStats()).add(stats)
        if len(self._final) == len(self.actors):
            for op_id, sent in self._sent.items():  # pushes a cancel caught in flight reached no inbox
                lost = sent - totals[op_id].records_in
                if lost > 0:
                    totals[op_id].records_in += lost
                    totals[op_id].cancelled += lost
        return totals

    def queue_depths(self) -> dict[str, int]:
        """Deliveries waiting per task inbox (0 once the task has ended)."""
        depths = {task: 0 for task in self.actors}
        live = [task for task in self.actors if task not in self._final]
        if live and not self._released:
            try:
                depths.update(zip(live, ray.get([self.actors[t].queue_depth.remote() for t in live], timeout=STATS_TIMEOUT_S)))
            except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
                pass
        return depths

    def placement(self) -> dict[str, dict[str, Any]]:
        """Per task: the Ray node id it runs (or ran) on, and whether Ray restarted it."""
        placement = dict(self._placement)
        live = [task for task in self.actors if task not in placement]
        if live and not self._released:
            placement.update(zip(live, ray.get([self.actors[t].placement.remote() for t in live], timeout=STATS_TIMEOUT_S)))
        return placement

    # ------------------------------------------------------------------ helpers

    def _collect(self, task: str, ref: ray.ObjectRef) -> None:
        try:
            outcome: TaskOutcome = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._fail(RuntimeError(f"task {task}: its Ray actor failed and was not restarted: {exc}"))
            return
        self._final[task] = outcome.stats
        for op_id, count in outcome.sent.items():
            self._sent[op_id] = self._sent.get(op_id, 0) + count
        self._placement[task] = outcome.placement
        self.errors.add_dead_letters(outcome.dead_letters)
        self._close_errors.extend(outcome.close_errors)
        if outcome.failure is not None:
            self._fail(outcome.failure.restore(self.graph))

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._abort_all()

    def _abort_all(self) -> None:
        if not self._released:
            for task in self._runs.values():
                self.actors[task].abort.remote()

    def release(self) -> None:
        """End every task actor now (the job's end does it; ``env.close()`` does it for jobs left running)."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            for actor in self.actors.values():
                ray.kill(actor)
            self._setups.clear()


def _serialize(task_id: str, setup: TaskSetup) -> bytes:
    """The setup as bytes; an error naming the task and the fix when something will not pickle."""
    try:
        return cloudpickle.dumps(setup)
    except Exception as exc:
        msg = (
            f"task {task_id}: its functions or data cannot be sent to a Ray actor ({type(exc).__name__}: {exc}). "
            "On Ray, pass from_batch a list (not a generator) or a BatchFunction, and keep what "
            "functions hold picklable (no open files, locks or sockets; create those in open())."
        )
        raise TypeError(msg) from exc


__all__ = ["RayRuntime"]
