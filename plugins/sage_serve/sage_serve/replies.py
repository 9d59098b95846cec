"""A request's reply seen from the server's event loop: its events one by one, with a deadline and
an eye on the client (a client that goes away cancels the request)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from sage_core.serving import Event, Failed, Finished, Reply, ServingError


class ClientGone(Exception):
    """The client disconnected while its request was pending."""


class ReplyEvents:
    """The events of ``reply`` on the running loop; the request ends with ``timeout`` after ``timeout_s``.

    A timer ends it at the deadline even when nobody reads its events any more (a stream whose
    client left before its first chunk), so no request outlives its timeout.
    """

    def __init__(self, reply: Reply, timeout_s: float) -> None:
        self.reply = reply
        self.timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timeout_s
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._backstop = self._loop.call_at(self._deadline, self._expire)
        reply.listen(self._put)

    async def next(self, client: asyncio.Task[Any] | None = None) -> Event:
        """The next event; a ``Failed`` one when the deadline passes; :class:`ClientGone` if ``client`` ends first."""
        remaining = self._deadline - self._loop.time()
        get = asyncio.ensure_future(self._queue.get())
        waiting: set[asyncio.Future[Any]] = {get} if client is None else {get, client}
        done, _ = await asyncio.wait(waiting, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        if client is not None and client in done:
            self.cancel("the client disconnected")
            raise ClientGone
        return Failed(self._expire())

    def cancel(self, why: str) -> None:
        """End the request (no effect once it ended): its stream, if any, is closed."""
        self.reply.cancel(ServingError("cancelled", why))

    def _expire(self) -> ServingError:
        error = ServingError("timeout", f"no complete answer within the request timeout ({self.timeout_s:g} s)")
        self.reply.cancel(error)
        return error

    def _put(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._receive, event)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    def _receive(self, event: Event) -> None:
        self._queue.put_nowait(event)
        if isinstance(event, (Finished, Failed)):
            self._backstop.cancel()


async def disconnected(request: Request) -> None:
    """Return when the client disconnects (the request body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


__all__ = ["ClientGone", "ReplyEvents", "disconnected"]
