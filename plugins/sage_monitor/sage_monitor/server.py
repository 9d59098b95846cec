"""The monitor's HTTP server: the dashboard at ``/``, JSON at ``/api/metrics``, Prometheus at ``/metrics``.

Standard library only (``http.server.ThreadingHTTPServer``): the dashboard is a few static files and
two read-only endpoints, which needs no framework, and nothing is added to the user's process beyond
``prometheus_client``. The server is read-only (GET and HEAD; anything else is answered 405), binds
127.0.0.1 by default, and runs on threads named ``sage-monitor-...`` that :meth:`MonitorServer.stop`
ends: the accept loop wakes at once through a socket pair (no polling interval to wait out).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import selectors
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from sage_monitor.hub import MonitorHub
from sage_monitor.prometheus import render

log = logging.getLogger("sage.monitor")

__all__ = ["MonitorServer"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class MonitorServer:
    """Serves a :class:`MonitorHub` over HTTP on ``host:port`` (port 0: a free port, see :attr:`url`)."""

    def __init__(self, hub: MonitorHub, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hub = hub
        self.static = _load_static()
        self._httpd = _Server((host, port), _Handler, monitor=self)
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen when asked for port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The dashboard's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def alive(self) -> bool:
        """Whether the accept loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "MonitorServer":
        """Start the accept loop on a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=f"sage-monitor-http-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, finish the requests in progress, close the socket. Idempotent.

        Safe to call from a request thread (the job-finished hook may run on one): that thread is
        not waited for, it ends when its response is sent.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):  # already closed
            self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None:
            self._close_sockets()
        self._httpd.join_requests(timeout)

    def __enter__(self) -> "MonitorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._httpd.socket and not self._stopping.is_set():
                        self._httpd.handle_request()
        self._close_sockets()

    def _close_sockets(self) -> None:
        self._httpd.server_close()
        self._wake_r.close()
        self._wake_w.close()


class _Server(ThreadingHTTPServer):
    """Named, tracked request threads; no reverse DNS lookup on bind."""

    daemon_threads = True
    block_on_close = False
    timeout = 0.5
    """``handle_request`` gives up after this if the connection vanished between select and accept."""

    def __init__(self, address: tuple[str, int], handler: type, *, monitor: MonitorServer) -> None:
        self.monitor = monitor
        self._requests: set[threading.Thread] = set()
        self._requests_lock = threading.Lock()
        try:
            super().__init__(address, handler)
        except OSError as exc:
            msg = (
                f"sage monitor: cannot listen on {address[0]}:{address[1]} ({exc}); pick another port (0: any free one)"
            )
            raise OSError(exc.errno, msg) from exc

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_request,
            args=(request, client_address),
            name=f"sage-monitor-request-{self.server_port}",
            daemon=True,
        )
        with self._requests_lock:
            self._requests.add(thread)
        thread.start()

    def _run_request(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._requests_lock:
                self._requests.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-response is routine: log it at DEBUG, not to stderr."""
        log.debug("request from %s failed", client_address, exc_info=True)

    def join_requests(self, timeout: float) -> None:
        """Wait for requests in progress (except the calling thread's own)."""
        with self._requests_lock:
            pending = [t for t in self._requests if t is not threading.current_thread()]
        for thread in pending:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD only: ``/``, ``/static/<file>``, ``/api/metrics``, ``/metrics``."""

    server: _Server
    server_version = "sage-monitor"
    timeout = 10.0

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"the SAGE monitor is read-only: GET or HEAD\n",
            "text/plain",
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def _respond(self, *, send_body: bool) -> None:
        monitor = self.server.monitor
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        if path == "/api/metrics":
            body = json.dumps(_finite(monitor.hub.snapshot()), default=str).encode()
            self._send(HTTPStatus.OK, body, "application/json", send_body=send_body)
        elif path == "/metrics":
            body, content_type = render(monitor.hub, self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, body, content_type, send_body=send_body)
        elif path.startswith("/static/") and path[len("/static/") :] in monitor.static:
            name = path[len("/static/") :]
            content_type = CONTENT_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
            self._send(HTTPStatus.OK, monitor.static[name], content_type, send_body=send_body, cache=True)
        else:
            self._send(
                HTTPStatus.NOT_FOUND,
                f"no page at {path}: try / or /metrics\n".encode(),
                "text/plain",
                send_body=send_body,
            )

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        send_body: bool = True,
        cache: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        for header, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(header, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


@functools.cache
def _load_static() -> dict[str, bytes]:
    folder = resources.files("sage_monitor") / "static"
    return {item.name: item.read_bytes() for item in folder.iterdir() if item.is_file()}


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (browsers reject them in JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
