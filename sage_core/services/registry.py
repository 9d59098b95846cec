"""The service registry: the one table of a job's services by name.

It registers services, starts their backends once, hands out proxies and closes them::

    services = ServiceRegistry(job_name="rag")
    services.register("vdb", kind="vdb", backend="numpy", options={"dim": 384}, fallback=["numpy"])
    services.register("legacy", lambda: MyService())          # any factory or class
    services.start()                                           # optional: the first call starts too
    hits = services.sync["vdb"].search(query=v, top_k=10)      # blocks
    future = services.async_["vdb"].search(query=v, top_k=10)  # concurrent.futures.Future
    services.metrics()["vdb"]["served_by"]
    services.close()

Options are those of :class:`~sage_core.services.config.ServiceConfig`; see
:mod:`sage_core.services.proxy` for call semantics (``timeout_s=``, streams).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from sage_core.errors import (
    ConfigError,
    ServiceClosed,
    ServiceError,
    UnknownServiceError,
)
from sage_core.plugins.manager import PluginManager, get_plugin_manager
from sage_core.services.config import ServiceConfig, parse_service
from sage_core.services.deadlines import DeadlineScheduler
from sage_core.services.dependencies import BackendServices, ServiceDependencies
from sage_core.services.proxy import ProxyTable
from sage_core.services.service import Service


class ServiceRegistry:
    """The services of one environment (or job): registration, lifecycle, proxies, metrics.

    The environment holds one; a Ray task actor holds a registry :meth:`of` the handles the
    driver's registry gave it, so functions see ``ctx.services`` the same way on both runtimes.
    """

    def __init__(
        self,
        plugin_manager: PluginManager | None = None,
        *,
        job_name: str = "job",
        service_factory: Callable[[str, ServiceConfig], Service] | None = None,
    ) -> None:
        """``service_factory(name, config)`` replaces the local :class:`Service` (the Ray runtime's seam)."""
        self._services: dict[str, Any] = {}
        self._sync = ProxyTable(self, blocking=True)
        self._async = ProxyTable(self, blocking=False)
        self._plugins = plugin_manager
        self.job_name = job_name
        self._service_factory = service_factory
        self._deadlines = DeadlineScheduler(name=f"sage-{job_name}-deadlines")
        self._dependencies = ServiceDependencies()
        self._lock = threading.RLock()
        self._started = False
        self._closed = False

    @classmethod
    def of(cls, services: Mapping[str, Any]) -> "ServiceRegistry":
        """A registry holding services built elsewhere (a Ray task actor's service handles)."""
        registry = cls()
        registry._services.update(services)
        return registry

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager that resolves kinds and backends (the process-wide one by default)."""
        if self._plugins is None:
            self._plugins = get_plugin_manager()
        return self._plugins

    # ------------------------------------------------------------------ registration

    def register(self, name: str, factory: Callable[..., Any] | type | None = None, **options: Any) -> None:
        """Register a service from a factory (callable or class) or from config options.

        ``register("vdb", lambda: MyStore())`` or ``register("vdb", kind="vdb", backend="numpy",
        options={"dim": 384}, replicas=2, fallback=["numpy"], batch={"max_size": 128}, timeout_s=5)``.
        A name already registered is a :class:`ConfigError`.
        """
        if factory is not None:
            if "factory" in options:
                msg = f"service {name!r}: factory given twice (positionally and as factory=)"
                raise ConfigError(msg)
            options["factory"] = factory
        self._add(name, options)

    def register_config(self, services: Mapping[str, Mapping[str, Any] | ServiceConfig]) -> None:
        """Register every entry of a ``services:`` mapping (name to options)."""
        if not isinstance(services, Mapping):
            msg = f"services must be a mapping of name to options, got {type(services).__name__}"
            raise ConfigError(msg)
        for name, options in services.items():
            self._add(name, options)

    def _add(self, name: str, options: Mapping[str, Any] | ServiceConfig) -> None:
        if not isinstance(name, str) or not name:
            msg = f"a service name must be a non-empty string, got {name!r}"
            raise ConfigError(msg)
        with self._lock:
            if self._closed:
                raise ServiceClosed(f"cannot register {name!r}: the service registry is closed")
            if name in self._services:
                msg = f"service {name!r} is already registered (registered: {', '.join(self._services)}); pick another name"
                raise ConfigError(msg)
            config = parse_service(name, options if isinstance(options, ServiceConfig) else dict(options), self.plugins)
            if self._service_factory is not None:
                self._services[name] = self._service_factory(name, config)
            else:
                services = BackendServices(name, self._sync, self._kind, self._dependencies)
                self._services[name] = Service(
                    name, config, self.plugins, job_name=self.job_name, deadlines=self._deadlines, services=services
                )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create every replica's backend (once, on its own worker thread). Idempotent.

        Services start in parallel; a backend that fails to start is skipped for its fallback, and a
        service with no usable backend raises :class:`ServiceError` naming each backend and why.
        """
        with self._lock:
            if self._closed:
                raise ServiceClosed("the service registry is closed")
            services = list(self._services.values())
            self._started = True
        pending = [(service, service.begin_start()) for service in services]
        for service, futures in pending:
            service.finish_start(futures)

    def close(self) -> None:
        """Finish queued calls, close every backend once, stop every thread. Idempotent.

        A service whose backends call others closes before them, so its last calls are served.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            services = [self._services[name] for name in self._dependencies.close_order(list(self._services))]
        for service in services:
            service.close()
        self._deadlines.close()

    def __enter__(self) -> "ServiceRegistry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ access

    @property
    def sync(self) -> ProxyTable:
        """Blocking proxies: ``sync["vdb"].search(query=v, top_k=10)`` returns the hits."""
        return self._sync

    @property
    def async_(self) -> ProxyTable:
        """Future proxies: ``async_["vdb"].search(query=v)`` returns a ``concurrent.futures.Future``."""
        return self._async

    def service(self, name: str) -> Any:
        """The service called ``name``; :class:`UnknownServiceError` lists the registered ones."""
        service = self._services.get(name)
        if service is None:
            raise self._missing(name)
        return service

    def names(self) -> list[str]:
        """Registered service names, in registration order."""
        return list(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def _kind(self, name: str) -> str | None:
        return getattr(self.service(name), "kind", None)

    def _missing(self, name: str) -> ServiceError:
        if self._closed:
            return ServiceClosed(f"the service registry is closed (asked for {name!r})", service=name)
        known = ", ".join(sorted(self._services)) or "none"
        msg = f"no service named {name!r}; registered services: {known} (register it with env.register_service)"
        return UnknownServiceError(msg, service=name)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per service: calls, errors, timeouts, in_flight, latency_ms percentiles, batch sizes,
        served_by per backend (fallbacks visible), start_failures (backend, replica, reason), restarts
        of process replicas, and each replica's load and state."""
        return {name: service.metrics() for name, service in list(self._services.items())}


__all__ = ["ServiceRegistry"]
