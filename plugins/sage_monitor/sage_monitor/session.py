"""What the job lifecycle hooks do: serve a dashboard for monitored jobs, for as long as they run.

A job is monitored when its config's ``monitor:`` section (:class:`MonitorSettings`) says
``enabled: true``. The process has one :data:`SESSION`. The first monitored job starts a hub and a
server at its section's ``host`` and ``port`` (a busy port falls back to a free one) and logs the
URL. Every later monitored job joins the same dashboard. When the last one finishes its final
figures are frozen and the server stops, so no ``sage-monitor-*`` thread outlives the jobs.
``sage monitor`` and ``sage top`` instead lend the session a hub (and server) of their own with
:meth:`MonitorSession.attached`: every job of the pipeline file is watched, whatever its config
says, and the command decides when serving ends.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from sage_monitor.hub import MonitorHub
from sage_monitor.server import MonitorServer
from sage_monitor.settings import MonitorSettings

log = logging.getLogger("sage.monitor")

__all__ = ["SESSION", "MonitorSession", "announce"]


class MonitorSession:
    """The hub and server that the ``sage_job_started`` / ``sage_job_finished`` hooks feed.

    The session's lock guards only its own fields; hub methods are called outside it (a poll of the
    hub may itself end up in :meth:`job_finished`, so holding both would invite a deadlock).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hub: MonitorHub | None = None
        self.server: MonitorServer | None = None
        self._owned = False
        self._watch_all = False
        self._running: set[int] = set()

    def job_started(self, job: Any) -> None:
        """Watch ``job`` if its config enables the monitor (or a monitor command is attached)."""
        settings: MonitorSettings = job.config.section("monitor")
        with self._lock:
            if not (self._watch_all or settings.enabled):
                return
            if self.hub is None:
                hub = MonitorHub()
                self.hub, self.server, self._owned = hub, _start_server(hub, settings), True
            self._running.add(id(job))
            hub, server = self.hub, self.server
        hub.watch(job)
        if server is not None:
            announce(f"SAGE monitor: job {job.name!r} at {server.url} (Prometheus: {server.url}metrics)")

    def job_finished(self, job: Any, summary: dict[str, Any]) -> None:
        """Freeze ``job``'s final figures; stop the server this session started once no job runs."""
        with self._lock:
            hub, server = self.hub, self.server
            if hub is None or id(job) not in self._running:
                return
            self._running.discard(id(job))
            release = self._owned and not self._running
            if release:
                self.hub, self.server, self._owned = None, None, False
        hub.finish(job, summary)
        if release and server is not None:
            server.stop()

    def close(self) -> None:
        """Stop a server this session started (an attached command's server is the command's)."""
        with self._lock:
            server = self.server if self._owned else None
            if self._owned:
                self.hub, self.server, self._owned = None, None, False
                self._running.clear()
        if server is not None:
            server.stop()

    @contextmanager
    def attached(self, hub: MonitorHub, server: MonitorServer | None = None) -> Iterator[MonitorHub]:
        """Route every job started inside the block to ``hub`` (monitored or not)."""
        with self._lock:
            saved = (self.hub, self.server, self._owned, self._watch_all, self._running)
            self.hub, self.server, self._owned, self._watch_all, self._running = hub, server, False, True, set()
        try:
            yield hub
        finally:
            with self._lock:
                self.hub, self.server, self._owned, self._watch_all, self._running = saved


SESSION = MonitorSession()
"""The process's session, fed by the plugin's lifecycle hooks."""


def announce(message: str) -> None:
    """Log ``message`` at INFO, or print it to stderr when logging is not configured to show it."""
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def _start_server(hub: MonitorHub, settings: MonitorSettings) -> MonitorServer:
    try:
        server = MonitorServer(hub, settings.host, settings.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or settings.port == 0:
            raise
        log.info("port %s is in use; the monitor takes a free port instead (set monitor.port)", settings.port)
        server = MonitorServer(hub, settings.host, 0)
    return server.start()
