"""A replica in its own child process (``isolation: process``): its own interpreter and GIL.

The child (``python -m sage_core.services.process_host``, see there) runs the ordinary
:class:`~sage_core.services.replica.Replica` (the backend, its workers, event loop and batching
queues) and talks to the :class:`ProcessReplica` stand-in of this process over a socket pair with
:mod:`multiprocessing.connection` (pickled messages). Calls return Futures that a reader thread
resolves; streams arrive item by item. When the child dies, its calls fail with an error naming
the exit code and the replica serves no more (a fallback takes over). The creator and every
argument and result must pickle: a module-level factory or class, or ``kind`` + ``backend``.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

from sage_core.services.errors import ServiceClosed
from sage_core.services.remote import SignatureView
from sage_core.services.replica import ReplicaState
from sage_core.services.streams import StreamIterator

log = logging.getLogger("sage.services")

STATS_TIMEOUT_S = 10.0
"""How long :meth:`ProcessReplica.batch_stats` waits for the child's figures."""


class ProcessReplica(ReplicaState):
    """Stands in for a :class:`~sage_core.services.replica.Replica` that runs in a child process."""

    def __init__(self, label: str, create: Callable[[], Any], **options: Any) -> None:
        """``options`` are the child's :class:`~sage_core.services.replica.Replica` keywords (workers, batch, thread_name)."""
        super().__init__(label)
        self._init = (label, create, options)
        self._thread_name = options.get("thread_name", "sage-service")
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._calls: dict[int, Future | tuple[StreamIterator, Future]] = {}
        self._ids = itertools.count()

    @property
    def pid(self) -> int | None:
        """The child process's id (``None`` before start)."""
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
        assert self._started is not None
        try:
            payload = pickle.dumps(self._init)
        except Exception as exc:
            msg = (
                f"{self.label}: isolation: process needs a backend creator that pickles (kind + backend, or a "
                f"module-level factory or class, not a lambda or closure): {type(exc).__name__}: {exc}"
            )
            self._fail_start(ValueError(msg))
            return
        ours, theirs = Pipe(duplex=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        command = [sys.executable, "-m", "sage_core.services.process_host", str(theirs.fileno())]
        try:
            process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env)  # noqa: S603
        except OSError as exc:
            self._fail_start(RuntimeError(f"{self.label}: cannot start its process: {exc}"))
            return
        finally:
            theirs.close()
        self._conn, self._process = ours, process
        self._reader = threading.Thread(target=self._read, name=f"{self._thread_name}-reader", daemon=True)
        self._reader.start()
        try:
            self._send(("init", payload))
        except OSError:
            pass  # the reader reports the dead child

    def _fail_start(self, exc: BaseException) -> None:
        assert self._started is not None
        self.state, self.error = "failed", exc
        self._started.set_exception(exc)

    def close(self, timeout: float = 30.0) -> None:
        """Finish queued calls, close the backend and let the child exit (killed after ``timeout``)."""
        with self._lock:
            if self.state == "closed":
                return
            self.state = "closed"
        process = self._process
        if process is not None:
            try:
                self._send(("close", timeout))
                process.wait(timeout + 5.0)
            except (OSError, subprocess.TimeoutExpired):
                log.warning("%s: its process did not exit in time; killing it", self.label)
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5.0)
        self._fail_calls(ServiceClosed(f"{self.label} is closed"))

    # ------------------------------------------------------------------ calls

    def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Future:
        """One call in the child (batched there when the method is batchable)."""
        future: Future = Future()
        if self.state != "ready" or method not in self.methods:
            future.set_exception(self._refusal(method))
            return future
        call_id = next(self._ids)
        with self._lock:
            self.in_flight += 1
            self._calls[call_id] = future
        future.add_done_callback(self._finished)
        self._post(call_id, ("call", call_id, method, tuple(args), kwargs))
        return future

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> StreamIterator:
        """A streaming call in the child; ``timeout`` applies per item, here."""
        if self.state != "ready" or self.methods.get(method) not in ("stream", "async_stream"):
            raise self._refusal(method)
        call_id = next(self._ids)
        stream, task = StreamIterator(timeout), Future()
        stream._task = task  # closing the iterator cancels the task, which cancels the stream there
        with self._lock:
            self.in_flight += 1
            self._calls[call_id] = (stream, task)
        task.add_done_callback(self._finished)
        task.add_done_callback(lambda done: self._cancel(call_id) if done.cancelled() else None)
        self._post(call_id, ("stream", call_id, method, tuple(args), kwargs))
        return stream

    def batch_stats(self) -> dict[str, dict[str, float]]:
        """Batching figures per batchable method, asked of the child (empty when it cannot answer)."""
        if self.state != "ready":
            return {}
        call_id = next(self._ids)
        future: Future = Future()
        with self._lock:
            self._calls[call_id] = future
        self._post(call_id, ("stats", call_id))
        try:
            return future.result(STATS_TIMEOUT_S)
        except Exception:
            return {}

    # ------------------------------------------------------------------ the pipe

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._conn is None:
            raise OSError(f"{self.label}: its process is not running")
        with self._send_lock:
            self._conn.send(message)

    def _post(self, call_id: int, message: tuple[Any, ...]) -> None:
        """Send a call; if its arguments do not pickle or the child is gone, fail that call alone."""
        try:
            self._send(message)
        except Exception as exc:
            what = "its process is gone" if isinstance(exc, OSError) else "the arguments cannot be sent to its process"
            self._settle(call_id, False, RuntimeError(f"{self.label}: {what}: {type(exc).__name__}: {exc}"))

    def _cancel(self, call_id: int) -> None:
        try:
            self._send(("cancel", call_id))
        except Exception:  # the child is gone or closing: nothing left to cancel
            pass

    def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "done":
                self._settle(*message[1:])
            elif kind == "item":
                entry = self._calls.get(message[1])
                if isinstance(entry, tuple):
                    entry[0].put(message[2])
            elif kind == "started":
                self._on_started(*message[1:])
            elif kind == "closed":
                break
        self._on_exit()

    def _on_started(self, state: str, error: BaseException | None, methods: dict[str, str], signatures: dict[str, Any]) -> None:
        assert self._started is not None
        self.methods, self.backend = methods, SignatureView(signatures)
        with self._lock:
            if self.state == "starting":
                self.state, self.error = state, error
        if state == "failed" and error is not None:
            self._started.set_exception(error)
        else:
            self._started.set_result(None)

    def _settle(self, call_id: int, ok: bool, value: Any) -> None:
        """End call ``call_id``: a result, a stream's end (``value`` ``None``), or an exception."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        if isinstance(entry, tuple):
            stream, task = entry
            if ok:
                stream.end()
            else:
                stream.fail(value)
            entry, value = task, None
        if entry.done():
            return
        if ok:
            entry.set_result(value)
        else:
            entry.set_exception(value)

    def _on_exit(self) -> None:
        code = None if self._process is None else self._process.wait()
        exc = RuntimeError(f"{self.label}: its process exited (code {code})")
        with self._lock:
            if self.state != "closed":
                self.state, self.error = "failed", exc
        if self._started is not None and not self._started.done():
            self._started.set_exception(exc)
        self._fail_calls(exc)
        if self._conn is not None:
            self._conn.close()

    def _fail_calls(self, exc: BaseException) -> None:
        with self._lock:
            pending = list(self._calls)
        for call_id in pending:
            self._settle(call_id, False, exc)


__all__ = ["ProcessReplica"]
