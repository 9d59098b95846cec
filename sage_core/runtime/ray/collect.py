"""The channel of ``stream.collect()`` on Ray: a bounded ``ray.util.queue.Queue`` (an actor) read by the driver."""

from __future__ import annotations

from ray.util.queue import Empty, Queue


class RayChannel:
    """Collecting sinks in task actors put batches; the driver gets them. ``put`` waits while it is full."""

    remote = True

    def __init__(self, max_buffered: int, batch: int) -> None:
        self._queue = Queue(maxsize=max(1, max_buffered // batch), actor_options={"num_cpus": 0})
        self._closed = False

    def put(self, batch: list) -> None:
        """Hand a batch over, waiting while the queue is full (backpressure on the sink)."""
        self._queue.put(batch)

    def get(self, timeout: float) -> list | None:
        """The next batch, or ``None`` when none came within ``timeout`` (always, once closed)."""
        if self._closed:
            return None
        try:
            return self._queue.get(block=timeout > 0, timeout=timeout or None)
        except Empty:
            return None

    def close(self) -> None:
        """End the queue's actor (the driver has taken every batch)."""
        self._closed = True
        self._queue.shutdown()
