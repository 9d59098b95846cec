"""The SAGE configuration file: a ``services:`` mapping and a ``job:`` section.

::

    services:
      vdb:
        kind: vdb
        backend: faiss
        options: {dim: 384, metric: cosine}
        device: auto
        replicas: 2
        fallback: [numpy]
        batch: {max_size: 256, max_wait_ms: 2}
        timeout_s: 30
    job:
      error_policy: skip      # fail | skip | dead_letter
      queue_size: 64          # batches buffered per channel
      batch_size: 256         # records per transported batch

:func:`load_config` reads a YAML file or a dict. Every error names the key path and the valid
choices (for ``kind``/``backend``, the ones installed), as a :class:`sage_core.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sage_core.errors import ConfigError
from sage_core.plugins.manager import PluginManager, get_plugin_manager
from sage_core.services.config import ServiceConfig, check_service, describe_errors


class JobConfig(BaseModel):
    """How a job runs: what a failing record does, and how records travel between tasks."""

    model_config = ConfigDict(extra="forbid")

    error_policy: Literal["fail", "skip", "dead_letter"] = "fail"
    queue_size: int = Field(64, ge=1)
    """Batches buffered per channel (backpressure beyond that)."""
    batch_size: int = Field(256, ge=1)
    """Records per transported batch."""
    max_dead_letters: int = Field(10_000, ge=0)
    """Dead letters kept in memory for ``job.dead_letters()`` (the newest; the dead-letter sink sees every one)."""
    monitor: bool = False


class SageConfig(BaseModel):
    """A whole configuration: services by name and the job section."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    job: JobConfig = Field(default_factory=JobConfig)


def load_config(
    source: str | Path | Mapping[str, Any] | SageConfig | None, *, plugin_manager: PluginManager | None = None
) -> SageConfig:
    """A validated :class:`SageConfig` from a YAML file path, a dict, or ``None`` (all defaults)."""
    if isinstance(source, SageConfig):
        return source
    if source is None:
        data: Any = {}
    elif isinstance(source, (str, Path)):
        data = _read_yaml(Path(source))
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        msg = f"config must be a YAML file path, a dict or None, got {type(source).__name__}"
        raise ConfigError(msg)
    try:
        config = SageConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, SageConfig)) from None
    plugins = plugin_manager or get_plugin_manager()
    for name, service in config.services.items():
        check_service(f"services.{name}", service, plugins)
    return config


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        msg = f"config file {str(path)!r} does not exist; pass a YAML file path or a dict"
        raise ConfigError(msg)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        msg = f"config file {str(path)!r} is not valid YAML: {exc}"
        raise ConfigError(msg) from None
    if not isinstance(data, Mapping):
        msg = f"config file {str(path)!r} must hold a mapping with services: and/or job:, got {type(data).__name__}"
        raise ConfigError(msg)
    return data


__all__ = ["JobConfig", "SageConfig", "load_config"]
