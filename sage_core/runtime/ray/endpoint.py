"""The direct path's host half: a socket in each replica host actor that task actors call straight.

A task actor's call to a service goes to the replica's host actor over a connection of its own,
not through a router actor and not as a Ray actor call. Measured on a 2-core box (2026-12-04), one
echo round trip from one actor to another:

* a Ray actor call (``ray.get(actor.echo.remote(x))``, sync or async actor): 700-1000 µs; each
  call is a task submission with its own messages, and the reply an object;
* a Ray Compiled Graph (shared-memory channels) compiled in the calling actor: 270 µs, and only
  the process that compiled a graph may run it, and an actor runs one compiled graph at a time,
  so the 64 task actors calling one replica cannot each keep one;
* a ``multiprocessing.connection`` socket from the calling actor to a thread of the host: 35-70 µs,
  many calls in flight on one connection, answers in any order, and Ray still places, restarts
  and kills the actor at its other end.

Messages are pickled with cloudpickle (what Ray uses: functions and classes shipped by value
travel here too) and read with pickle: ``("call", id, method, args, kwargs)`` is answered by
``("done", id, ok, result or exception)``. Every call goes to the host's ordinary
:class:`~sage_core.services.replica.Replica`, so concurrent callers are batched together there.
The connection is authenticated with a key that only the service's handles carry.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, Listener

from ray import cloudpickle

from sage_core.errors import ServiceClosed
from sage_core.runtime.ray.portable import portable_exception
from sage_core.services.replica import Replica

log = logging.getLogger("sage.services")


@dataclass(frozen=True)
class EndpointAddress:
    """Where a replica host listens, and the key a caller proves it holds."""

    host: str
    port: int
    authkey: bytes


class CallEndpoint:
    """Accepts connections on ``ip``; one thread per connection reads calls, replies go out as they finish."""

    def __init__(self, replica: Replica, ip: str, thread_name: str) -> None:
        self.replica = replica
        authkey = os.urandom(16)
        self._listener = Listener((ip, 0), authkey=authkey)
        self.address = EndpointAddress(ip, self._listener.address[1], authkey)
        self._thread_name = thread_name
        threading.Thread(target=self._accept, name=f"{thread_name}-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed
                return
            except Exception:  # a caller that failed the handshake
                log.warning("%s: refused a connection that failed authentication", self.replica.label)
                continue
            no_delay(conn)
            threading.Thread(target=CallerLink(conn, self.replica).serve, name=f"{self._thread_name}-link", daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections (those open end when their callers close them)."""
        self._listener.close()


class CallerLink:
    """One caller's connection: calls in, answers out, in whatever order they finish."""

    def __init__(self, conn: Connection, replica: Replica) -> None:
        self.conn = conn
        self.replica = replica
        self._send_lock = threading.Lock()

    def serve(self) -> None:
        """Read calls until the caller goes away."""
        submit = self.replica.submit
        while True:
            try:
                _, call_id, method, args, kwargs = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                break
            submit(method, args, kwargs).add_done_callback(lambda done, i=call_id: self._answer(i, done))
        self.conn.close()

    def _answer(self, call_id: int, done: Future) -> None:
        if done.cancelled():
            reply = ("done", call_id, False, ServiceClosed(f"{self.replica.label}: the call was cancelled as the replica closed"))
        elif done.exception() is not None:
            reply = ("done", call_id, False, portable_exception(done.exception()))  # type: ignore[arg-type]
        else:
            reply = ("done", call_id, True, done.result())
        try:
            payload = cloudpickle.dumps(reply)
        except Exception as exc:
            why = f"{self.replica.label}: its result cannot be sent back to the caller: {type(exc).__name__}: {exc}"
            payload = cloudpickle.dumps(("done", call_id, False, RuntimeError(why)))
        try:
            with self._send_lock:
                self.conn.send_bytes(payload)
        except OSError:  # the caller is gone
            pass


def no_delay(conn: Connection) -> None:
    """Send small messages at once (no Nagle delay: calls in flight would wait for acknowledgements)."""
    sock = socket.socket(fileno=conn.fileno())
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        sock.detach()


__all__ = ["CallEndpoint", "CallerLink", "EndpointAddress", "no_delay"]
