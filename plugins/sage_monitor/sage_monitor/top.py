"""``sage top``: the dashboard's figures as rich tables in the terminal.

:func:`render` turns one snapshot (the JSON of ``/api/metrics``) into tables: per job its operators
(records, cancelled, throughput, latency, errors), task queues and services (with start failures and
restarts), then the GPUs. :class:`TopDisplay`
redraws a ``rich.live.Live`` from a thread named ``sage-monitor-top`` while a pipeline file runs in
the main thread; :func:`fetch` reads a running dashboard.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["TopDisplay", "fetch", "metrics_url", "render"]


def render(snapshot: dict[str, Any]) -> RenderableType:
    """Tables for every job in ``snapshot`` and for its GPUs."""
    parts: list[RenderableType] = []
    jobs = snapshot.get("jobs") or []
    if not jobs:
        parts.append(Text("no job is being watched yet", style="dim"))
    for job in jobs:
        parts.extend(_job_tables(job))
    parts.append(_gpu_table((snapshot.get("collectors") or {}).get("gpu") or {}))
    return Group(*parts)


def metrics_url(url: str) -> str:
    """The ``/api/metrics`` address of a dashboard URL (accepts either form)."""
    url = url.rstrip("/")
    return url if url.endswith("/api/metrics") else f"{url}/api/metrics"


def fetch(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Read a running dashboard's snapshot; the error says which address failed and what to do."""
    address = metrics_url(url)
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response:
            return dict(json.load(response))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        msg = (
            f"cannot read {address}: {exc}; is a dashboard running there "
            "(sage monitor, or a job whose config says monitor: {enabled: true})?"
        )
        raise ConnectionError(msg) from exc


class TopDisplay:
    """Redraws ``render(read())`` every ``interval`` seconds on its own thread until :meth:`stop`."""

    def __init__(
        self, read: Callable[[], dict[str, Any]], interval: float = 1.0, console: Console | None = None
    ) -> None:
        self.read = read
        self.interval = interval
        self.console = console or Console()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sage-monitor-top", daemon=True)
        self._live = Live(console=self.console, auto_refresh=False, transient=False)

    def start(self) -> "TopDisplay":
        """Begin redrawing."""
        self._live.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Draw once more (the final figures), then stop the thread and the live display."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._draw()
        self._live.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        try:
            view = render(self.read())
        except ConnectionError as exc:
            view = Text(str(exc), style="red")
        self._live.update(view, refresh=True)


# --------------------------------------------------------------------------- tables


STATUS_STYLES = {
    "running": "green",
    "finishing": "cyan",
    "finished": "blue",
    "stopped": "blue",
    "cancelled": "yellow",
    "failed": "red",
}
"""The colour of each job status in a table's title."""


def _job_tables(job: dict[str, Any]) -> list[RenderableType]:
    status = str(job.get("status"))
    title = Text.assemble(
        f"job {job.get('job')}  [",
        (status, STATUS_STYLES.get(status, "")),
        f"]  {_num(job.get('elapsed_s'), 1)} s",
        style="bold",
    )
    ops = Table(title=title, title_justify="left", expand=False)
    columns = ("operator", "kind", "×", "in", "out", "filtered", "failed", "cancelled", "rec/s")
    for column in (*columns, "mean ms", "p50 ms", "p95 ms", "p99 ms"):
        ops.add_column(column, justify="left" if column in ("operator", "kind") else "right")
    for op_id, op in (job.get("operators") or {}).items():
        latency = op.get("latency_ms") or {}
        ops.add_row(
            Text(op_id),
            Text(str(op.get("kind", ""))),
            str(op.get("parallelism", 1)),
            _int(op.get("in")),
            _int(op.get("out")),
            _int(op.get("filtered")),
            Text(_int(op.get("failed")), style="red" if op.get("failed") else ""),
            Text(_int(op.get("cancelled")), style="yellow" if op.get("cancelled") else ""),
            _num(op.get("throughput"), 0),
            _num(latency.get("mean"), 3),
            _num(latency.get("p50"), 3),
            _num(latency.get("p95"), 3),
            _num(latency.get("p99"), 3),
        )
    tables: list[RenderableType] = [ops]
    queues = job.get("queues") or {}
    if queues:
        tables.append(
            Text(
                "queues (batches waiting): " + ", ".join(f"{task} {depth}" for task, depth in queues.items()),
                style="dim",
            )
        )
    services = job.get("services") or {}
    if services:
        tables.append(_service_table(services))
        failures = _start_failures(services)
        if failures is not None:
            tables.append(failures)
    return tables


def _service_table(services: dict[str, Any]) -> Table:
    table = Table(title="services", title_justify="left")
    for column in (
        "service",
        "kind",
        "state",
        "calls",
        "calls/s",
        "errors",
        "fallbacks",
        "start failures",
        "restarts",
        "served by",
        "p50 ms",
        "p99 ms",
        "batch rows",
        "in flight",
    ):
        left = column in ("service", "kind", "state", "start failures", "served by", "batch rows")
        table.add_column(column, justify="left" if left else "right")
    for name, figures in services.items():
        if not isinstance(figures, dict):
            continue
        latency = figures.get("latency_ms") or {}
        batch = ", ".join(
            f"{method} {_num(stats.get('mean_rows'), 1)}/{_int(stats.get('max_rows'))}"
            for method, stats in (figures.get("batch") or {}).items()
        )
        served_by = ", ".join(f"{backend} {count}" for backend, count in (figures.get("served_by") or {}).items())
        failed_backends: dict[str, int] = {}
        for failure in figures.get("start_failures") or []:
            backend = str(failure.get("backend"))
            failed_backends[backend] = failed_backends.get(backend, 0) + 1
        start_failures = ", ".join(f"{backend} {count}" for backend, count in failed_backends.items())
        table.add_row(
            Text(name),
            Text(str(figures.get("kind") or "-")),
            Text(str(figures.get("state", ""))),
            _int(figures.get("calls")),
            _num(figures.get("calls_per_s"), 1),
            Text(_int(figures.get("errors")), style="red" if figures.get("errors") else ""),
            Text(_int(figures.get("fallback_calls")), style="yellow" if figures.get("fallback_calls") else ""),
            Text(start_failures or "-", style="yellow" if start_failures else ""),
            Text(_int(figures.get("restarts")), style="yellow" if figures.get("restarts") else ""),
            Text(served_by),
            _num(latency.get("p50"), 3),
            _num(latency.get("p99"), 3),
            Text(batch),
            _int(figures.get("in_flight")),
        )
    return table


def _start_failures(services: dict[str, Any]) -> Text | None:
    """One line per backend replica that failed to start: service, backend, replica and the reason."""
    lines = [
        f"  {name} · {failure.get('backend')} ({failure.get('replica')}): {failure.get('reason')}"
        for name, figures in services.items()
        if isinstance(figures, dict)
        for failure in figures.get("start_failures") or []
    ]
    if not lines:
        return None
    return Text("start failures (skipped for the next fallback):\n" + "\n".join(lines), style="yellow")


def _gpu_table(gpu: dict[str, Any]) -> RenderableType:
    if not gpu.get("available"):
        return Text(f"GPU: none ({gpu.get('reason') or gpu.get('error') or 'no GPU collector'})", style="dim")
    table = Table(title=Text(f"GPUs (driver {gpu.get('driver')})"), title_justify="left")
    for column in ("gpu", "name", "util %", "memory", "temp °C", "power W", "SM MHz", "processes"):
        table.add_column(column, justify="left" if column in ("name", "processes") else "right")
    for card in gpu.get("gpus", []):
        used, total = card.get("memory_used_bytes"), card.get("memory_total_bytes")
        memory = "-" if used is None or total is None else f"{used / 2**30:.1f} / {total / 2**30:.1f} GiB"
        processes = ", ".join(
            f"{p.get('name')}[{p.get('pid')}] {_mib(p.get('memory_used_bytes'))}" for p in card.get("processes", [])
        )
        table.add_row(
            str(card.get("index")),
            Text(str(card.get("name") or "")),
            _int(card.get("utilization_gpu_pct")),
            memory,
            _int(card.get("temperature_c")),
            _num(card.get("power_w"), 0),
            _int(card.get("sm_clock_mhz")),
            Text(processes),
        )
    return table


def _int(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def _num(value: Any, digits: int) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"


def _mib(value: Any) -> str:
    return "?" if value is None else f"{value / 2**20:.0f} MiB"
