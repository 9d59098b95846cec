"""The ``monitor`` plugin's hooks: its config section, the GPU collector, the CLI commands, the job lifecycle.

Registered through the ``sage`` entry point group (``monitor = "sage_monitor.plugin"``). The job hooks
run once per job, never per record: figures are read only when the dashboard, ``/metrics`` or
``sage top`` asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sage_core.plugin import hookimpl

from sage_monitor.gpu import GpuCollector
from sage_monitor.settings import MonitorSettings

if TYPE_CHECKING:
    import click

GPU_COLLECTOR = GpuCollector()
"""The process's GPU collector (NVML is initialised on its first ``collect()``)."""


@hookimpl
def sage_config_sections(register: Callable[[str, type[MonitorSettings]], None]) -> None:
    """Offer the ``monitor:`` config section (``enabled``, ``host``, ``port``)."""
    register("monitor", MonitorSettings)


@hookimpl
def sage_metrics_collectors(register: Callable[[Any], None]) -> None:
    """Offer the GPU collector."""
    register(GPU_COLLECTOR)


@hookimpl
def sage_register_commands(cli: "click.Group") -> None:
    """Add ``sage monitor`` and ``sage top``."""
    from sage_monitor.commands import monitor, top

    cli.add_command(monitor)
    cli.add_command(top)


@hookimpl
def sage_job_started(job: Any) -> None:
    """Serve the dashboard for a job whose config says ``monitor: {enabled: true}`` (any job under ``sage monitor``)."""
    from sage_monitor.session import SESSION

    SESSION.job_started(job)


@hookimpl
def sage_job_finished(job: Any, summary: dict[str, Any]) -> None:
    """Keep the job's final figures; stop the dashboard when no monitored job runs any more."""
    from sage_monitor.session import SESSION

    SESSION.job_finished(job, summary)
