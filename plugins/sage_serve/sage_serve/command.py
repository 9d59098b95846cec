"""``sage serve FILE.py``: a pipeline file behind the OpenAI API (added through ``sage_register_commands``)."""

from __future__ import annotations

import logging
import sys

import click

from sage_core.errors import ConfigError

__all__ = ["serve"]


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it to the network).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--api-key", envvar="SAGE_API_KEY", default=None, help="Require 'Authorization: Bearer KEY' on /v1 (env SAGE_API_KEY).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a request may take before it gets 504 (default: each endpoint's timeout_s).")
@click.option("--drain-timeout", "drain_s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to finish requests in flight before cancelling the rest.")
@click.option("--monitor", is_flag=True, help="Also serve sage-monitor's dashboard and Prometheus /metrics for the job (when installed).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning", show_default=True)
def serve(path: str, host: str, port: int, api_key: str | None, timeout_s: float | None, drain_s: float, monitor: bool, log_level: str) -> None:
    """Serve the pipelines of FILE.py over HTTP, OpenAI-compatible.

    FILE.py builds an environment with a ChatEndpoint per model (sage_core.serving) and calls
    env.submit(). Routes: /v1/models, /v1/chat/completions (stream or not), /v1/embeddings (the
    environment's embedding services), /healthz, /readyz. SIGTERM drains and exits 0.
    """
    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from sage_serve.app import create_app
    from sage_serve.loader import NotServable, load_served
    from sage_serve.served import ServedEnvironment
    from sage_serve.server import bind
    from sage_serve.server import serve as run_server

    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        env, plan = load_served(path)
    except NotServable as exc:
        sock.close()
        raise click.ClickException(str(exc)) from None
    if monitor:
        try:
            env.config.section("monitor").enabled = True
        except ConfigError as exc:
            sock.close()
            raise click.ClickException(f"--monitor needs sage-monitor installed: {exc}") from None
    served = ServedEnvironment(env, plan, drain_s=drain_s, timeout_s=timeout_s)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    announce = f"sage serve: listening on http://{shown}:{bound_port} (models: {', '.join(n for n, _ in served.models())})"
    try:
        run_server(served, create_app(served, api_key), sock, log_level=log_level, drain_s=drain_s, announce=announce)
    finally:
        served.close()
    if served.state == "failed":
        sys.exit(1)
    click.echo("sage serve: stopped", err=True)
