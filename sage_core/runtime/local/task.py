"""One thread per physical task: pull batches from the inbox, run the chain, push to the outputs."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from sage_core.compiler.partitioners import Splitter
from sage_core.runtime.chain import BoundChain
from sage_core.runtime.records import END_OF_STREAM, WAKE

POLL_S = 0.05
"""How often a blocked put or get looks at the job's abort flag."""


@dataclass
class OutputPort:
    """One channel seen from a sending task: how to split batches and the receivers' inboxes."""

    slot: int
    split: Splitter
    inboxes: list[queue.Queue]
    receiver: str
    """The receiving operator, where a batch dropped by a cancel is counted."""
    eos_targets: list[int]
    """Receivers that expect an end-of-stream marker from this task."""


class TaskThread(threading.Thread):
    """Runs one task of the physical graph until its input ends, the job stops, or it aborts."""

    def __init__(
        self,
        name: str,
        chain: BoundChain,
        inbox: queue.Queue | None,
        upstream_count: int,
        keyed_slots: frozenset[int],
        outputs: list[OutputPort],
        batch_size: int,
        stop_event: threading.Event,
        abort_event: threading.Event,
        on_error: Callable[[str, BaseException], None],
        on_exit: Callable[[], None],
    ) -> None:
        super().__init__(name=f"sage-task-{name}", daemon=True)
        self.task_name = name
        self.chain = chain
        self.inbox = inbox
        self.upstream_count = upstream_count
        self.unwrap_slots = frozenset() if chain.head_is_join else keyed_slots
        self.outputs = outputs
        self.batch_size = batch_size
        self.stop_event = stop_event
        self.abort_event = abort_event
        self.on_error = on_error
        self.on_exit = on_exit
        if inbox is not None:
            chain.set_wake(self._wake)

    def run(self) -> None:
        read_input = self._run_source if self.chain.source is not None else self._run_inbox
        try:
            self.chain.run_task(read_input, self.abort_event.is_set, self._emit, self._send_end_of_stream)
        except BaseException as exc:  # reported to the job, which aborts every task
            self.on_error(self.task_name, exc)
        finally:
            self.on_exit()

    # ------------------------------------------------------------------ loops

    def _run_source(self) -> None:
        stop, abort = self.stop_event, self.abort_event
        self.chain.run_source(self.batch_size, lambda: not (stop.is_set() or abort.is_set()), self._emit)

    def _run_inbox(self) -> None:
        inbox = self.inbox
        assert inbox is not None
        chain, unwrap, abort = self.chain, self.unwrap_slots, self.abort_event
        open_inputs = self.upstream_count
        while open_inputs and not abort.is_set():
            try:
                item = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is WAKE:
                self._emit(chain.poll())
                continue
            slot, batch = item
            if batch is END_OF_STREAM:
                open_inputs -= 1
                continue
            if slot in unwrap:
                batch = [record for _, record in batch]
            self._emit(chain.process(batch, slot))
            if chain.pending:
                self._emit(chain.poll())

    # ------------------------------------------------------------------ sending

    def _emit(self, batch: list) -> None:
        if not batch:
            return
        for port in self.outputs:
            for target, piece in port.split(batch):
                if not self._put(port.inboxes[target], (port.slot, piece)):
                    self.chain.dropped(len(piece), port.receiver)

    def _send_end_of_stream(self) -> None:
        for port in self.outputs:
            for target in port.eos_targets:
                self._put(port.inboxes[target], (port.slot, END_OF_STREAM))

    def _put(self, inbox: queue.Queue, item: Any) -> bool:
        """Put ``item`` (waiting while the inbox is full); ``False`` when the job aborted first."""
        while True:
            try:
                inbox.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if self.abort_event.is_set():
                    return False

    def _wake(self) -> None:
        try:
            self.inbox.put_nowait(WAKE)  # type: ignore[union-attr]
        except queue.Full:
            pass  # the task is busy with input and polls its calls after each batch

