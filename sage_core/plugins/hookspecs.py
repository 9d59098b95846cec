"""Every hook a SAGE plugin can implement.

Plugins are found through the ``sage`` entry point group and implement these hooks with
``@sage_core.plugin.hookimpl``. Registration hooks receive a ``register`` callback (one call per offered
item); the core records which plugin offered what and rejects a duplicate name, naming both plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from sage_core.plugins.specs import BackendSpec, ServiceKind

hookspec = pluggy.HookspecMarker("sage")
hookimpl = pluggy.HookimplMarker("sage")

# --------------------------------------------------------------------------- services


@hookspec
def sage_services(register: Callable[["ServiceKind"], None]) -> None:
    """Offer service kinds (a contract such as ``vdb`` or ``memory``).

    Called once when plugins load. Call ``register(ServiceKind(...))`` for each kind the plugin
    defines; backends of that kind are then offered through :func:`sage_backends`.
    """


@hookspec
def sage_backends(register: Callable[["BackendSpec"], None]) -> None:
    """Offer service backends.

    Called once when plugins load. Call ``register(BackendSpec(kind=..., name=..., factory=...))``
    for each backend; a config entry ``{kind: vdb, backend: faiss}`` then picks it by name.
    """


# --------------------------------------------------------------------------- observability


@hookspec
def sage_metrics_collectors(register: Callable[[Any], None]) -> None:
    """Offer metrics collectors.

    Called once when plugins load. Call ``register(collector)`` with an object that has a
    ``name`` attribute and a ``collect() -> dict`` method; monitors poll every registered collector.
    """


# --------------------------------------------------------------------------- configuration


@hookspec
def sage_config_sections(register: Callable[[str, type["BaseModel"]], None]) -> None:
    """Offer top-level sections of the SAGE config, each validated by the plugin's pydantic model.

    Called once when plugins load. ``register("monitor", MonitorSettings)`` lets a config hold
    ``monitor: {enabled: true}``; :func:`sage_core.load_config` validates it with the model (errors
    name the key path), and the plugin reads it back as ``job.config.section("monitor")`` (the
    model's defaults when the config omits the section). ``job`` and ``services`` are the core's.
    Name the section after the plugin's entry point: a config naming the section of a plugin that is
    installed but not loaded (or broken) is then told so.
    """


# --------------------------------------------------------------------------- command line


@hookspec
def sage_register_commands(cli: "click.Group") -> None:
    """Add sub-commands to the ``sage`` command line.

    Called once when the CLI is built, with the root ``click.Group``; use ``@cli.command()``.
    """


# --------------------------------------------------------------------------- job lifecycle


@hookspec
def sage_job_started(job: Any) -> None:
    """A job has started.

    Called after its services are up and its tasks are running, with the job handle (``job.name``,
    ``job.graph`` the physical graph, ``job.metrics()``). Return value ignored.
    """


@hookspec
def sage_job_finished(job: Any, summary: dict[str, Any]) -> None:
    """A job has ended: finished, stopped, cancelled or failed.

    Called once with the job handle and its summary (``job.summary()``: status, per-operator
    in/out/filtered/failed/cancelled counts, timings). Return value ignored.
    """
