"""The event loop a vLLM engine lives on, and calls into it from other loops and threads.

vLLM's async engine binds to the loop it first runs on. :class:`EngineLoop` is that loop: either
the caller's running loop (attached) or a loop in a daemon thread of its own. Coroutines reach it
with :meth:`EngineLoop.run` from any loop (directly when already on it), with
:meth:`EngineLoop.run_sync` from plain threads, and async iterators with :meth:`EngineLoop.iterate`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, AsyncIterator, Callable, Coroutine, TypeVar

T = TypeVar("T")


class EngineLoop:
    """The loop one vLLM engine lives on: ``attach_to`` a running loop, or a thread of its own."""

    def __init__(self, name: str, attach_to: asyncio.AbstractEventLoop | None = None) -> None:
        self._thread: threading.Thread | None = None
        if attach_to is not None:
            self.loop = attach_to
            return
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the engine loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the engine loop and wait for it from a thread that is not that loop."""
        if running_loop() is self.loop:
            coro.close()
            msg = "run_sync() called on the engine's own event loop would block it; await the coroutine instead"
            raise RuntimeError(msg)
        return self.submit(coro).result(timeout)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the engine loop from any loop (cancelling the caller cancels it)."""
        if running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    async def iterate(self, make: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate the async iterator ``make()`` runs on the engine loop, from the caller's loop.

        Closing the caller's iterator early cancels the producer (vLLM then aborts the request).
        """
        caller = running_loop()
        if caller is self.loop:
            async for item in make():
                yield item
            return
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        assert caller is not None

        async def produce() -> None:
            try:
                async for item in make():
                    caller.call_soon_threadsafe(queue.put_nowait, ("item", item))
            except BaseException as exc:  # forwarded to the consumer, then re-raised there
                caller.call_soon_threadsafe(queue.put_nowait, ("error", exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                caller.call_soon_threadsafe(queue.put_nowait, ("end", None))

        producer = self.submit(produce())
        try:
            while True:
                tag, value = await queue.get()
                if tag == "item":
                    yield value
                elif tag == "error":
                    raise value
                else:
                    return
        finally:
            producer.cancel()

    def close(self, timeout: float = 30.0) -> None:
        """Stop a loop of its own and its thread (an attached loop is left alone). Idempotent."""
        if self._thread is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["EngineLoop", "running_loop"]
