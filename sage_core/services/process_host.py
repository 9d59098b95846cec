"""The child side of a process replica: ``python -m sage_core.services.process_host FD``.

``FD`` is this process's end of the socket pair its :class:`~sage_core.services.process_replica.ProcessReplica`
made. The first message carries the pickled ``(label, create, replica options)``; the
host builds an ordinary :class:`~sage_core.services.replica.Replica` from it, reports its state,
methods and signatures, then serves messages until ``close`` or until the parent goes away:

* ``("call", id, method, args, kwargs)`` -> ``("done", id, ok, result or exception)``;
* ``("stream", id, method, args, kwargs)`` -> ``("item", id, item)``... then ``("done", id, ok, None or exception)``;
* ``("cancel", id)`` closes a stream; ``("stats", id)`` answers the batching figures;
* ``("close", timeout)`` closes the replica, answers ``("closed",)`` and exits.
"""

from __future__ import annotations

import pickle
import sys
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from sage_core.services.remote import method_signatures, portable_exception
from sage_core.services.replica import Replica
from sage_core.services.streams import StreamIterator


class ReplicaProcessHost:
    """Serves one replica's calls arriving on ``conn``."""

    def __init__(self, conn: Connection, replica: Replica) -> None:
        self.conn = conn
        self.replica = replica
        self._send_lock = threading.Lock()
        self._streams: dict[int, StreamIterator] = {}

    def serve(self) -> None:
        """Start the backend, report it, then answer messages until told to close or orphaned."""
        try:
            self.replica.start().result()
        except Exception:  # the replica records state "failed" and the error
            pass
        replica = self.replica
        error = None if replica.error is None else portable_exception(replica.error)
        self._send(("started", replica.state, error, dict(replica.methods), method_signatures(replica.backend, replica.methods)))
        timeout = 30.0
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            kind = message[0]
            if kind == "call":
                _, call_id, method, args, kwargs = message
                replica.submit(method, args, kwargs).add_done_callback(lambda done, i=call_id: self._answer(i, done))
            elif kind == "stream":
                threading.Thread(target=self._stream, args=message[1:], name=f"sage-stream-{message[1]}", daemon=True).start()
            elif kind == "cancel":
                stream = self._streams.get(message[1])
                if stream is not None:
                    stream.close()
            elif kind == "stats":
                self._send(("done", message[1], True, replica.batch_stats()))
            elif kind == "close":
                timeout = message[1]
                break
        replica.close(timeout)
        try:
            self._send(("closed",))
        except OSError:
            pass

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _answer(self, call_id: int, done: Future) -> None:
        exc = done.exception()
        self._finish(call_id, exc is None, done.result() if exc is None else portable_exception(exc))

    def _finish(self, call_id: int, ok: bool, value: Any) -> None:
        """Send a call's outcome; a result that does not pickle becomes an error for that call."""
        try:
            self._send(("done", call_id, ok, value))
        except OSError:
            return  # the parent is gone
        except Exception as exc:
            failure = RuntimeError(
                f"the replica's result cannot be sent back to the caller's process: {type(exc).__name__}: {exc}"
            )
            self._send(("done", call_id, False, failure))

    def _stream(self, call_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            items = self.replica.open_stream(method, args, kwargs, None)  # the caller's side times items
        except Exception as exc:
            self._finish(call_id, False, portable_exception(exc))
            return
        self._streams[call_id] = items
        try:
            for item in items:
                self._send(("item", call_id, item))
        except OSError:
            items.close()
            return
        except Exception as exc:
            items.close()
            self._finish(call_id, False, portable_exception(exc))
            return
        finally:
            self._streams.pop(call_id, None)
        self._finish(call_id, True, None)


def main(argv: list[str]) -> None:
    """Serve the replica described by the first message on file descriptor ``argv[1]``."""
    conn = Connection(int(argv[1]))
    kind, payload = conn.recv()
    assert kind == "init", kind
    label, create, options = pickle.loads(payload)
    ReplicaProcessHost(conn, Replica(label, create, **options)).serve()
    conn.close()


if __name__ == "__main__":
    main(sys.argv)
