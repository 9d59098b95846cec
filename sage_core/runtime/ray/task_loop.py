"""The work of one task actor, on its own thread: the shared :class:`~sage_core.runtime.task_loop.TaskLoop`
over Ray channels, plus acknowledgements: each delivered batch carries
a ``concurrent.futures.Future`` that this loop resolves with the pushes the batch caused, once
the chain holds nothing of it any more. With asynchronous calls in flight that moment is the next
time no call is pending; every batch delivered since the previous such moment is acknowledged
then, with every push made since (a superset of its own, which only delays the acknowledgement).
End-of-stream markers are acknowledged when the task has finished: flushed, every push
acknowledged, and its own end-of-stream markers acknowledged downstream.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sage_core.compiler.partitioners import Splitter
from sage_core.runtime.chain import BoundChain
from sage_core.runtime.ray.channels import ChannelSender, TaskAborted
from sage_core.runtime.records import END_OF_STREAM, WAKE, EndOfStream
from sage_core.runtime.task_loop import TaskLoop


@dataclass
class Delivery:
    """A batch (or end-of-stream marker) from upstream task ``task``, into input ``slot``."""

    task: str
    slot: int
    batch: Any
    ack: Future


@dataclass
class OutputChannel:
    """One channel seen from the sending task: how to split batches, one sender per receiver."""

    slot: int
    split: Splitter
    senders: list[ChannelSender]
    eos_targets: list[int]
    receiver: str
    """The receiving operator, where a batch dropped by a cancel is counted."""


class ActorTaskLoop(TaskLoop):
    """Runs one task in an actor; inbox items are :class:`Delivery` objects, acknowledged once processed."""

    def __init__(
        self,
        chain: BoundChain,
        upstream: int,
        keyed_slots: frozenset[int],
        outputs: list[OutputChannel],
        batch_size: int,
    ) -> None:
        inbox: queue.SimpleQueue | None = queue.SimpleQueue() if upstream else None
        super().__init__(chain, inbox, keyed_slots, batch_size, threading.Event(), threading.Event())
        self.upstream = upstream
        self.outputs = outputs
        self.finished: Future = Future()
        """Resolved (with the failure or ``None``) when the loop has ended."""
        self.sent: dict[str, int] = {}
        """Records pushed per receiving operator (the driver counts those a cancel lost in flight)."""
        self._ended: set[tuple[str, int]] = set()
        self._waiting: list[Future] = []
        self._pushes: list[Any] = []
        self._eos_acks: list[Future] = []

    def run(self) -> None:
        """The thread's body; never raises (the failure goes into ``finished``)."""
        failure = self.run_loop()
        if failure is None and not self.abort.is_set():
            for ack in self._eos_acks:
                ack.set_result([])
        if self.abort.is_set():
            self._count_stranded()
        self.finished.set_result(failure)

    def _count_stranded(self) -> None:
        """After an abort: deliveries left in the inbox count as cancelled; their senders are released."""
        if self.inbox is None:
            return
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if item is WAKE:
                continue
            if not isinstance(item.batch, EndOfStream):
                self.chain.dropped(len(item.batch), self.chain.head)
            item.ack.set_result([])

    # ------------------------------------------------------------------ transport

    def inputs_open(self) -> bool:
        return len(self._ended) < self.upstream

    def take(self, item: Delivery) -> tuple[int, list] | None:
        if isinstance(item.batch, EndOfStream):  # a copy: it crossed a process boundary
            self._ended.add((item.task, item.slot))
            self._eos_acks.append(item.ack)
            return None
        self._waiting.append(item.ack)
        return item.slot, item.batch

    def processed(self) -> None:
        """Acknowledge the batches waiting, unless asynchronous calls still hold records."""
        if self._waiting and not self.chain.pending:
            pushes = self._pushes
            for ack in self._waiting:
                ack.set_result(pushes)
            self._waiting, self._pushes = [], []

    def emit(self, batch: list) -> None:
        if not batch:
            return
        for port in self.outputs:
            for target, piece in port.split(batch):
                try:
                    ref = port.senders[target].send(piece, self.abort)
                except TaskAborted:
                    self.chain.dropped(len(piece), port.receiver)
                    continue
                self.sent[port.receiver] = self.sent.get(port.receiver, 0) + len(piece)
                if self._waiting:
                    self._pushes.append(ref)

    def end_stream(self) -> None:
        """After the flush: acknowledge what is processed, then send end-of-stream markers."""
        self.processed()
        senders = [sender for port in self.outputs for sender in port.senders]
        for sender in senders:
            sender.drain(self.abort)
        for port in self.outputs:
            for target in port.eos_targets:
                port.senders[target].send(END_OF_STREAM, self.abort)
        for sender in senders:
            sender.drain(self.abort)


__all__ = ["ActorTaskLoop", "Delivery", "OutputChannel"]
