"""The answer to one served request as it arrives, and the errors a request can end with.

A :class:`Reply` is written by the pipeline's side (the response sink, a stream pump, the
dead-letter router) and read by the front end through :meth:`Reply.listen`. Every reply ends
exactly once: finished, failed or cancelled; whatever comes after is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sage_core.serving.records import Answer

Reason = Literal["overloaded", "unavailable", "timeout", "failed", "filtered", "cancelled"]


class ServingError(Exception):
    """Why a request got no answer: ``reason`` is what a front end maps to a status code.

    ``overloaded``: too many requests pending; ``unavailable``: not ready or shutting down;
    ``timeout``: no answer in time; ``failed``: a function or service raised on the record;
    ``filtered``: a filter (or a flatmap giving nothing) dropped the record, so the pipeline has
    no answer for it; ``cancelled``: the client went away or the job was cancelled.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[ServingError], tuple[Reason, str]]:
        return ServingError, (self.reason, self.message)  # travels between processes (Ray) whole


@dataclass(frozen=True)
class Started:
    """The answer began: its sources and prompt token count (text follows as pieces)."""

    answer: Answer


@dataclass(frozen=True)
class Piece:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The answer is complete."""

    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    """The request ended without a (complete) answer."""

    error: ServingError


Event = Started | Piece | Finished | Failed


class Reply:
    """One request's answer: events ``Started``, ``Piece``..., then ``Finished`` or ``Failed``.

    Thread-safe. Events before :meth:`listen` are kept and replayed to the listener.
    """

    def __init__(self, request_id: str, on_end: Callable[[Reply], None] = lambda reply: None) -> None:
        self.request_id = request_id
        self.ended = threading.Event()
        self.answered = False
        """Whether the pipeline delivered the answer (its text may still be streaming)."""
        self._on_end = on_end
        self._lock = threading.Lock()
        self._buffered: list[Event] = []
        self._listener: Callable[[Event], None] | None = None
        self._stream: Iterator[str] | None = None
        self._pieces = 0

    # ------------------------------------------------------------------ the front end's side

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Deliver every event so far, then each new one, to ``listener`` (called on the writer's thread)."""
        with self._lock:
            buffered, self._buffered = self._buffered, []
            self._listener = listener
            for event in buffered:
                listener(event)

    def cancel(self, error: ServingError) -> None:
        """End the request with ``error`` (client gone, timeout, shutdown) and stop its stream."""
        self._end(Failed(error))

    # ------------------------------------------------------------------ the pipeline's side

    def answer(self, answer: Answer) -> None:
        """Deliver ``answer``: a whole text at once, or its stream read to the end on a thread of its own."""
        if self.ended.is_set():
            _close(answer.stream)
            return
        self.answered = True
        self._emit(Started(answer))
        if answer.stream is None:
            if answer.text:
                self._emit(Piece(answer.text))
            self._finish(answer)
            return
        with self._lock:
            self._stream = answer.stream
        threading.Thread(target=self._pump, args=(answer,), name=f"sage-serve-{self.request_id}", daemon=True).start()

    def fail(self, error: ServingError) -> None:
        """End the request with ``error`` (the record failed or was dropped)."""
        self._end(Failed(error))

    def relay(self, event: Event) -> None:
        """Apply an event of this request's reply in another process (the pipeline runs on Ray)."""
        if isinstance(event, (Finished, Failed)):
            self._end(event)
            return
        if isinstance(event, Started):
            self.answered = True
        self._emit(event)

    # ------------------------------------------------------------------ internals

    def _pump(self, answer: Answer) -> None:
        stream = answer.stream
        assert stream is not None
        try:
            for text in stream:
                if self.ended.is_set():
                    return
                if text:
                    self._emit(Piece(text))
        except Exception as exc:
            self._end(Failed(ServingError("failed", f"the answer's stream failed: {type(exc).__name__}: {exc}")))
            return
        finally:
            _close(stream)
        self._finish(answer)

    def _finish(self, answer: Answer) -> None:
        completion = answer.completion_tokens if answer.completion_tokens is not None else self._pieces
        self._end(Finished(answer.finish_reason, answer.prompt_tokens, completion))

    def _emit(self, event: Event) -> None:
        with self._lock:
            if self.ended.is_set():
                return
            if isinstance(event, Piece):
                self._pieces += 1
            self._deliver(event)

    def _end(self, event: Finished | Failed) -> None:
        with self._lock:
            if self.ended.is_set():
                return
            self.ended.set()
            self._deliver(event)
            stream, self._stream = self._stream, None
        self._on_end(self)  # first: once the stream's producer sees the close, the request is gone
        if isinstance(event, Failed):
            _close(stream)

    def _deliver(self, event: Event) -> None:
        if self._listener is None:
            self._buffered.append(event)
        else:
            self._listener(event)


def _close(stream: Any) -> None:
    """Close a stream that supports it (a service stream: the generation is aborted)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


__all__ = ["Event", "Failed", "Finished", "Piece", "Reply", "ServingError", "Started"]
