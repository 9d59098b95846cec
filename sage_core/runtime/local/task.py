"""One thread per physical task: the shared :class:`TaskLoop` over bounded in-process queues."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from sage_core.compiler.partitioners import Splitter
from sage_core.runtime.chain import BoundChain
from sage_core.runtime.records import END_OF_STREAM, WAKE
from sage_core.runtime.task_loop import POLL_S, TaskLoop


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


class TaskThread(TaskLoop):
    """Runs one task on its own thread; inbox items are ``(slot, batch)``."""

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
        super().__init__(chain, inbox, keyed_slots, batch_size, stop_event, abort_event)
        self.task_name = name
        self.open_inputs = upstream_count
        self.outputs = outputs
        self.on_error = on_error
        self.on_exit = on_exit
        self.thread = threading.Thread(target=self._main, name=f"sage-task-{name}", daemon=True)

    def _main(self) -> None:
        try:
            failure = self.run_loop()
            if failure is not None:
                self.on_error(self.task_name, failure)
        finally:
            self.on_exit()

    # ------------------------------------------------------------------ transport

    def inputs_open(self) -> bool:
        return self.open_inputs > 0

    def take(self, item: Any) -> tuple[int, list] | None:
        if item[1] is END_OF_STREAM:
            self.open_inputs -= 1
            return None
        return item

    def emit(self, batch: list) -> None:
        if not batch:
            return
        for port in self.outputs:
            for target, piece in port.split(batch):
                if not self._put(port.inboxes[target], (port.slot, piece)):
                    self.chain.dropped(len(piece), port.receiver)

    def end_stream(self) -> None:
        for port in self.outputs:
            for target in port.eos_targets:
                self._put(port.inboxes[target], (port.slot, END_OF_STREAM))

    def wake(self) -> None:
        try:
            self.inbox.put_nowait(WAKE)
        except queue.Full:
            pass  # the task is busy with input and polls its calls after each batch

    def _put(self, inbox: queue.Queue, item: Any) -> bool:
        """Put ``item`` (waiting while the inbox is full); ``False`` when the job aborted first."""
        while True:
            try:
                inbox.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if self.abort.is_set():
                    return False
