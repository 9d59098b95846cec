"""A replica in its own child process (``isolation: process``): its own interpreter and GIL.

The child (``python -m sage_core.services.process_host``, see there) runs the ordinary
:class:`~sage_core.services.replica.Replica` (the backend, its workers, event loop and batching
queues) and talks to the :class:`ProcessReplica` stand-in of this process over a socket pair with
:mod:`multiprocessing.connection` (pickled messages). Calls return Futures that a reader thread
resolves; streams arrive item by item. The creator and every argument and result must pickle: a
module-level factory or class, or ``kind`` + ``backend``.

When the child dies (killed, crashed, out of memory), the replica is restarted in a new child after
a backoff, as :class:`~sage_core.services.config.RestartConfig` says; meanwhile it is not usable, so
other replicas or the fallback serve. Each call the dead child had not answered is sent once more
to the restarted child; a stream, or a call that was already sent again, fails with an error naming
the replica and how its process died. A replica dying again after ``max_restarts`` restarts in a
row (no call served in between) stays failed. The new child starts a new backend: state the old one
held is lost.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

from sage_core.errors import ServiceClosed
from sage_core.services.config import RestartConfig
from sage_core.services.remote import SignatureView
from sage_core.services.replica import ReplicaState
from sage_core.services.streams import StreamIterator

log = logging.getLogger("sage.services")

STATS_TIMEOUT_S = 10.0
"""How long :meth:`ProcessReplica.batch_stats` waits for the child's figures."""


class ProcessReplica(ReplicaState):
    """Stands in for a :class:`~sage_core.services.replica.Replica` that runs in a child process."""

    def __init__(
        self, label: str, create: Callable[[], Any], *, restart: RestartConfig | None = None, **options: Any
    ) -> None:
        """``options``: the child's :class:`~sage_core.services.replica.Replica` keywords (workers, batch, thread_name)."""
        super().__init__(label)
        self._init = (label, create, options)
        self._restart = restart or RestartConfig()
        self._thread_name = options.get("thread_name", "sage-service")
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Pending] = {}
        self._ids = itertools.count()
        self._deaths: list[str] = []
        self._deaths_in_row = 0
        self._closing = threading.Event()

    @property
    def pid(self) -> int | None:
        """The current child process's id (``None`` before start)."""
        return None if self._process is None else self._process.pid

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Future:
        """Launch the child and create the backend there (once); the Future fails if that fails."""
        with self._lock:
            if self._started is None:
                self.state = "starting"
                self._started = Future()
                threading.Thread(target=self._launch, name=f"{self._thread_name}-launch", daemon=True).start()
            return self._started

    def _launch(self) -> None:
        """Start a child process, hand it the creator, and read its answers on a new thread."""
        try:
            payload = pickle.dumps(self._init)
        except Exception as exc:
            msg = (
                f"{self.label}: isolation: process needs a backend creator that pickles (kind + backend, or a "
                f"module-level factory or class, not a lambda or closure): {type(exc).__name__}: {exc}"
            )
            self._fail(ValueError(msg))
            return
        ours, theirs = Pipe(duplex=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        command = [sys.executable, "-m", "sage_core.services.process_host", str(theirs.fileno())]
        try:
            process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env)  # noqa: S603
        except OSError as exc:
            self._fail(RuntimeError(f"{self.label}: cannot start its process: {exc}"))
            return
        finally:
            theirs.close()
        try:
            self._send(ours, ("init", payload))
        except OSError:
            pass  # the reader reports the dead child
        with self._lock:
            closed = self.state == "closed"
            if not closed:
                self._conn, self._process = ours, process
        if closed:  # closed while this child was starting
            process.kill()
            process.wait()
            ours.close()
            return
        reader = threading.Thread(target=self._read, args=(ours, process), name=f"{self._thread_name}-reader", daemon=True)
        self._reader = reader
        reader.start()

    def close(self, timeout: float = 30.0) -> None:
        """Finish queued calls, close the backend and let the child exit (killed after ``timeout``)."""
        with self._lock:
            if self.state == "closed":
                return
            self.state = "closed"
            conn, process = self._conn, self._process
            self._lock.notify_all()
        self._closing.set()
        if conn is not None and process is not None and process.poll() is None:
            try:
                self._send(conn, ("close", timeout))
                process.wait(timeout + 5.0)
            except OSError:
                pass  # it died just now; its reader saw that
            except subprocess.TimeoutExpired:
                log.warning("%s: its process did not exit within %ss of close; killing it", self.label, timeout + 5.0)
                process.kill()
                process.wait()
        if self._deaths:
            log.warning("%s", self.history())
        if self._reader is not None:
            self._reader.join(5.0)
        self._fail(ServiceClosed(f"{self.label} is closed"))

    def wait_ready(self, timeout: float | None = None, *, restarts: int = 0) -> bool:
        """Block until the replica serves after at least ``restarts`` restarts; ``False`` if it stays down or time runs out."""

        def serving() -> bool:
            return self.state == "ready" and self.restarts >= restarts

        with self._lock:
            self._lock.wait_for(lambda: serving() or self.state in ("failed", "unavailable", "closed"), timeout)
            return serving()

    def history(self) -> str:
        """What happened to this replica's processes, in words (for logs and the close warning)."""
        causes = list(dict.fromkeys(self._deaths))
        text = (
            f"{self.title}: its process died {_times(len(self._deaths))}, with {' or '.join(causes)}, "
            f"and was restarted {_times(self.restarts)}"
        )
        return text + ("; the last time, it was not restarted" if len(self._deaths) > self.restarts else "")

    # ------------------------------------------------------------------ calls

    def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Future:
        """One call in the child (batched there when the method is batchable)."""
        future: Future = Future()
        message = ("call", next(self._ids), method, tuple(args), kwargs)
        conn = self._register(message, future, method in self.methods)
        if conn is None:
            future.set_exception(self._refusal(method))
            return future
        future.add_done_callback(self._finished)
        self._post(message, conn)
        return future

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> StreamIterator:
        """A streaming call in the child; ``timeout`` applies per item, here."""
        message = ("stream", next(self._ids), method, tuple(args), kwargs)
        stream, task = StreamIterator(timeout), Future()
        conn = self._register(message, (stream, task), self.methods.get(method) in ("stream", "async_stream"))
        if conn is None:
            raise self._refusal(method)
        stream._task = task  # closing the iterator cancels the task, which cancels the stream there
        task.add_done_callback(self._finished)
        task.add_done_callback(lambda done: self._cancel(message[1]) if done.cancelled() else None)
        self._post(message, conn)
        return stream

    def batch_stats(self) -> dict[str, dict[str, float]]:
        """Batching figures per batchable method, asked of the child (empty when it cannot answer)."""
        future: Future = Future()
        message = ("stats", next(self._ids))
        conn = self._register(message, future, True, counted=False)
        if conn is None:
            return {}
        self._post(message, conn)
        try:
            return future.result(STATS_TIMEOUT_S)
        except Exception:
            return {}

    def _register(
        self, message: tuple[Any, ...], target: Future | tuple[StreamIterator, Future], known: bool, counted: bool = True
    ) -> Connection | None:
        """Record a call to send on the current child's connection; ``None`` when the replica cannot take it."""
        with self._lock:
            if self.state != "ready" or not known or self._conn is None:
                return None
            if counted:
                self.in_flight += 1
            self._calls[message[1]] = _Pending(target, message if message[0] == "call" else None)
            return self._conn

    # ------------------------------------------------------------------ the pipe

    def _send(self, conn: Connection, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            conn.send(message)

    def _post(self, message: tuple[Any, ...], conn: Connection) -> None:
        """Send a call; if its arguments do not pickle, fail that call alone (a dead child is the reader's to handle)."""
        try:
            self._send(conn, message)
        except OSError:
            pass  # the child died: its reader sends the call again to the next child, or fails it
        except Exception as exc:
            what = f"{self.label}: the arguments cannot be sent to its process"
            self._settle(message[1], False, RuntimeError(f"{what}: {type(exc).__name__}: {exc}"))

    def _cancel(self, call_id: int) -> None:
        conn = self._conn
        try:
            if conn is not None:
                self._send(conn, ("cancel", call_id))
        except Exception:  # the child is gone or closing: nothing left to cancel
            pass

    def _read(self, conn: Connection, process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "done":
                self._settle(*message[1:])
            elif kind == "item":
                entry = self._calls.get(message[1])
                if entry is not None and isinstance(entry.target, tuple):
                    entry.target[0].put(message[2])
            elif kind == "started":
                self._on_started(*message[1:])
            elif kind == "closed":
                break
        self._on_exit(conn, process)

    def _on_started(
        self, state: str, error: BaseException | None, methods: dict[str, str], signatures: dict[str, Any]
    ) -> None:
        assert self._started is not None
        first = not self._started.done()
        with self._lock:
            if self.state == "closed":
                return
            self.methods, self.backend = methods, SignatureView(signatures)
            self.state, self.error = state, error
            self._lock.notify_all()
            replays = [entry for entry in self._calls.values() if entry.replayable] if state == "ready" else []
            for entry in replays:
                entry.retried = True
        if first:
            self._end_start(error if state == "failed" else None)
        for entry in replays:
            self._post(entry.message, self._conn)  # type: ignore[arg-type]
        if state != "ready" and not first:
            self._fail(RuntimeError(f"{self.title}: its restarted backend is {state}: {error}"))

    def _settle(self, call_id: int, ok: bool, value: Any) -> None:
        """End call ``call_id``: a result, a stream's end (``value`` ``None``), or an exception."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
            if ok:
                self._deaths_in_row = 0  # it serves again: a later death starts a new run of restarts
        if entry is None:
            return
        target = entry.target
        if isinstance(target, tuple):
            stream, target = target
            if ok:
                stream.end()
            else:
                stream.fail(value)
            value = None
        if target.done():
            return
        if ok:
            target.set_result(value)
        else:
            target.set_exception(value)

    def _on_exit(self, conn: Connection, process: subprocess.Popen[bytes]) -> None:
        """The child is gone: after close, fail what is left; otherwise restart it, or give up."""
        cause = exit_cause(process.wait())
        conn.close()
        died = f"{self.title}: its process died with {cause}"
        limit = self._restart.max_restarts
        with self._lock:
            if self.state == "closed":
                return  # close() ends what is left
            self._deaths.append(cause)
            self._deaths_in_row += 1
            attempt = self._deaths_in_row
            restart = attempt <= limit
            lost = {i: entry for i, entry in self._calls.items() if not (restart and entry.replayable)}
            if restart:
                self.state, self.error = "restarting", RuntimeError(f"{died}; restarting it ({attempt} of {limit})")
        for call_id, entry in lost.items():
            self._settle(call_id, False, RuntimeError(f"{died} {entry.unanswered()}"))
        if not restart:
            why = f"not restarted: it died {_times(attempt)} in a row (restart.max_restarts is {limit})"
            self._fail(RuntimeError(f"{died}; {why}"))
            return
        delay = self._restart.delay(attempt)
        log.warning("%s; restarting it in %.2fs (%d of %d)", died, delay, attempt, limit)
        if self._closing.wait(delay):
            return
        with self._lock:
            self.restarts += 1
        self._launch()

    def _fail(self, exc: BaseException) -> None:
        """The replica cannot serve: fail its start (if pending) and every call it holds."""
        with self._lock:
            if self.state != "closed":
                self.state, self.error = "failed", exc
            self._lock.notify_all()
        self._end_start(exc)
        self._fail_calls(exc)

    def _end_start(self, exc: BaseException | None) -> None:
        """Settle the Future :meth:`start` returned, unless never started or already settled."""
        started = self._started
        try:
            if started is not None and exc is None:
                started.set_result(None)
            elif started is not None:
                started.set_exception(exc)
        except InvalidStateError:
            pass

    def _fail_calls(self, exc: BaseException) -> None:
        with self._lock:
            pending = list(self._calls)
        for call_id in pending:
            self._settle(call_id, False, exc)


@dataclass
class _Pending:
    """A call the child has not answered: where its outcome goes, and the message to send again on a restart."""

    target: Future | tuple[StreamIterator, Future]
    message: tuple[Any, ...] | None  # None: never sent again (streams, figures)
    retried: bool = False

    @property
    def replayable(self) -> bool:
        """Whether a restarted child should get this call: a plain call, still awaited, not sent again already."""
        awaited = isinstance(self.target, Future) and not self.target.done()
        return awaited and self.message is not None and not self.retried

    def unanswered(self) -> str:
        """Why this call is not sent again, for its error."""
        if self.retried:
            return "before answering this call, which was already sent again to a restarted process"
        return "before answering this call" + (" (a stream is not sent again)" if isinstance(self.target, tuple) else "")


def exit_cause(code: int) -> str:
    """How a process ended, from its return code: ``signal 9 (SIGKILL)`` or ``exit code 3``."""
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _times(count: int) -> str:
    return f"{count} time" + ("" if count == 1 else "s")


__all__ = ["ProcessReplica", "exit_cause"]
