"""The direct path's caller half: a replica as a task actor sees it, one connection to its host.

A :class:`DirectReplica` stands in for a replica inside the task actor's own
:class:`~sage_core.services.service.Service`, so fallback, shards, replicas, deadlines and write
mirroring run in the caller, as locally, and each call is one hop: task actor to replica host
(see :mod:`sage_core.runtime.ray.endpoint` for why a socket). The connection is opened once per
task actor and replica and carries every call of that task, many in flight at once.

When the host actor dies, the calls it had not answered stay pending: once Ray has restarted it,
they are sent again to the new host (at least once, as Ray retries actor calls), and calls made
meanwhile wait for it. A host that Ray will not restart fails its pending calls and the replica,
so the service's next tier answers. Streaming calls go through Ray (items one by one).
"""

from __future__ import annotations

import itertools
import pickle
import socket
import threading
from concurrent.futures import Future
from multiprocessing.connection import Client, Connection
from typing import Any, Sequence

from ray import cloudpickle

from sage_core.errors import ServiceClosed
from sage_core.runtime.ray.endpoint import EndpointAddress, no_delay
from sage_core.runtime.ray.service_actors import RemoteReplica, ReplicaInfo


class DirectReplica(RemoteReplica):
    """A replica in a task actor: calls go over this process's connection to the host's endpoint."""

    def __init__(self, label: str, host: Any) -> None:
        super().__init__(label, host)
        self._conn: Connection | None = None
        self._calls: dict[int, tuple[Future, bytes]] = {}
        self._ids = itertools.count()
        self._send_lock = threading.Lock()

    def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Future:
        """One call on the host; answered by the connection's reader thread."""
        future: Future = Future()
        if self.state != "ready" or method not in self.methods:
            future.set_exception(self._refusal(method))
            return future
        call_id = next(self._ids)
        try:
            payload = cloudpickle.dumps(("call", call_id, method, tuple(args), kwargs))
        except Exception as exc:
            future.set_exception(RuntimeError(f"{self.label}: the arguments cannot be sent: {type(exc).__name__}: {exc}"))
            return future
        with self._lock:
            self.in_flight += 1
            self._calls[call_id] = (future, payload)
            conn = self._conn
        future.add_done_callback(self._finished)
        if conn is not None:  # else the host is restarting: sent once it is back
            self._send(conn, payload)
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Hang up (the replica itself lives on for other callers); fail what is still pending."""
        with self._lock:
            if self.state == "closed":
                return
            self.state, conn, self._conn = "closed", self._conn, None
        if conn is not None:
            hang_up(conn)
        self._fail_pending(ServiceClosed(f"{self.label} is closed"))

    # ------------------------------------------------------------------ the connection

    def _serve(self, info: ReplicaInfo) -> None:
        """Connect to the host that ``info`` describes, then read its answers on a thread of its own."""
        conn = connect(info.endpoint)
        with self._lock:
            if self.state == "closed":
                hang_up(conn)
                return
            self._conn = conn
            resend = [payload for future, payload in self._calls.values() if not future.done()]
        for payload in resend:
            self._send(conn, payload)
        threading.Thread(target=self._read, args=(conn,), name=f"sage-{self.label}-reader", daemon=True).start()

    def _send(self, conn: Connection, payload: bytes) -> None:
        try:
            with self._send_lock:
                conn.send_bytes(payload)
        except OSError:
            pass  # the host died: its reader sends the call again once Ray has restarted it

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                _, call_id, ok, value = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            with self._lock:
                entry = self._calls.pop(call_id, None)
            if entry is None or entry[0].done():
                continue
            if ok:
                entry[0].set_result(value)
            else:
                entry[0].set_exception(value)
        self._reconnect(conn)

    def _reconnect(self, lost: Connection) -> None:
        """The host went away: wait for Ray to restart it and send the pending calls again, or give up."""
        with self._send_lock:
            lost.close()
        with self._lock:
            if self.state == "closed" or self._conn is not lost:
                return
            self._conn = None
        try:
            info: ReplicaInfo = self.host.start.remote().future().result()  # Ray holds it until the actor is back
            if info.state != "ready":
                raise RuntimeError(f"its restarted backend is {info.state}: {info.error}")
            with self._lock:
                self.restarts += 1
            self._serve(info)
        except Exception as exc:
            error = self._lost(exc)
            with self._lock:
                if self.state != "closed":
                    self.state, self.error = "failed", error
            self._fail_pending(error)

    def _fail_pending(self, exc: BaseException) -> None:
        with self._lock:
            pending, self._calls = list(self._calls.values()), {}
        for future, _ in pending:
            if not future.done():
                future.set_exception(exc)


def connect(address: EndpointAddress) -> Connection:
    """A connection to a replica host's endpoint (authenticated, no Nagle delay)."""
    conn = Client((address.host, address.port), authkey=address.authkey)
    no_delay(conn)
    return conn


def hang_up(conn: Connection) -> None:
    """Close ``conn`` so that a thread blocked reading it wakes up (a plain close would not wake it)."""
    sock = socket.socket(fileno=conn.fileno())
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


__all__ = ["DirectReplica", "connect", "hang_up"]
