"""The work of one task actor, on its own thread: inbox (or source) -> chain -> channels.

It mirrors the local runtime's task thread, plus acknowledgements: each delivered batch carries
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
from sage_core.runtime.ray.channels import POLL_S, ChannelSender, TaskAborted
from sage_core.runtime.records import END_OF_STREAM, WAKE, EndOfStream


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


class TaskLoop:
    """Runs one task until its inputs end, its source is exhausted or stopped, or the job aborts."""

    def __init__(
        self,
        chain: BoundChain,
        upstream: int,
        keyed_slots: frozenset[int],
        outputs: list[OutputChannel],
        batch_size: int,
    ) -> None:
        self.chain = chain
        self.upstream = upstream
        self.unwrap_slots = frozenset() if chain.head_is_join else keyed_slots
        self.outputs = outputs
        self.batch_size = batch_size
        self.inbox: queue.SimpleQueue | None = queue.SimpleQueue() if upstream else None
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.finished: Future = Future()
        """Resolved (with the failure or ``None``) when the loop has ended."""
        self._waiting: list[Future] = []
        self._pushes: list[Any] = []
        self._eos_acks: list[Future] = []
        if self.inbox is not None:
            chain.set_wake(lambda: self.inbox.put(WAKE))  # type: ignore[union-attr]

    def run(self) -> None:
        """The thread's body; never raises (the failure goes into ``finished``)."""
        failure: BaseException | None = None
        read_input = self._run_source if self.chain.source is not None else self._run_inbox
        try:
            self.chain.run_task(read_input, self.abort.is_set, self._emit, self._finish_stream)
        except BaseException as exc:  # reported by the actor to the driver, which aborts the job
            failure = exc
        if failure is None and not self.abort.is_set():
            for ack in self._eos_acks:
                ack.set_result([])
        if self.abort.is_set():
            self._count_stranded()
        self.finished.set_result(failure)

    def cancel(self) -> None:
        """End at the next record (any thread); what is dropped is counted as cancelled."""
        self.abort.set()
        self.chain.cancel()

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

    # ------------------------------------------------------------------ loops

    def _run_source(self) -> None:
        stop, abort = self.stop, self.abort
        self.chain.run_source(self.batch_size, lambda: not (stop.is_set() or abort.is_set()), self._emit)

    def _run_inbox(self) -> None:
        inbox = self.inbox
        assert inbox is not None
        chain, unwrap = self.chain, self.unwrap_slots
        ended: set[tuple[str, int]] = set()
        while len(ended) < self.upstream and not self.abort.is_set():
            try:
                item = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is WAKE:
                self._emit(chain.poll())
                self._acknowledge()
                continue
            if isinstance(item.batch, EndOfStream):  # a copy: it crossed a process boundary
                ended.add((item.task, item.slot))
                self._eos_acks.append(item.ack)
                continue
            batch = item.batch
            if item.slot in unwrap:
                batch = [record for _, record in batch]
            self._waiting.append(item.ack)
            self._emit(chain.process(batch, item.slot))
            if chain.pending:
                self._emit(chain.poll())
            self._acknowledge()

    # ------------------------------------------------------------------ sending

    def _emit(self, batch: list) -> None:
        if not batch:
            return
        for port in self.outputs:
            for target, piece in port.split(batch):
                try:
                    ref = port.senders[target].send(piece, self.abort)
                except TaskAborted:
                    self.chain.dropped(len(piece), port.receiver)
                    continue
                if self._waiting:
                    self._pushes.append(ref)

    def _finish_stream(self) -> None:
        """After the flush: acknowledge what is processed, then send end-of-stream markers."""
        self._acknowledge()
        self._send_end_of_stream()

    def _acknowledge(self) -> None:
        """Acknowledge the batches waiting, unless asynchronous calls still hold records."""
        if self._waiting and not self.chain.pending:
            pushes = self._pushes
            for ack in self._waiting:
                ack.set_result(pushes)
            self._waiting, self._pushes = [], []

    def _send_end_of_stream(self) -> None:
        senders = [sender for port in self.outputs for sender in port.senders]
        for sender in senders:
            sender.drain(self.abort)
        for port in self.outputs:
            for target in port.eos_targets:
                port.senders[target].send(END_OF_STREAM, self.abort)
        for sender in senders:
            sender.drain(self.abort)


__all__ = ["Delivery", "OutputChannel", "TaskLoop"]
