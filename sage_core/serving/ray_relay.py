"""The relay of a served Ray job: where the front end (in the driver) and the job's task actors meet.

One small asynchronous actor per served environment holds the requests queued for each model
(the request sources take them), the reply events the task actors send (the driver long-polls
them), and the ids of requests that ended in the front end, so that a source skips a request
cancelled while queued and a response sink stops an answer nobody waits for any more.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any

import ray

ENDED_KEPT = 100_000
"""How many ended request ids the relay remembers (the newest): its memory stays bounded."""


class Relay:
    """Requests in, reply events out, and which requests have ended (a Ray actor: :data:`RemoteRelay`)."""

    def __init__(self) -> None:
        self._requests: dict[str, deque[Any]] = {}
        self._events: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()
        self._ended: OrderedDict[str, None] = OrderedDict()

    def submit(self, model: str, records: list[Any]) -> None:
        """Queue request records for ``model``'s request sources (the driver's feeder)."""
        self._requests.setdefault(model, deque()).extend(records)

    def take(self, model: str, limit: int) -> list[Any]:
        """Up to ``limit`` queued requests of ``model`` whose request has not ended (a request source)."""
        queued = self._requests.get(model)
        taken: list[Any] = []
        while queued and len(taken) < limit:
            record = queued.popleft()
            if record.id not in self._ended:
                taken.append(record)
        return taken

    def emit(self, events: list[tuple[str, Any]], watching: list[str]) -> list[str]:
        """Pass ``(request_id, event)`` pairs on to the driver; the ids in ``watching`` whose request has ended."""
        if events:
            self._events.extend(events)
            self._arrived.set()
        return [request_id for request_id in watching if request_id in self._ended]

    def ended(self, request_ids: list[str]) -> None:
        """Requests that ended in the front end (answered, failed, cancelled, timed out)."""
        for request_id in request_ids:
            self._ended[request_id] = None
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    async def events(self, timeout: float) -> list[tuple[str, Any]]:
        """The events sent since the last call, waiting up to ``timeout`` seconds for one (the driver)."""
        if not self._events and timeout > 0:
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        events, self._events = self._events, []
        self._arrived.clear()
        return events


RemoteRelay = ray.remote(Relay)
"""The relay as a Ray actor class (named per served environment, reserving no CPU)."""

__all__ = ["ENDED_KEPT", "Relay", "RemoteRelay"]
