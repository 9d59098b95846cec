"""Call a backend method the same way whether it is sync, ``async def`` or a (async) generator.

Contract suites use :func:`call` and :func:`drain` so that one suite covers every backend style.
Coroutines run on one long-lived event loop thread for the whole test session, so a backend whose
engine binds to the first loop it sees (vLLM's ``AsyncLLM``) keeps working across tests.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def session_loop() -> asyncio.AbstractEventLoop:
    """The test session's background event loop (started on first use, a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="testing-kit-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def resolve(value: Any, timeout: float | None = 300.0) -> Any:
    """Await ``value`` on the session loop when it is awaitable; return it unchanged otherwise."""
    if inspect.isawaitable(value):
        return asyncio.run_coroutine_threadsafe(_await(value), session_loop()).result(timeout)
    return value


def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` and wait for its result if it is a coroutine."""
    return resolve(method(*args, **kwargs))


def drain(stream: Any, timeout: float | None = 300.0) -> list[Any]:
    """Every item of a sync iterable, an async iterator, or a coroutine returning either."""
    stream = resolve(stream, timeout)
    if hasattr(stream, "__aiter__"):
        return asyncio.run_coroutine_threadsafe(_collect(stream), session_loop()).result(timeout)
    return list(stream)


@contextmanager
def raises_value_error() -> Iterator[None]:
    """Expect the backend's ``ValueError``, raised as is or wrapped by a service proxy (the
    ``ServiceError`` a flow sees carries it as ``cause``), so a suite runs on either."""
    with pytest.raises(Exception) as info:
        yield
    error = info.value
    assert isinstance(error, ValueError) or isinstance(getattr(error, "cause", None), ValueError), (
        f"expected a ValueError for bad input, got {type(error).__name__}: {error}"
    )


async def _await(value: Any) -> Any:
    return await value


async def _collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


__all__ = ["call", "drain", "raises_value_error", "resolve", "session_loop"]
