"""One task's operator loop, shared by the local and Ray runtimes: a source or an inbox, the chain, the outputs.

Only the transport differs between runtimes, so a subclass supplies it: how an inbox item reads
(:meth:`TaskLoop.take`), how output batches leave (:meth:`TaskLoop.emit`), how the end of the
stream is passed on (:meth:`TaskLoop.end_stream`) and what follows each processed batch
(:meth:`TaskLoop.processed`: acknowledgements on Ray).
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from typing import Any

from sage_core.runtime.chain import BoundChain
from sage_core.runtime.records import WAKE

POLL_S = 0.05
"""How often a task waiting for input looks at the job's abort flag."""


class TaskLoop(ABC):
    """Runs one task until its inputs end, its source is exhausted or stopped, or the job aborts."""

    def __init__(
        self, chain: BoundChain, inbox: Any, keyed_slots: frozenset[int], batch_size: int,
        stop: threading.Event, abort: threading.Event,
    ) -> None:
        self.chain = chain
        self.inbox = inbox
        """``queue.Queue`` or ``queue.SimpleQueue`` of items :meth:`take` reads (``None`` for a source task)."""
        self.unwrap_slots = frozenset() if chain.head_is_join else keyed_slots
        self.batch_size = batch_size
        self.stop = stop
        self.abort = abort
        if inbox is not None:
            chain.set_wake(self.wake)

    def run_loop(self) -> BaseException | None:
        """The task's whole life (see :meth:`BoundChain.run_task`); the failure that ended it, if any."""
        read_input = self._run_source if self.chain.source is not None else self._run_inbox
        try:
            self.chain.run_task(read_input, self.abort.is_set, self.emit, self.end_stream)
        except BaseException as exc:  # the runtime reports it and aborts every task
            return exc
        return None

    def cancel(self) -> None:
        """End at the next record (any thread); what is dropped is counted as cancelled."""
        self.abort.set()
        self.chain.cancel()

    # ------------------------------------------------------------------ transport, per runtime

    @abstractmethod
    def inputs_open(self) -> bool:
        """Whether some upstream task has not sent its end-of-stream marker yet."""

    @abstractmethod
    def take(self, item: Any) -> tuple[int, list] | None:
        """``(slot, batch)`` of an inbox item, or ``None`` for an end-of-stream marker (recorded)."""

    @abstractmethod
    def emit(self, batch: list) -> None:
        """Send the chain's output downstream."""

    @abstractmethod
    def end_stream(self) -> None:
        """After the flush: pass the end of the stream downstream."""

    def processed(self) -> None:
        """After each batch or wake-up has gone through the chain."""

    def wake(self) -> None:
        """A finished asynchronous call wakes the task (any thread)."""
        self.inbox.put(WAKE)

    # ------------------------------------------------------------------ loops

    def _run_source(self) -> None:
        stop, abort = self.stop, self.abort
        self.chain.run_source(self.batch_size, lambda: not (stop.is_set() or abort.is_set()), self.emit)

    def _run_inbox(self) -> None:
        inbox, chain, unwrap, abort = self.inbox, self.chain, self.unwrap_slots, self.abort
        while self.inputs_open() and not abort.is_set():
            try:
                item = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is WAKE:
                self.emit(chain.poll())
                self.processed()
                continue
            taken = self.take(item)
            if taken is None:
                continue
            slot, batch = taken
            if slot in unwrap:
                batch = [record for _, record in batch]
            self.emit(chain.process(batch, slot))
            if chain.pending:
                self.emit(chain.poll())
            self.processed()
