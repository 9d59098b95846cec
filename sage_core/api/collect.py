"""``stream.collect()``: a stream's records back in the driver, on every runtime.

A sink on Ray runs in an actor: ``.sink(results.append)`` appends to the actor's copy of the list.
``collect()`` is what Flink's ``executeAndCollect`` and Ray Data's ``take_all`` give instead: the
records come back to the driver in order of arrival through a bounded channel (a full channel makes
the sink wait: backpressure), identically on the local and Ray runtimes.

::

    answers = env.from_batch(questions).map(Answer).collect()
    env.submit()                 # waits; the records gather in answers.records
    answers.records

    live = env.from_source(Feed).map(Parse).collect()
    job = env.submit(autostop=False)
    for record in live:          # streams as records arrive, until the job ends
        ...
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from sage_core.api.functions import SinkFunction

if TYPE_CHECKING:
    from sage_core.runtime.job import JobHandle

MAX_BUFFERED = 16_384
"""Records the channel holds before the collecting sink waits."""

REMOTE_BATCH = 256
REMOTE_LINGER_S = 0.02
"""On Ray a collecting sink sends up to this many records at once, or what it holds after this long (and at close)."""

POLL_S = 0.05

_NOTHING = object()


class Channel(Protocol):
    """A bounded channel of records from collecting sinks to the driver."""

    remote: bool

    def put(self, batch: list) -> None:
        """Hand records over, waiting while the channel is full."""

    def get(self, timeout: float) -> list | None:
        """Records that arrived, in order, or ``None`` when none came within ``timeout``."""


class LocalChannel:
    """Sinks on threads of this process: a deque of records under a condition, bounded in records."""

    remote = False

    def __init__(self, max_buffered: int) -> None:
        self.max_buffered = max_buffered
        self._records: list = []
        self._ready = threading.Condition()

    def put(self, batch: list) -> None:
        with self._ready:
            while len(self._records) >= self.max_buffered:
                self._ready.wait()
            self._records.extend(batch)
            self._ready.notify_all()

    def get(self, timeout: float) -> list | None:
        with self._ready:
            if not self._records and (timeout <= 0 or not self._ready.wait_for(lambda: self._records, timeout)):
                return None
            records, self._records = self._records, []
            self._ready.notify_all()
            return records


class CollectSink(SinkFunction):
    """Sends the records it receives to the driver's :class:`Collected` (batched when the channel is remote)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._held: list = []
        self._since = 0.0

    def execute(self, record: Any) -> None:
        if not self.channel.remote:
            self.channel.put([record])
            return
        if not self._held:
            self._since = time.monotonic()
        self._held.append(record)
        if len(self._held) >= REMOTE_BATCH or time.monotonic() - self._since >= REMOTE_LINGER_S:
            self._send()

    def close(self) -> None:
        self._send()

    def _send(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self.channel.put(held)


class Collected:
    """The records of a collected stream, in order of arrival.

    Iterate it to consume records as they come (it ends when the job ends and raises the job's
    error if it failed), or read :attr:`records` once the job has ended. While ``job.wait()``,
    ``stop()`` or ``cancel()`` waits, records arriving are kept in :attr:`records`.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.job: JobHandle | None = None
        self._kept: deque = deque()
        self._lock = threading.Lock()

    @property
    def records(self) -> list:
        """Every record received and not yet taken by iteration (all of them after ``submit()`` waited)."""
        self.pump()
        return list(self._kept)

    def pump(self, wait_s: float = 0.0) -> int:
        """Move what the channel holds into :attr:`records`, waiting up to ``wait_s`` for the first records;
        how many moved (the job handle calls it while it waits)."""
        moved = 0
        with self._lock:
            while (batch := self.channel.get(wait_s if not moved else 0)) is not None:
                self._kept.extend(batch)
                moved += len(batch)
        return moved

    def __iter__(self) -> Iterator[Any]:
        if self.job is None:
            msg = "iterate a collected stream after env.submit(autostop=False)"
            raise RuntimeError(msg)
        while True:
            with self._lock:
                record = self._kept.popleft() if self._kept else _NOTHING
            if record is not _NOTHING:
                yield record
                continue
            if self.pump(wait_s=POLL_S):
                continue
            if not self.job.running:
                if not self.pump():
                    error = self.job.runtime.error()
                    if error is not None:
                        raise error
                    return

    def __len__(self) -> int:
        return len(self.records)
