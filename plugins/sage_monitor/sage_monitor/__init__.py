"""SAGE monitor: GPU and pipeline metrics, a Prometheus endpoint, a live web dashboard, ``sage top``.

A config with ``monitor: {enabled: true}`` (``LocalEnvironment(name, config={"monitor": {"enabled":
True}})``) serves the dashboard while that environment's jobs run; ``sage monitor FILE.py`` runs a
pipeline file with it, watching every job; ``sage top`` shows the same figures in the terminal. Names load lazily so that
``import sage_monitor.gpu`` needs nothing but ``pynvml``.
"""

from __future__ import annotations

from sage_core.plugin import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "GpuCollector": "sage_monitor.gpu",
    "PipelineCollector": "sage_monitor.pipeline",
    "MonitorHub": "sage_monitor.hub",
    "MonitorServer": "sage_monitor.server",
    "MonitorSession": "sage_monitor.session",
    "MonitorSettings": "sage_monitor.settings",
    "SESSION": "sage_monitor.session",
    "SnapshotCollector": "sage_monitor.prometheus",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ += ["__version__"]
