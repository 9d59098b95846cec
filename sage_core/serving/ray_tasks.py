"""The served Ray job's side of serving: request source, response sink and record watcher in task actors.

They reach the driver through the environment's :class:`~sage_core.serving.ray_relay.Relay` actor,
found by name. In each task actor's process one :class:`Outbox` thread sends the events of the
functions there in batches; in return it learns which of the answers still streaming here belong
to requests that ended in the front end (client gone, timeout, shutdown) and closes their streams,
which aborts the generation.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import ray

from sage_core.api.functions import SinkFunction, SourceFunction
from sage_core.serving.local import expect_answer
from sage_core.serving.replies import Event, Failed, Reply, ServingError, Started
from sage_core.serving.watching import RequestWatcher

TAKE_LIMIT = 256
"""Requests a request source takes from the relay at once."""

POLL_S = 0.1
"""How often an outbox with answers streaming asks the relay which of their requests have ended."""

SEND_LIMIT = 1024
"""Events an outbox sends in one call."""

log = logging.getLogger("sage.serving")


class RelaySource(SourceFunction):
    """The head of a served pipeline on Ray: request records of ``model`` taken from the relay in batches."""

    def __init__(self, relay: str, model: str) -> None:
        self.relay = relay
        self.model = model
        self._taken: deque[Any] = deque()
        self._handed_out = False

    def execute(self, data: Any = None) -> Any:
        """The next request record; ``None`` when none waits (and after each batch taken, to end the pull)."""
        if self._taken:
            return self._taken.popleft()
        if self._handed_out:  # every record of the last take is out: the runtime's pull ends here
            self._handed_out = False
            return None
        take = ray.get_actor(self.relay).take.remote(self.model, TAKE_LIMIT)
        self._taken.extend(take.future().result())  # not ray.get: this runs in an asynchronous actor
        self._handed_out = bool(self._taken)
        return self._taken.popleft() if self._taken else None


class RelaySink(SinkFunction):
    """The end of a served pipeline on Ray: each :class:`Answer`'s events go to the driver through the relay.

    A streamed answer is read here, on a thread of its own, piece by piece. ``close()`` (the job
    ends) waits until every answer of this process has ended: finished, or stopped because its
    request ended in the front end.
    """

    def __init__(self, relay: str, model: str) -> None:
        self.relay = relay
        self.model = model

    def execute(self, data: Any) -> None:
        """Send the answer of ``data``'s request to the driver."""
        answer = expect_answer(data, self.model)
        outbox = Outbox.of(self.relay)
        reply = Reply(answer.request_id, on_end=outbox.unwatch)
        outbox.watch(reply)
        reply.listen(lambda event: outbox.put(answer.request_id, event))
        reply.answer(answer)

    def close(self) -> None:
        """Wait for the answers still streaming from this process."""
        outbox = Outbox.existing(self.relay)
        if outbox is not None:
            outbox.wait_idle()


class RelayWatcher(RequestWatcher):
    """Ends the requests of failed and dropped records from the task actor where they left the job."""

    def __init__(self, relay: str, finders: Iterable[Callable[[Any], Any] | None]) -> None:
        super().__init__(finders)
        self.relay = relay

    def end(self, request_id: str, error: ServingError) -> None:
        """Send the request's failure to the driver."""
        Outbox.of(self.relay).put(request_id, Failed(error))


class Outbox:
    """One process's way to the relay: events sent in batches by a thread; answers streaming here, watched."""

    _open: ClassVar[dict[str, Outbox]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, relay: str) -> Outbox:
        """The outbox of this process for ``relay`` (made on first use)."""
        with cls._open_lock:
            outbox = cls._open.get(relay)
            if outbox is None:
                outbox = cls._open[relay] = Outbox(relay)
            return outbox

    @classmethod
    def existing(cls, relay: str) -> Outbox | None:
        """The outbox of this process for ``relay``, if one was made."""
        with cls._open_lock:
            return cls._open.get(relay)

    def __init__(self, relay: str) -> None:
        self.relay = ray.get_actor(relay)
        self._events: queue.SimpleQueue[tuple[str, Event]] = queue.SimpleQueue()
        self._watched: dict[str, Reply] = {}
        self._changed = threading.Condition()
        threading.Thread(target=self._send, name="sage-serve-outbox", daemon=True).start()

    def put(self, request_id: str, event: Event) -> None:
        """Send ``event`` of request ``request_id`` to the driver (a started answer without its stream)."""
        if isinstance(event, Started):
            event = Started(dataclasses.replace(event.answer, stream=None))
        self._events.put((request_id, event))

    def watch(self, reply: Reply) -> None:
        """Stop ``reply`` once its request has ended in the front end."""
        with self._changed:
            self._watched[reply.request_id] = reply

    def unwatch(self, reply: Reply) -> None:
        """``reply`` has ended."""
        with self._changed:
            if self._watched.get(reply.request_id) is reply:
                del self._watched[reply.request_id]
            self._changed.notify_all()

    def wait_idle(self) -> None:
        """Wait until no watched answer is left."""
        with self._changed:
            self._changed.wait_for(lambda: not self._watched)

    def _send(self) -> None:
        while True:
            batch = self._next_batch()
            with self._changed:
                watching = list(self._watched)
            if not (batch or watching):
                continue
            try:
                ended = self.relay.emit.remote(batch, watching).future().result()
            except ray.exceptions.RayError as exc:  # the relay is gone: so is the front end
                log.warning("serving: the relay is gone (%s); answers streaming here are stopped", exc)
                ended = watching
            for request_id in ended:
                with self._changed:
                    reply = self._watched.get(request_id)
                if reply is not None:
                    reply.cancel(ServingError("cancelled", "the request ended in the front end"))

    def _next_batch(self) -> list[tuple[str, Event]]:
        """The events waiting (at most :data:`SEND_LIMIT`); waits for one, at most :data:`POLL_S` while answers stream."""
        try:
            batch = [self._events.get(timeout=POLL_S if self._watched else None)]
        except queue.Empty:
            return []
        while len(batch) < SEND_LIMIT:
            try:
                batch.append(self._events.get_nowait())
            except queue.Empty:
                break
        return batch


__all__ = ["Outbox", "RelaySink", "RelaySource", "RelayWatcher"]
