"""The ``sage monitor`` and ``sage top`` commands (added to the CLI through ``sage_register_commands``)."""

from __future__ import annotations

import functools
import runpy
import sys
import threading
from typing import Any, Callable

import click
from rich.console import Console

from sage_monitor.hub import MonitorHub
from sage_monitor.server import MonitorServer
from sage_monitor.session import SESSION
from sage_monitor.settings import DEFAULT_PORT
from sage_monitor.top import TopDisplay, fetch, render

__all__ = ["monitor", "top"]


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it to the network)."
)
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="0: any free port."
)
@click.option(
    "--linger",
    type=click.FloatRange(min=0),
    default=None,
    help="After the pipeline ends, keep its final figures up this many seconds (default: until Ctrl-C).",
)
@click.option(
    "--duration", type=click.FloatRange(min=0), default=None, help="Without PATH: run the demo job this many seconds."
)
def monitor(path: str | None, host: str, port: int, linger: float | None, duration: float | None) -> None:
    """Run a pipeline file with the live dashboard: graph, throughput, services, GPUs.

    Every job the file submits is watched, whatever its ``monitor:`` config says. Without PATH a built-in demo job
    (an unbounded source, an embedding service, a vector search) runs until Ctrl-C or --duration.
    The dashboard is at http://HOST:PORT/, Prometheus figures at /metrics, JSON at /api/metrics.
    """
    hub = MonitorHub()
    try:
        server = MonitorServer(hub, host, port).start()
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        click.echo(f"SAGE monitor at {server.url} (Prometheus: {server.url}metrics); Ctrl-C to stop", err=True)
        with SESSION.attached(hub, server):
            if path is None:
                from sage_monitor.demo import run_demo

                run_demo(duration_s=duration)
            else:
                _run_file(path)
        click.echo(f"pipeline ended; final figures stay at {server.url}", err=True)
        _wait(linger)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.stop()


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--url", default=None, help=f"A running dashboard to read (default without PATH: http://127.0.0.1:{DEFAULT_PORT}/)."
)
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between redraws."
)
@click.option(
    "--once", is_flag=True, help="Print one frame and exit (with PATH: the final figures once the pipeline ends)."
)
def top(path: str | None, url: str | None, interval: float, once: bool) -> None:
    """Live terminal view of a pipeline: operators, queues, services, GPUs.

    With PATH the pipeline file runs here and every job it submits is shown; with --url the figures
    come from a running dashboard's /api/metrics.
    """
    if path is not None and url is not None:
        raise click.UsageError("give a pipeline file or --url, not both")
    console = Console()
    if path is None:
        address = url or f"http://127.0.0.1:{DEFAULT_PORT}/"
        read: Callable[[], dict[str, Any]] = functools.partial(fetch, address)
        if once:
            try:
                console.print(render(read()))
            except ConnectionError as exc:
                raise click.ClickException(str(exc)) from exc
            return
        _watch(TopDisplay(read, interval, console), threading.Event().wait)
        return
    hub = MonitorHub()
    with SESSION.attached(hub):
        if once:
            _run_file(path)
            console.print(render(hub.snapshot(max_age_s=0)))
        else:
            _watch(TopDisplay(lambda: hub.snapshot(max_age_s=0), interval, console), lambda: _run_file(path))


def _watch(display: TopDisplay, block: Callable[[], Any]) -> None:
    display.start()
    try:
        block()
    except KeyboardInterrupt:
        pass
    finally:
        display.stop()


def _run_file(path: str) -> None:
    saved = sys.argv
    sys.argv = [path]
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = saved


def _wait(seconds: float | None) -> None:
    threading.Event().wait(seconds)
