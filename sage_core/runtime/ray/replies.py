"""How service calls answer across Ray: ``("ok", value)`` or ``("err", exception)`` replies.

Actors return failures as values instead of raising, so the caller gets the very exception the
backend or the service layer raised (a :class:`~sage_core.services.errors.ServiceError` with its
``service``, ``method`` and ``cause``), not Ray's wrapper. A lost actor still surfaces as Ray's
error, which :func:`reply_future` turns into the caller's exception.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, AsyncIterator, Callable, Iterator

import ray

from sage_core.runtime.ray.portable import portable_exception

Reply = tuple[str, Any]

_END = object()


async def answer(future: Future) -> Reply:
    """Await a concurrent Future from the event loop; its outcome as a reply."""
    try:
        return ("ok", await asyncio.wrap_future(future))
    except Exception as exc:
        return ("err", portable_exception(exc))


def reply_future(ref: ray.ObjectRef, lost: Callable[[BaseException], BaseException]) -> Future:
    """A concurrent Future of a reply's value; a Ray failure becomes ``lost(ray_error)``."""
    out: Future = Future()

    def settle(done: Future) -> None:
        try:
            kind, value = done.result()
        except Exception as exc:
            out.set_exception(lost(exc))
            return
        if kind == "ok":
            out.set_result(value)
        else:
            out.set_exception(value)

    ref.future().add_done_callback(settle)
    return out


async def stream_replies(items: Iterator[Any], pool: Any) -> AsyncIterator[Reply]:
    """Items of a blocking iterator as replies, pulled on ``pool`` threads; a failure ends it."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await loop.run_in_executor(pool, next, items, _END)
            if item is _END:
                return
            yield ("ok", item)
    except Exception as exc:
        yield ("err", portable_exception(exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


class RemoteStream(Iterator[Any]):
    """A blocking iterator over a streaming actor call that yields replies."""

    def __init__(self, generator: Any, lost: Callable[[BaseException], BaseException]) -> None:
        self._generator = generator
        self._lost = lost
        self._done = False

    def __iter__(self) -> "RemoteStream":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            kind, value = next(self._generator).future().result()  # not ray.get: this may run in an async actor
        except StopIteration:
            self._done = True
            raise
        except ray.exceptions.RayError as exc:
            self._done = True
            raise self._lost(exc) from exc
        if kind == "err":
            self._done = True
            raise value
        return value

    def close(self) -> None:
        """Stop consuming; the producer is cancelled."""
        if not self._done:
            self._done = True
            try:
                ray.cancel(self._generator)
            except Exception:  # already finished, or the actor is gone
                pass


__all__ = ["RemoteStream", "Reply", "answer", "reply_future", "stream_replies"]
