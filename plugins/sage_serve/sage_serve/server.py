"""The uvicorn server: bound before the pipeline starts, SIGTERM/SIGINT drain instead of dropping requests."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from sage_serve.served import ServedEnvironment

DRAIN_MARGIN_S = 5.0
"""uvicorn waits this much longer than the drain for the last responses to be written."""


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM or SIGINT starts the served environment's drain.

    uvicorn then stops accepting connections and waits for the responses in flight, which the
    drain ends within its deadline. Unlike plain uvicorn, the signal is not raised again after a
    graceful exit, so the process exits 0.
    """

    def __init__(self, config: uvicorn.Config, served: ServedEnvironment, announce: str) -> None:
        super().__init__(config)
        self.served = served
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then print ``announce`` (signals are handled from then on) and start the pipeline."""
        await super().startup(sockets=sockets)
        if self.should_exit:  # uvicorn could not start (it has logged why)
            return
        print(self.announce, file=sys.stderr, flush=True)
        self.served.start(on_failure=self.request_exit)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Begin the drain, then let uvicorn shut down (a second Ctrl-C forces the exit)."""
        self.served.drain()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Route SIGTERM and SIGINT to :meth:`handle_exit` while serving (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def request_exit(self) -> None:
        """Stop serving from any thread (the pipeline failed to start)."""
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ``OSError`` names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(served: ServedEnvironment, app: object, sock: socket.socket, *, log_level: str, drain_s: float, announce: str) -> None:
    """Serve ``app`` on ``sock`` until a signal (drained) or a failed start; services start meanwhile.

    ``announce`` is printed to stderr once the server answers (``/healthz``) and handles SIGTERM.
    """
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level=log_level,
        timeout_graceful_shutdown=int(drain_s + DRAIN_MARGIN_S),
        lifespan="off",
        access_log=log_level == "debug",
    )
    DrainingServer(config, served, announce).run(sockets=[sock])


__all__ = ["DrainingServer", "bind", "serve"]
