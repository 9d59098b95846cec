"""The SAGE configuration file: a ``services:`` mapping, a ``job:`` section, and plugins' sections.

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
    monitor:                  # a plugin's section (hook sage_config_sections), validated by its model
      enabled: true

:func:`load_config` reads a YAML file or a dict. Every error names the key path and the valid
choices (for ``kind``/``backend``, the ones installed; for a top-level key, the core's sections and
those that installed plugins offer), as a :class:`sage_core.ConfigError`. A plugin reads its own
section with :meth:`SageConfig.section`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from sage_core.errors import ConfigError
from sage_core.plugins.manager import CORE_SECTIONS, ConfigSection, PluginManager, get_plugin_manager
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


class SageConfig(BaseModel):
    """A whole configuration: services by name, the job section, and the sections plugins offer."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    job: JobConfig = Field(default_factory=JobConfig)
    _sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    def section(self, name: str) -> BaseModel:
        """The plugin section ``name`` as its plugin's model: validated from the config, else the model's defaults.

        The same object on every call, so ``env.config.section("monitor").enabled = True`` sticks.
        A name no loaded plugin offers is a :class:`ConfigError` listing the sections there are.
        """
        if name not in self._sections:
            self._sections[name] = _offered(name, get_plugin_manager()).model()
        return self._sections[name]


def load_config(
    source: str | Path | Mapping[str, Any] | SageConfig | None, *, plugin_manager: PluginManager | None = None
) -> SageConfig:
    """A validated :class:`SageConfig` from a YAML file path, a dict, or ``None`` (all defaults)."""
    if isinstance(source, SageConfig):
        return source
    plugins = plugin_manager or get_plugin_manager()
    if source is None:
        data: Any = {}
    elif isinstance(source, (str, Path)):
        data = _read_yaml(Path(source))
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        msg = f"config must be a YAML file path, a dict or None, got {type(source).__name__}"
        raise ConfigError(msg)
    sections = {name: _section(name, data.pop(name), plugins) for name in list(data) if name not in CORE_SECTIONS}
    try:
        config = SageConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, SageConfig)) from None
    for name, service in config.services.items():
        check_service(f"services.{name}", service, plugins)
    config._sections.update(sections)
    return config


def _section(name: str, value: Any, plugins: PluginManager) -> BaseModel:
    """The plugin section ``name`` validated by the model its plugin registered."""
    model = _offered(name, plugins).model
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, model, prefix=name)) from None


def _offered(name: str, plugins: PluginManager) -> ConfigSection:
    """The section ``name`` some loaded plugin offers; else a :class:`ConfigError` saying why there is none."""
    offered = plugins.config_sections()
    if name in offered:
        return offered[name]
    valid = ", ".join([*CORE_SECTIONS, *(f"{s} (from plugin {offered[s].plugin})" for s in sorted(offered))])
    reason = plugins.why_not_loaded(name)
    if reason is not None:
        raise ConfigError(f"{name}: no loaded plugin offers this config section; {reason}; valid keys: {valid}")
    close = difflib.get_close_matches(name, [*CORE_SECTIONS, *offered], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{name}: unknown key{hint}; valid keys: {valid}; a plugin's section needs that plugin installed")


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
