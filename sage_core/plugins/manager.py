"""Loads plugins once, in one place: built-in defaults and the ``sage`` entry point group alike.

A plugin that fails to import, raises in a registration hook, or implements an unknown hook is
recorded with its name and error; the core still starts. ``SAGE_LOAD_PLUGINS=a,b`` loads only the
named entry-point plugins (empty: none); built-in plugins always load.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy
from pydantic import BaseModel

from sage_core.errors import ConfigError
from sage_core.plugins import hookspecs
from sage_core.plugins.specs import BackendSpec, ServiceKind

DEFAULT_PLUGINS: tuple[str, ...] = (
    "sage_core.builtin.kinds",
    "sage_core.builtin.numpy_vdb",
    "sage_core.builtin.kv_stores",
    "sage_core.builtin.graph_store",
    "sage_core.builtin.hashing_embedder",
)


@dataclass
class PluginInfo:
    """One plugin as ``sage plugins`` shows it."""

    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ConfigSection:
    """A top-level config section a plugin offers: its name, its pydantic model, and the plugin."""

    name: str
    model: type[BaseModel]
    plugin: str


CORE_SECTIONS: tuple[str, ...] = ("job", "services")
"""Top-level config sections of the core; no plugin may register these names."""


class PluginManager:
    """The project's pluggy manager plus what plugins registered through it."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("sage")
        self.pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._kinds: dict[str, ServiceKind] = {}
        self._backends: dict[tuple[str, str], BackendSpec] = {}
        self._collectors: list[Any] = []
        self._sections: dict[str, ConfigSection] = {}
        self._not_loaded: dict[str, str] = {}
        """Installed entry-point plugins that ``SAGE_LOAD_PLUGINS`` leaves out, by name: their distribution."""
        self._collected = False
        self._lock = threading.Lock()
        for module_name in DEFAULT_PLUGINS:
            self._load(module_name, lambda m=module_name: __import__(m, fromlist=["_"]), "builtin", True)
        if load_entry_points:
            self._load_entry_points()

    # ------------------------------------------------------------------ loading

    def _load_entry_points(self) -> None:
        allow = os.environ.get("SAGE_LOAD_PLUGINS")
        allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
        for ep in entry_points(group="sage"):
            if allowed is not None and ep.name not in allowed:
                self._not_loaded[ep.name] = ep.dist.name if ep.dist is not None else ep.value
                continue
            version = ep.dist.version if ep.dist is not None else "unknown"
            self._load(ep.name, ep.load, version, False)

    def _load(self, name: str, load: Callable[[], Any], version: str, builtin: bool) -> None:
        info = PluginInfo(name=name, version=version, builtin=builtin)
        self._infos[name] = info
        try:
            module = load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            info.error = f"import failed: {type(exc).__name__}: {exc}"
            return
        self.register(module, name=name, info=info)

    def register(self, plugin: Any, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object (a module or any object with ``@hookimpl`` methods)."""
        info = info or self._infos.setdefault(name, PluginInfo(name=name, version="", builtin=False))
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.error = f"{type(exc).__name__}: {exc}"
            return
        info.hooks = sorted(impl_name for impl_name in self._hook_names(plugin))
        self._collected = False

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` (tests use this with :meth:`register`)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self._infos.pop(name, None)
        self._collected = False

    def _hook_names(self, plugin: Any) -> list[str]:
        return [caller.name for caller in self.pm.get_hookcallers(plugin) or []]

    # ------------------------------------------------------------------ what plugins offer

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or broken."""
        self._collect()
        return list(self._infos.values())

    def kinds(self) -> dict[str, ServiceKind]:
        """Service kinds by name."""
        self._collect()
        return dict(self._kinds)

    def backends(self, kind: str | None = None) -> list[BackendSpec]:
        """Registered backends, optionally of one kind."""
        self._collect()
        return [b for (k, _), b in self._backends.items() if kind is None or k == kind]

    def backend(self, kind: str, name: str) -> BackendSpec:
        """The backend ``name`` of ``kind``; a :class:`ConfigError` lists the valid choices."""
        self._collect()
        if kind not in self._kinds:
            raise ConfigError(f"unknown service kind {kind!r}; valid kinds: {', '.join(sorted(self._kinds))}")
        spec = self._backends.get((kind, name))
        if spec is None:
            valid = sorted(n for (k, n) in self._backends if k == kind)
            raise ConfigError(
                f"unknown backend {name!r} for kind {kind!r}; installed backends: {', '.join(valid) or 'none'}"
            )
        return spec

    def collectors(self) -> list[Any]:
        """Registered metrics collectors."""
        self._collect()
        return list(self._collectors)

    def config_sections(self) -> dict[str, ConfigSection]:
        """Top-level config sections that plugins registered, by name."""
        self._collect()
        return dict(self._sections)

    def why_not_loaded(self, name: str) -> str | None:
        """Why the plugin ``name`` offers nothing: it failed to load, or ``SAGE_LOAD_PLUGINS`` leaves it out."""
        info = self._infos.get(name)
        if info is not None and info.error is not None:
            return f"plugin {name!r} failed to load: {info.error}"
        if name in self._not_loaded:
            return f"plugin {name!r} ({self._not_loaded[name]}) is installed but SAGE_LOAD_PLUGINS leaves it out"
        return None

    def _collect(self) -> None:
        with self._lock:
            if self._collected:
                return
            self._kinds, self._backends, self._collectors, self._sections = {}, {}, [], {}
            self._call_each("sage_services", self._add_kind)
            self._call_each("sage_backends", self._add_backend)
            self._call_each("sage_metrics_collectors", lambda plugin, c: self._collectors.append(c))
            self._call_each("sage_config_sections", self._add_section)
            self._collected = True

    def _call_each(self, hook_name: str, add: Callable[..., None]) -> None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(register=lambda *item, p=impl.plugin_name: add(p, *item))
            except Exception as exc:
                info = self._infos.get(impl.plugin_name)
                if info is not None:
                    info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"

    def _add_kind(self, plugin: str, kind: ServiceKind) -> None:
        if kind.name in self._kinds:
            raise ConfigError(f"service kind {kind.name!r} registered twice (by {plugin})")
        self._kinds[kind.name] = kind

    def _add_backend(self, plugin: str, spec: BackendSpec) -> None:
        key = (spec.kind, spec.name)
        if key in self._backends:
            other = self._backends[key].plugin
            raise ConfigError(f"backend {spec.name!r} of kind {spec.kind!r} offered by both {other} and {plugin}")
        object.__setattr__(spec, "plugin", plugin)
        self._backends[key] = spec

    def _add_section(self, plugin: str, name: str, model: type[BaseModel]) -> None:
        if name in CORE_SECTIONS:
            raise ConfigError(f"config section {name!r} is the core's; choose another name")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"config section {name!r}: the model must be a pydantic BaseModel class, got {model!r}")
        if name in self._sections:
            other = self._sections[name].plugin
            raise ConfigError(f"config section {name!r} offered by both {other} and {plugin}")
        self._sections[name] = ConfigSection(name, model, plugin)


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginManager()
        return _default
