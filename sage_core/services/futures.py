"""Small combinators over ``concurrent.futures.Future`` that the service layer builds calls from."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable

from sage_core.errors import ServiceClosed


def failed(exc: BaseException) -> Future:
    """A Future already holding ``exc``."""
    future: Future = Future()
    future.set_exception(exc)
    return future


def when_all(futures: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once, on the thread that completes the last of ``futures``."""
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        callback()

    for future in futures:
        future.add_done_callback(one_done)


def combine(futures: list[Future], merge: Callable[[list[Any]], Any]) -> Future:
    """A Future of ``merge([results])`` once all succeed; the first exception otherwise."""
    out: Future = Future()
    if len(futures) == 1:
        futures[0].add_done_callback(lambda f: _settle(out, f, merge))
        return out

    def all_done() -> None:
        for future in futures:
            if future.cancelled() or future.exception() is not None:
                _settle(out, future, merge)
                return
        try:
            out.set_result(merge([f.result() for f in futures]))
        except Exception as exc:
            out.set_exception(exc)

    if futures:
        when_all(futures, all_done)
    else:  # nothing to wait for: merge no answers now
        all_done()
    return out


def first_success(futures: list[Future], on_lagging: Callable[[int], None]) -> Future:
    """Once all are done: the first successful result; ``on_lagging(i)`` for each that failed then."""
    out: Future = Future()

    def all_done() -> None:
        ok = [i for i, f in enumerate(futures) if not f.cancelled() and f.exception() is None]
        if not ok:
            _settle(out, futures[0], lambda r: r)
            return
        for index in range(len(futures)):
            if index not in ok:
                on_lagging(index)
        out.set_result(futures[ok[0]].result())

    when_all(futures, all_done)
    return out


def _settle(out: Future, done: Future, merge: Callable[[Any], Any]) -> None:
    if done.cancelled():
        out.set_exception(ServiceClosed("the call was cancelled while the service closed"))
        return
    exc = done.exception()
    if exc is not None:
        out.set_exception(exc)
        return
    try:
        result = done.result()
        out.set_result(merge([result]) if merge is not None else result)
    except Exception as merge_exc:
        out.set_exception(merge_exc)


__all__ = ["combine", "failed", "first_success", "when_all"]
