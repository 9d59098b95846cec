"""A physical task as a Ray actor: the user's functions bound in a :class:`BoundChain`, a loop thread.

The actor is asynchronous: ``push`` calls from upstream tasks wait on its event loop (for their
turn, then for their acknowledgement) while the chain runs on the loop thread. Restarted by Ray
after a crash, it re-creates its functions from the same constructor arguments, and the pushes
that were not acknowledged are retried by Ray (``max_task_retries``), ``run`` included.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import cloudpickle

from sage_core.compiler.logical import OperatorSpec, Partitioning
from sage_core.compiler.partitioners import make_splitter
from sage_core.compiler.physical import Chain
from sage_core.runtime.chain import BoundChain
from sage_core.runtime.context import RuntimeContext
from sage_core.runtime.errors import ErrorPolicy, RecordWatcher
from sage_core.runtime.ray.channels import ChannelSender, InOrder, TaskAborted
from sage_core.runtime.ray.cluster import threads_block_not_the_loop
from sage_core.runtime.ray.portable import TaskFailure, portable_exception
from sage_core.runtime.ray.services import RemoteService
from sage_core.runtime.ray.task_loop import ActorTaskLoop, Delivery, OutputChannel
from sage_core.runtime.records import DeadLetter, OperatorStats
from sage_core.services.registry import ServiceRegistry

REPORT_TIMEOUT_S = 10.0
"""How long a task that ended waits for its services' last call figures to reach their routers."""


@dataclass(frozen=True)
class ChainSpecs:
    """The operators of one chain (what :class:`BoundChain` reads of the physical graph)."""

    specs: dict[str, OperatorSpec]

    def operator(self, op_id: str) -> OperatorSpec:
        """The operator ``op_id``."""
        return self.specs[op_id]


@dataclass(frozen=True)
class OutputSpec:
    """One output channel as the driver describes it: the receiving actors' names, in order."""

    slot: int
    partitioning: Partitioning
    receivers: list[str]
    receiver_op: str
    """The receiving chain's first operator (where dropped batches are counted)."""

    def eos_targets(self, instance: int) -> list[int]:
        """Receivers that expect an end-of-stream marker from task ``instance``."""
        if self.partitioning is Partitioning.FORWARD:
            return [instance]
        return list(range(len(self.receivers)))


@dataclass
class TaskOutcome:
    """What ``run`` returns: the failure (if any), final figures, dead letters, close errors, records sent."""

    failure: TaskFailure | None
    stats: dict[str, OperatorStats]
    dead_letters: list[DeadLetter]
    placement: dict[str, Any]
    close_errors: list[BaseException]
    sent: dict[str, int]
    """Records pushed per receiving operator."""


@dataclass(frozen=True)
class TaskSetup:
    """What a task actor is built from (kept by Ray for restarts).

    Other actors are named, not passed as handles: Ray keeps constructor arguments holding
    handles in the object store and warns that a restart depends on them.
    """

    task_id: str
    chain: Chain
    instance: int
    specs: ChainSpecs
    contexts: dict[str, RuntimeContext]
    services: dict[str, RemoteService]
    error_policy: str
    upstream: int
    keyed_slots: frozenset[int]
    outputs: list[OutputSpec]
    batch_size: int
    window: int
    watcher: RecordWatcher | None = None
    """The job's record watcher (it travels to every task: serving ends requests with it)."""


class TaskActor:
    """Hosts one task. The driver calls ``run`` once, with the task's setup, and reads ``stats``.

    The setup travels with ``run``, not with the constructor: Ray re-sends an unanswered ``run``
    to a restarted actor with the same argument, held by the driver for the job's life (large
    setups live in the object store, where Ray warns about constructor arguments).
    """

    def __init__(self, task_id: str) -> None:
        threads_block_not_the_loop()
        self.task_id = task_id
        self.incarnation = uuid.uuid4().hex[:12]
        self.restarted = was_restarted()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.order = InOrder(enabled=not self.restarted)
        self.loop: ActorTaskLoop | None = None
        self.errors: ErrorPolicy | None = None
        self._ready = asyncio.Event()
        self._stop = self._abort = False
        self.services: list[RemoteService] = []

    async def run(self, serialized: bytes) -> TaskOutcome:
        """Build the task from ``serialized`` (its pickled :class:`TaskSetup`), run it, wait for its end."""
        loop = self.loop or self._build(cloudpickle.loads(serialized))
        failure = await asyncio.wrap_future(loop.finished)
        await self._release_services()
        captured = None
        if failure is not None and not isinstance(failure, TaskAborted) and not loop.abort.is_set():
            captured = TaskFailure.capture(self.task_id, failure)
        letters = list(self.errors.dead_letters) if self.errors else []
        close_errors = [portable_exception(error) for error in loop.chain.close_errors]
        return TaskOutcome(captured, loop.chain.stats(), letters, await self.placement(), close_errors, dict(loop.sent))

    async def push(self, task: str, incarnation: str, seq: int, slot: int, batch: Any) -> None:
        """Deliver a batch from upstream; returns once it is processed and its pushes acknowledged."""
        if not self._ready.is_set():
            await self._ready.wait()
        assert self.loop is not None and self.loop.inbox is not None
        key = (task, incarnation, slot)
        await self.order.turn(key, seq)
        ack: Future = Future()
        self.loop.inbox.put(Delivery(task, slot, batch, ack))
        self.order.handed_over(key, seq)
        pushes = await asyncio.wrap_future(ack)
        if pushes:
            await asyncio.gather(*pushes)

    async def stop(self) -> None:
        """Sources stop producing; what is in flight drains."""
        self._stop = True
        if self.loop is not None:
            self.loop.stop.set()

    async def abort(self) -> None:
        """End the task at its next record (the job was cancelled, or another task failed)."""
        self._abort = True
        if self.loop is not None:
            self.loop.cancel()

    async def stats(self) -> dict[str, OperatorStats]:
        """Figures per operator of this instance so far."""
        return self.loop.chain.stats() if self.loop is not None else {}

    async def queue_depth(self) -> int:
        """Deliveries waiting in the inbox."""
        return self.loop.inbox.qsize() if self.loop is not None and self.loop.inbox is not None else 0

    async def placement(self) -> dict[str, Any]:
        """Where this actor runs: node id, and whether Ray restarted it."""
        return {"node_id": self.node_id, "restarted": self.restarted, "incarnation": self.incarnation}

    async def _release_services(self) -> None:
        """Hang up on the services' replica hosts; wait until the router has the last call figures."""
        reports = [report for service in self.services if (report := service.release()) is not None]
        if reports:
            await asyncio.wait([asyncio.wrap_future(report) for report in reports], timeout=REPORT_TIMEOUT_S)

    def _build(self, setup: TaskSetup) -> ActorTaskLoop:
        """Bind the user's functions, connect the outputs, start the loop thread."""
        self.errors = ErrorPolicy(setup.error_policy, watcher=setup.watcher)
        self.services = list(setup.services.values())
        services, contexts = ServiceRegistry.of(setup.services), setup.contexts

        def make_context(spec: OperatorSpec, instance: int) -> RuntimeContext:
            return replace(contexts[spec.id], services=services)

        bound = BoundChain(setup.specs, setup.chain, setup.instance, self.errors, make_context)  # type: ignore[arg-type]
        outputs = [
            OutputChannel(
                slot=out.slot,
                split=make_splitter(out.partitioning, setup.instance, len(out.receivers)),
                senders=[
                    ChannelSender(ray.get_actor(r), setup.task_id, self.incarnation, out.slot, setup.window)
                    for r in out.receivers
                ],
                eos_targets=out.eos_targets(setup.instance),
                receiver=out.receiver_op,
            )
            for out in setup.outputs
        ]
        loop = self.loop = ActorTaskLoop(bound, setup.upstream, setup.keyed_slots, outputs, setup.batch_size)
        if self._stop:
            loop.stop.set()
        if self._abort:
            loop.cancel()
        threading.Thread(target=loop.run, name=f"sage-task-{self.task_id}", daemon=True).start()
        self._ready.set()
        return loop


def was_restarted() -> bool:
    """Whether Ray restarted the current actor (quiet: Ray's own property warns about itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


RemoteTaskActor = ray.remote(TaskActor)
"""The Ray actor class; options (resources, restarts) are given per task by the runtime."""

__all__ = ["ChainSpecs", "OutputSpec", "RemoteTaskActor", "TaskActor", "TaskOutcome", "TaskSetup"]
