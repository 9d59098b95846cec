"""Streaming calls: items a (async) generator method yields, delivered through a blocking iterator."""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterator, Sequence

from sage_core.errors import ServiceClosed, ServiceTimeout


class StreamIterator(Iterator[Any]):
    """A blocking iterator over the items a streaming method yields (``timeout`` per item).

    Breaking out early is fine: :meth:`close` (also called when the iterator is garbage
    collected) stops the producer.
    """

    def __init__(self, timeout: float | None) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._timeout = timeout
        self._task: Future | None = None
        self._done = False
        self.stopped = threading.Event()

    def __iter__(self) -> "StreamIterator":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            item = self._items.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            msg = f"stream produced no item for {self._timeout}s"
            raise ServiceTimeout(msg) from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the producer (no effect once the stream has ended)."""
        self._done = True
        self.stopped.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def __del__(self) -> None:
        if not self._done:
            self.close()

    def put(self, item: Any) -> None:
        """Deliver one item (the producer's side)."""
        self._items.put(item)

    def end(self) -> None:
        """End the stream normally (after the items already delivered)."""
        self._items.put(_END)

    def fail(self, exc: BaseException) -> None:
        """End the stream with ``exc`` (raised by the next ``next()``)."""
        self._items.put(_Failure(exc))


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def pump_sync(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], stream: StreamIterator) -> None:
    """Run a generator method on a worker thread, feeding ``stream`` until it ends or is closed."""
    try:
        for item in fn(*args, **kwargs):
            if stream.stopped.is_set():
                break
            stream.put(item)
    except Exception as exc:
        stream.fail(exc)
        raise
    stream.end()


async def pump_async(agen: Any, stream: StreamIterator) -> None:
    """Drive an async generator on the replica's loop, feeding ``stream`` until it ends."""
    try:
        async for item in agen:
            stream.put(item)
    except asyncio.CancelledError:
        stream.fail(ServiceClosed("the stream was cancelled (iterator closed or service closing)"))
        raise
    except Exception as exc:
        stream.fail(exc)
        raise
    stream.end()


__all__ = ["StreamIterator", "pump_async", "pump_sync"]
