"""Validated service options: one :class:`ServiceConfig` per entry of the ``services:`` mapping.

Validation runs in two steps, both reporting the exact key path and the valid choices:

1. structure (pydantic): types, ranges, unknown keys
   (``services.vdb.batch.max_sise: unknown key; valid keys: enabled, max_in_flight, max_size, max_wait_ms``);
2. against the installed plugins (:func:`check_service`): ``kind``, ``backend``, each fallback's
   backend, the ``options`` of each (by the backend's options model, or its factory's parameters:
   :mod:`~sage_core.services.backend_options`), and whether the kind can be sharded.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sage_core.plugins.manager import PluginManager
from sage_core.errors import ConfigError
from sage_core.services.backend_options import tier_options
from sage_core.services.devices import check_device
from sage_core.services.key_paths import describe_errors



class BatchConfig(BaseModel):
    """Overrides the sizes a backend's ``@batchable`` methods declare; ``batch: false`` disables batching."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_size: int = Field(256, ge=1)
    max_wait_ms: float = Field(2.0, ge=0)
    max_in_flight: int | None = Field(None, ge=1)
    """Stacked calls of one replica in flight at once; ``None`` keeps what the method declares."""


class ResourcesConfig(BaseModel):
    """What each replica reserves on Ray (``RemoteEnvironment``); the local runtime ignores it.

    ``num_cpus`` / ``num_gpus`` (fractions allowed) and ``custom`` resources by name, for example
    ``{num_gpus: 1, custom: {node_a: 1}}``. Unset means nothing reserved (the actor still runs).
    """

    model_config = ConfigDict(extra="forbid")

    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    custom: dict[str, float] = Field(default_factory=dict)


class RestartConfig(BaseModel):
    """How a replica with ``isolation: process`` is restarted when its process dies (Ray restarts its own actors).

    A dead replica is restarted after ``backoff_s``, doubling per death in a row up to ``max_backoff_s``.
    One dying again after ``max_restarts`` restarts in a row (no call served in between) stays failed,
    and its calls go to the fallback. ``max_restarts: 0`` never restarts.
    """

    model_config = ConfigDict(extra="forbid")

    max_restarts: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(10.0, ge=0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1 for the first) of a run of deaths."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


class BackendChoice(BaseModel):
    """What a service and each of its fallbacks share: which backend, where, how many copies."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    backend: str | None = None
    factory: Callable[..., Any] | None = None
    device: str = "auto"
    replicas: int = Field(1, ge=1)
    isolation: Literal["thread", "process"] = "thread"
    """``process``: each replica in its own child process (its own interpreter lock); Ray ignores it."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """On Ray, what each replica reserves (a fallback does not inherit the primary's)."""

    @field_validator("factory", mode="before")
    @classmethod
    def _import_factory(cls, value: Any) -> Any:
        return _import(value)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        return _device(value)


class FallbackConfig(BackendChoice):
    """One entry of a ``fallback:`` chain: a backend name (same kind) or a factory.

    ``options`` given: this backend's own, validated by its options model. Omitted: the options the
    primary was given, as validated, restricted to the keys this backend takes (its model's fields,
    or its factory's keyword parameters); the keys it does not take are dropped, and a warning of
    logger ``sage.services`` names them and the backend when the service is registered.
    ``options: {}`` inherits nothing.
    """

    options: dict[str, Any] | None = None


class ServiceConfig(BackendChoice):
    """How one service runs: which backend, where, how many copies, and what happens on failure.

    * ``kind`` + ``backend`` pick a registered backend (``factory(device=..., **options)``), or
      ``factory`` gives any callable or class (``"package.module:Name"`` in YAML);
    * ``device``: ``auto`` (GPU when the backend supports one and one is present), ``cpu``, ``cuda[:N]``;
    * ``replicas``: copies sharing the load (least in-flight first; writes reach every copy);
    * ``isolation``: ``thread`` (replicas in this process) or ``process`` (each replica in a child
      process: for backends whose Python work per call would saturate one interpreter, such as
      several vLLM engines' front-ends; calls and results are pickled through a pipe);
    * ``shards``: the data split as the kind's ``sharding`` rules say (``vdb`` and ``kv`` by a stable hash of ids and keys);
    * ``options``: the backend's options, validated by its options model (``sage plugins --json``
      shows each backend's schema); the factory receives the validated values;
    * ``fallback``: backends tried in order when the one before raises, times out, failed to start
      (whatever its creation raised), or has ``max_queue_depth`` calls in flight on every replica;
      each gets its own ``options`` or inherits the primary's that it takes (:class:`FallbackConfig`);
    * ``batch``: overrides ``@batchable`` sizes (``false`` turns batching off);
    * ``timeout_s``: how long one backend may take before the call moves on (``None``: no limit);
    * ``workers``: threads per replica for sync methods (concurrent calls served concurrently);
    * ``restart``: how a dead ``isolation: process`` replica is restarted (:class:`RestartConfig`);
    * ``resources``: on Ray, what each replica actor reserves (``num_cpus``, ``num_gpus``, ``custom``).

    ``kind`` also matters for a factory: its ``write_methods`` are the calls mirrored to every
    replica and fallback, and it enables ``shards``. Without a kind every method is a read.
    """

    kind: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    shards: int = Field(1, ge=1)
    fallback: list[FallbackConfig] = Field(default_factory=list)
    batch: BatchConfig | None = None
    timeout_s: float | None = Field(300.0, gt=0)
    workers: int = Field(4, ge=1)
    max_queue_depth: int | None = Field(None, ge=1)
    restart: RestartConfig = Field(default_factory=RestartConfig)

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_flag(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return {"enabled": False}
        return value

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_entries(cls, value: Any) -> Any:
        if isinstance(value, (str, dict)) or callable(value):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return value
        return [
            {"backend": v} if isinstance(v, str) else {"factory": v} if callable(v) and not isinstance(v, dict) else v
            for v in value
        ]


def parse_service(name: str, data: Any, plugins: PluginManager, prefix: str = "services") -> ServiceConfig:
    """Validate one service's options (structure, then installed plugins); :class:`ConfigError` on failure."""
    path = f"{prefix}.{name}"
    if isinstance(data, ServiceConfig):
        config = data
    else:
        try:
            config = ServiceConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc, ServiceConfig, path)) from None
    check_service(path, config, plugins)
    return config


def check_service(path: str, config: ServiceConfig, plugins: PluginManager) -> None:
    """Check ``config`` against the installed kinds and backends; errors name ``path.key``."""
    if config.factory is not None and config.backend is not None:
        msg = f"{path}: set either backend or factory, not both"
        raise ConfigError(msg)
    kinds = plugins.kinds()
    if config.kind is not None and config.kind not in kinds:
        msg = f"{path}.kind: unknown service kind {config.kind!r}; installed kinds: {', '.join(sorted(kinds))}"
        raise ConfigError(msg)
    if config.factory is None:
        if config.kind is None:
            msg = f"{path}: set kind and backend (installed kinds: {', '.join(sorted(kinds))}) or pass a factory"
            raise ConfigError(msg)
        if config.backend is None:
            valid = ", ".join(sorted(b.name for b in plugins.backends(config.kind))) or "none"
            msg = f"{path}.backend: required for kind {config.kind!r}; installed backends: {valid}"
            raise ConfigError(msg)
        _check_backend(f"{path}.backend", config.kind, config.backend, plugins)
    for position, entry in enumerate(config.fallback):
        where = f"{path}.fallback[{position}]"
        if (entry.backend is None) == (entry.factory is None):
            msg = f"{where}: give a backend name or a factory (exactly one)"
            raise ConfigError(msg)
        if entry.backend is not None:
            if config.kind is None:
                msg = f"{where}: a fallback backend needs the service's kind; set {path}.kind"
                raise ConfigError(msg)
            _check_backend(f"{where}.backend", config.kind, entry.backend, plugins)
    tier_options(path, config, plugins)
    for where, choice in [(path, config), *((f"{path}.fallback[{i}]", e) for i, e in enumerate(config.fallback))]:
        _check_isolation(where, choice)
    if config.shards > 1 and not (config.kind in kinds and kinds[config.kind].sharding):
        shardable = sorted(name for name, kind in kinds.items() if kind.sharding)
        msg = (
            f"{path}.shards: kind {config.kind!r} cannot be sharded; shardable kinds: "
            f"{', '.join(shardable)} (use replicas to share load instead)"
        )
        raise ConfigError(msg)


# ---------------------------------------------------------------------- helpers


def _check_backend(path: str, kind: str, backend: str, plugins: PluginManager) -> None:
    try:
        plugins.backend(kind, backend)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_isolation(path: str, choice: BackendChoice) -> None:
    """A replica in its own process gets its factory by pickling: refuse one that does not pickle, now."""
    if choice.isolation != "process" or choice.factory is None:
        return
    try:
        pickle.dumps(choice.factory)
    except Exception as exc:
        msg = (
            f"{path}.factory: isolation: process needs a factory that pickles (a module-level function or class, "
            f"or kind + backend; not a lambda or closure): {type(exc).__name__}: {exc}; or set {path}.isolation: thread"
        )
        raise ConfigError(msg) from None


def _device(value: str) -> str:
    return check_device(value)


def _import(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    module_name, _, attr = value.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        msg = f"cannot import factory {value!r} ({exc}); write it as 'package.module:Name'"
        raise ValueError(msg) from exc


__all__ = [
    "BackendChoice",
    "BatchConfig",
    "FallbackConfig",
    "ResourcesConfig",
    "RestartConfig",
    "ServiceConfig",
    "check_service",
    "describe_errors",
    "parse_service",
]
