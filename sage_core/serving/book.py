"""The requests of one endpoint: admission with a bound, the queue the request source reads, the
replies the response sink and the dead-letter router resolve."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sage_core.serving.replies import Reply, ServingError


class RequestBook:
    """Requests accepted and not answered yet, at most ``max_pending`` of them (memory stays bounded).

    :meth:`admit` hands out a :class:`Reply` and queues the record; :meth:`next_record` gives the
    request source the next record whose reply has not ended (a request cancelled while queued
    never enters the pipeline); :meth:`reply` finds a reply by request id. A reply leaves the book
    when it ends, and ``on_end(request_id)`` is called (on the thread that ended it).
    """

    def __init__(self, name: str, max_pending: int, on_end: Callable[[str], None] | None = None) -> None:
        if max_pending < 1:
            msg = f"endpoint {name!r}: max_pending must be >= 1, got {max_pending}"
            raise ValueError(msg)
        self.name = name
        self.max_pending = max_pending
        self.on_end = on_end
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[tuple[Any, Reply]] = deque()
        self._replies: dict[str, Reply] = {}
        self._refusal: ServingError | None = ServingError("unavailable", f"model {name!r} is not ready yet: services are starting")

    def open(self) -> None:
        """Start accepting requests."""
        with self._lock:
            self._refusal = None

    def refuse(self, error: ServingError) -> None:
        """Stop accepting requests: each new one gets ``error``."""
        with self._lock:
            self._refusal = error

    @property
    def accepting(self) -> bool:
        """Whether :meth:`admit` takes requests now."""
        return self._refusal is None

    def admit(self, request_id: str, record: Any) -> Reply:
        """Queue ``record`` for the pipeline; its reply. Raises :class:`ServingError` when refused or full."""
        with self._lock:
            if self._refusal is not None:
                raise self._refusal
            if len(self._replies) >= self.max_pending or len(self._queue) >= self.max_pending:
                msg = f"model {self.name!r} is full: max_pending={self.max_pending} requests already wait for answers; retry later"
                raise ServingError("overloaded", msg)
            if request_id in self._replies:
                msg = f"request id {request_id!r} is already pending"
                raise ValueError(msg)
            reply = Reply(request_id, on_end=self._forget)
            self._replies[request_id] = reply
            self._queue.append((record, reply))
            self._arrived.notify()
        return reply

    def next_record(self) -> Any:
        """The next queued record whose request is still waiting, or ``None``."""
        with self._lock:
            records = self._pop(1)
        return records[0] if records else None

    def wait_records(self, limit: int, timeout: float) -> list:
        """Up to ``limit`` queued records whose requests still wait, once one is queued (or ``timeout`` seconds)."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._queue, timeout)
            return self._pop(limit)

    def _pop(self, limit: int) -> list:
        """Up to ``limit`` queued records, skipping those whose request has ended (lock held)."""
        records: list = []
        while self._queue and len(records) < limit:
            record, reply = self._queue.popleft()
            if not reply.ended.is_set():
                records.append(record)
        return records

    def reply(self, request_id: Any) -> Reply | None:
        """The pending reply of ``request_id`` (``None`` once it ended, or for an unknown id)."""
        with self._lock:
            return self._replies.get(request_id)

    @property
    def pending(self) -> int:
        """Requests accepted and not answered yet."""
        with self._lock:
            return len(self._replies)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is pending (or ``timeout`` seconds); whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._replies, timeout)

    def cancel_all(self, error: ServingError, *, unanswered_only: bool = False) -> int:
        """End every pending request with ``error`` (or only those the pipeline has not answered yet)."""
        with self._lock:
            replies = [r for r in self._replies.values() if not (unanswered_only and r.answered)]
            self._queue.clear()
        for reply in replies:
            reply.cancel(error)
        return len(replies)

    def _forget(self, reply: Reply) -> None:
        with self._idle:
            if self._replies.get(reply.request_id) is reply:
                del self._replies[reply.request_id]
            self._idle.notify_all()
        if self.on_end is not None:
            self.on_end(reply.request_id)


__all__ = ["RequestBook"]
