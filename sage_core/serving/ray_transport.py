"""Serving through a Ray job (``RemoteEnvironment``): the HTTP front end stays in the driver.

Requests admitted in the driver's books are fed to the environment's relay actor by one thread per
model; the job's request sources take them there. The events of their replies (answers streamed
piece by piece, failures, filtered records) come back through the relay, where one thread of the
driver long-polls them and hands each to its request's :class:`Reply`. When a request ends in the
front end, the relay is told, so a source skips it if it is still queued and a response sink stops
its stream.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray

from sage_core.serving.ray_relay import RemoteRelay
from sage_core.serving.ray_tasks import TAKE_LIMIT, RelaySink, RelaySource, RelayWatcher

if TYPE_CHECKING:
    from sage_core.serving.endpoint import ChatEndpoint
    from sage_core.serving.plan import ServingPlan

POLL_S = 0.2
"""How long the driver's threads wait for work before looking at whether the transport closed."""

log = logging.getLogger("sage.serving")


class RayTransport:
    """Requests in and answers out of a served job whose tasks are Ray actors."""

    def __init__(self, plan: ServingPlan) -> None:
        self.plan = plan
        self.relay_name = f"sage-serve/{plan.env.name}/{uuid.uuid4().hex[:8]}"
        self._relay: Any = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def source(self, endpoint: ChatEndpoint) -> RelaySource:
        """The request source of ``endpoint``: it takes requests from the relay."""
        return RelaySource(self.relay_name, endpoint.name)

    def sink(self, endpoint: ChatEndpoint) -> RelaySink:
        """The response sink of ``endpoint``: it sends answers through the relay."""
        return RelaySink(self.relay_name, endpoint.name)

    def watcher(self) -> RelayWatcher:
        """The job's record watcher: it sends the failures of failed and dropped records through the relay."""
        return RelayWatcher(self.relay_name, [endpoint.request_id for endpoint in self.plan.endpoints.values()])

    def start(self) -> None:
        """Start the relay actor (before any task looks for it), then the feeders and the receiver."""
        self._relay = RemoteRelay.options(name=self.relay_name, num_cpus=0).remote()
        ray.get(self._relay.events.remote(0))
        for endpoint in self.plan.endpoints.values():
            self._spawn(functools.partial(self._feed, endpoint), f"sage-serve-feed-{endpoint.name}")
        self._spawn(self._receive, "sage-serve-receive")

    def request_ended(self, request_id: str) -> None:
        """Tell the relay (without waiting) that nobody waits for ``request_id``'s answer any more."""
        if self._relay is not None and not self._closed.is_set():
            self._relay.ended.remote([request_id])

    def close(self) -> None:
        """Stop the threads and end the relay actor (the job has ended)."""
        self._closed.set()
        for thread in self._threads:
            thread.join()
        if self._relay is not None:
            ray.kill(self._relay)
            self._relay = None

    def _feed(self, endpoint: ChatEndpoint) -> None:
        """Move ``endpoint``'s admitted requests to the relay, in batches."""
        while not self._closed.is_set():
            records = endpoint.book.wait_records(TAKE_LIMIT, POLL_S)
            if records:
                ray.get(self._relay.submit.remote(endpoint.name, records))

    def _receive(self) -> None:
        """Hand the events coming through the relay to their requests' replies."""
        while not self._closed.is_set():
            for request_id, event in ray.get(self._relay.events.remote(POLL_S)):
                reply = self.plan.reply(request_id)
                if reply is not None:
                    reply.relay(event)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            except ray.exceptions.RayError as exc:
                log.error("serving: %s stopped, the relay actor failed: %s", name, exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()


__all__ = ["RayTransport"]
