"""The ``sage`` command line: run and inspect pipelines, list plugins. Plugins add commands."""

from __future__ import annotations

import json
import runpy
import signal
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sage_core.api.capture import GraphCaptured, capture_submit
from sage_core.plugins.manager import get_plugin_manager


@click.group()
@click.version_option(package_name="sage-core")
def cli() -> None:
    """SAGE: dataflow pipelines for LLM and RAG, with GPU services."""


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def run(path: str) -> None:
    """Run a pipeline file (a Python script that builds and submits a pipeline).

    Ctrl-C stops the running job (drain for a few seconds, then cancel; a second Ctrl-C cancels at
    once) and exits with status 130; SIGTERM does the same and exits with 143. No traceback.
    """
    from sage_core.api.environment import interrupt_all_environments
    from sage_core.runtime.signals import Terminated, terminate_as_interrupt

    sys.argv = [path]
    try:
        with terminate_as_interrupt():
            runpy.run_path(path, run_name="__main__")
    except KeyboardInterrupt as interrupt:
        signum = Terminated.signum if isinstance(interrupt, Terminated) else signal.SIGINT
        try:
            interrupt_all_environments()
        except KeyboardInterrupt:  # Ctrl-C again: cancel what is left
            interrupt_all_environments(cancel=True)
        sys.exit(128 + signum)


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]), default="text", show_default=True)
def graph(path: str, fmt: str) -> None:
    """Print the physical graph of a pipeline file without running it."""
    sys.argv = [path]
    try:
        with capture_submit():
            runpy.run_path(path, run_name="__main__")
    except GraphCaptured as captured:
        physical = captured.env.compile()  # type: ignore[attr-defined]
    else:
        raise click.ClickException(f"{path} never called env.submit(): nothing to show")
    if fmt == "dot":
        click.echo(physical.to_dot())
    elif fmt == "mermaid":
        click.echo(physical.to_mermaid())
    else:
        for chain in physical.chains.values():
            click.echo(f"task {' -> '.join(chain.operators)}  x{chain.parallelism}")
        for channel in physical.channels:
            click.echo(f"channel {channel.source} => {channel.target}  [{channel.partitioning.value}]")


def plugins_listing(manager: Any) -> dict[str, list[dict[str, Any]]]:
    """What ``sage plugins --json`` prints: the plugins, the service kinds and the backends with their option schemas."""
    return {
        "plugins": [
            {"name": i.name, "version": i.version, "builtin": i.builtin, "hooks": i.hooks, "error": i.error}
            for i in manager.plugins()
        ],
        "kinds": [
            {
                "name": kind.name,
                "contract": f"{kind.contract.__module__}.{kind.contract.__qualname__}",
                "description": kind.description,
                "write_methods": list(kind.write_methods),
                "sharded_methods": sorted(kind.sharding),
            }
            for kind in sorted(manager.kinds().values(), key=lambda k: k.name)
        ],
        "backends": [
            {
                "kind": b.kind,
                "name": b.name,
                "devices": list(b.devices),
                "plugin": b.plugin,
                "description": b.description,
                "options": _options_schema(b.options),
            }
            for b in sorted(manager.backends(), key=lambda b: (b.kind, b.name))
        ],
    }


def _options_schema(model: Any) -> dict[str, Any] | None:
    """A backend's options as JSON schema; ``None`` when undeclared, ``{"error": ...}`` when it has none."""
    if model is None:
        return None
    try:
        return model.model_json_schema()
    except Exception as exc:  # a plugin's model with a type JSON schema cannot express
        return {"error": f"{type(exc).__name__}: {exc}"}


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def plugins(as_json: bool) -> None:
    """List plugins (name, version, hooks, the error of any broken one), service kinds and backends."""
    manager = get_plugin_manager()
    infos = manager.plugins()
    if as_json:
        click.echo(json.dumps(plugins_listing(manager), indent=2))
        return
    table = Table(title="SAGE plugins")
    for column in ("name", "version", "hooks", "status"):
        table.add_column(column)
    for info in infos:
        status = f"[red]{info.error}[/red]" if info.error else "[green]ok[/green]"
        table.add_row(info.name, info.version, ", ".join(info.hooks), status)
    Console().print(table)
    backends = Table(title="Service backends (options: sage plugins --json has their schemas)")
    for column in ("kind", "backend", "devices", "plugin", "options"):
        backends.add_column(column)
    for spec in sorted(manager.backends(), key=lambda b: (b.kind, b.name)):
        options = ", ".join(spec.options.model_fields) if spec.options is not None else "-"
        backends.add_row(spec.kind, spec.name, ", ".join(spec.devices), spec.plugin, options)
    Console().print(backends)


def build_cli() -> click.Group:
    """The root group with every plugin's commands added."""
    get_plugin_manager().pm.hook.sage_register_commands(cli=cli)
    return cli


def main() -> None:
    """Console entry point."""
    build_cli()()
