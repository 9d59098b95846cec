"""Channels between task actors: numbered pushes, a bounded window, and in-order hand-over.

A sending task holds one :class:`ChannelSender` per receiving task and input slot. Each batch
becomes ``receiver.push.remote(task, incarnation, seq, slot, batch)``; at most ``window`` of those
ObjectRefs may be unacknowledged (the sender waits with ``ray.wait``), which is the backpressure.
A push is acknowledged once the receiver has processed the batch *and* every push it made for
its output was acknowledged in turn, so an acknowledged batch has reached the sinks.

Ray runs an async actor's calls concurrently, not necessarily in submission order, so the
receiver puts batches into its inbox in ``seq`` order per (sender incarnation, slot) with an
:class:`InOrder` gate; a restarted receiver cannot know which numbers were acknowledged before
it died, so it accepts batches in arrival order from then on.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Hashable

import ray

POLL_S = 0.05
"""How often a sender blocked on a full window looks at the job's abort flag."""


class TaskAborted(Exception):
    """Unwinds a task whose job aborted while it waited to send."""


class ChannelSender:
    """One sending task's end of a channel to one receiving task."""

    def __init__(self, receiver: Any, task: str, incarnation: str, slot: int, window: int) -> None:
        self.receiver = receiver
        self.task = task
        self.incarnation = incarnation
        self.slot = slot
        self.window = window
        self.seq = 0
        self.pending: list[ray.ObjectRef] = []

    def send(self, batch: Any, abort: threading.Event) -> ray.ObjectRef:
        """Push ``batch`` (records or the end-of-stream marker) once the window has room."""
        while len(self.pending) >= self.window:
            self._settle(abort)
        ref = self.receiver.push.remote(self.task, self.incarnation, self.seq, self.slot, batch)
        self.seq += 1
        self.pending.append(ref)
        return ref

    def drain(self, abort: threading.Event) -> None:
        """Wait until every push so far is acknowledged."""
        while self.pending:
            self._settle(abort)

    def _settle(self, abort: threading.Event) -> None:
        """Drop finished pushes; wait up to ``POLL_S`` for one.

        A push that failed counts as finished: the receiver's failure reaches the driver through
        the receiver's own ``run`` (or Ray's report of its death), and the driver aborts the job.
        """
        ready, rest = ray.wait(self.pending, num_returns=1, timeout=POLL_S)
        if ready and rest:
            _, rest = ray.wait(rest, num_returns=len(rest), timeout=0)
        if ready:
            self.pending = rest
        elif abort.is_set():
            raise TaskAborted(f"task {self.task}: the job aborted while a send waited")


class InOrder:
    """Hands pushes over in sequence order per key; runs on the receiving actor's event loop."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._next: dict[Hashable, int] = {}
        self._waiting: dict[tuple[Hashable, int], asyncio.Future] = {}

    async def turn(self, key: Hashable, seq: int) -> None:
        """Return once every earlier number of ``key`` has been handed over."""
        if not self.enabled or seq <= self._next.get(key, 0):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[(key, seq)] = waiter
        await waiter

    def handed_over(self, key: Hashable, seq: int) -> None:
        """Record that ``seq`` went into the inbox; let ``seq + 1`` through."""
        if not self.enabled:
            return
        self._next[key] = max(self._next.get(key, 0), seq + 1)
        waiter = self._waiting.pop((key, seq + 1), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


__all__ = ["POLL_S", "ChannelSender", "InOrder", "TaskAborted"]
