"""Service handles for the Ray runtime: what the driver's registry holds, and what tasks receive.

:class:`RayService` takes the place of the local ``Service`` in the driver's
:class:`~sage_core.services.registry.ServiceRegistry` (through its ``service_factory`` seam): on
start it launches one host actor per replica, with the replica's ``resources``, and the router
actor; the driver's own calls go through the router. Task actors receive :class:`RemoteService`
handles in a registry (:meth:`ServiceRegistry.of`), so ``self.call_service[...]`` and
``self.call_service_async[...]`` use the same proxies as locally. A handle runs the service layer
in the task actor over :class:`~sage_core.runtime.ray.direct.DirectReplica` stand-ins: a call goes
from the task straight to a replica host, and its figures are reported to the router.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from typing import Any, Callable, Iterator, Sequence

import ray

from sage_core.errors import ServiceError
from sage_core.plugins.manager import PluginManager
from sage_core.runtime.ray.direct import DirectReplica
from sage_core.runtime.ray.figures import TalliedService
from sage_core.runtime.ray.replies import RemoteStream, reply_future
from sage_core.runtime.ray.service_actors import (
    PluginSnapshot,
    RemoteReplicaHost,
    RemoteServiceRouter,
)
from sage_core.services.config import BatchConfig, ResourcesConfig, ServiceConfig
from sage_core.services.deadlines import DeadlineScheduler
from sage_core.services.service import DEFAULT, StartOnce
from sage_core.services.tiers import build_tiers

START_TIMEOUT_S = 600.0
"""How long starting a service may take (backends may load models)."""

METRICS_TIMEOUT_S = 10.0

REPORT_S = 1.0
"""How often a task actor's service reports its call figures to the router."""


class RemoteService:
    """A started service in a task actor: the service layer runs here, calls go to the replica hosts."""

    def __init__(
        self, name: str, config: ServiceConfig, plugins: PluginSnapshot, job_name: str, router_name: str,
        hosts: dict[str, str], methods: dict[str, str],
    ) -> None:
        """``hosts``: the host actor's name by replica label; ``methods``: the method table."""
        self.name = name
        self.config = config
        self.plugins = plugins
        self.job_name = job_name
        self.router_name = router_name
        self.hosts = hosts
        self.methods = methods
        self._service: TalliedService | None = None
        self._deadlines = DeadlineScheduler(name=f"sage-{name}-deadlines")
        self._lock = threading.Lock()
        self._released = threading.Event()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteService, (self.name, self.config, self.plugins, self.job_name, self.router_name, self.hosts, self.methods))

    @property
    def service(self) -> TalliedService:
        """This process's service layer over the replica hosts (connected on first use)."""
        with self._lock:
            if self._service is None:
                service = TalliedService(
                    self.name, self.config, self.plugins, job_name=self.job_name,  # type: ignore[arg-type]
                    deadlines=self._deadlines,
                    make_replica=lambda label, create, **_: DirectReplica(label, ray.get_actor(self.hosts[label])),
                )
                service.finish_start(service.begin_start())
                self._service = service
                threading.Thread(target=self._report_now_and_then, name=f"sage-{self.name}-figures", daemon=True).start()
            return self._service

    def ensure_started(self) -> None:
        """Connect to the replica hosts (they were started before this handle was made)."""
        self.service  # noqa: B018

    def is_stream(self, method: str) -> bool:
        """Whether ``method`` yields items."""
        return self.methods.get(method) in ("stream", "async_stream")

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Future:
        """Start one call; the Future holds the result or the :class:`ServiceError`."""
        return self.service.call(method, args, kwargs, timeout)

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Iterator[Any]:
        """Start a streaming call; a blocking iterator over its items."""
        return self.service.open_stream(method, args, kwargs, timeout)

    def release(self) -> Future | None:
        """Report the last figures and hang up (the task has ended); a Future of the report, if one was sent."""
        self._released.set()
        with self._lock:
            service, self._service = self._service, None
        if service is None:
            return None
        service.close()
        self._deadlines.close()
        return self._report(service)

    def _report(self, service: TalliedService) -> Future | None:
        figures = service.take_figures()
        if not figures:
            return None
        return ray.get_actor(self.router_name).add_figures.remote(figures).future()

    def _report_now_and_then(self) -> None:
        while not self._released.wait(REPORT_S):
            service = self._service
            if service is not None:
                self._report(service)


class RayService(StartOnce):
    """The driver's handle on one service hosted by Ray actors; owns their lifecycle."""

    def __init__(
        self, name: str, config: ServiceConfig, plugins: PluginManager, *, job_name: str, max_restarts: int
    ) -> None:
        self.name = name
        self.router_name = f"sage/{job_name}/{name}/{uuid.uuid4().hex[:8]}"
        self.methods: dict[str, str] = {}
        self.config = config
        self.kind = config.kind
        self.job_name = job_name
        self.max_restarts = max_restarts
        self._plugins = plugins
        self._snapshot = PluginSnapshot.capture(plugins, config)
        self._router: Any = None
        self._hosts: dict[str, Any] = {}
        self._state = "new"  # new | started | failed | closed
        self._start_error: BaseException | None = None
        self._futures: list[Future] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def begin_start(self) -> list[Future]:
        """Launch the replica hosts and the router (once); a Future of the router's start reply."""
        with self._lock:
            if self._futures is None:
                build_tiers(self.name, self.config, self._plugins, self.job_name, self._launch)
                options = {**self._actor_options(ResourcesConfig()), "name": self.router_name}
                self._router = RemoteServiceRouter.options(**options).remote(
                    self.name, self.config, self._snapshot, self.job_name, self._host_names()
                )
                self._futures = [self._router.start.remote().future()]
            return self._futures

    def finish_start(self, futures: list[Future]) -> None:
        """Wait for the router; raise :class:`ServiceError` when the service cannot serve."""
        with self._lock:
            if self._state == "new":
                try:
                    kind, value = futures[0].result(timeout=START_TIMEOUT_S)
                except Exception as exc:
                    kind, value = "err", ServiceError(f"service {self.name!r} failed to start on Ray: {exc}", service=self.name, cause=exc)
                if kind == "ok":
                    self.methods, self._state = value, "started"
                else:
                    self._start_error, self._state = value, "failed"
        self._raise_if_unstarted()

    def close(self) -> None:
        """Close every backend (queued calls finish first), then end the actors. Idempotent."""
        with self._lock:
            if self._state == "closed":
                return
            started, self._state = self._futures is not None, "closed"
        if not started:
            return
        try:
            ray.get(self._router.close.remote(), timeout=START_TIMEOUT_S)
        except Exception:  # the actors are ended below either way
            pass
        for actor in [self._router, *(host for _, host in self._hosts.values())]:
            ray.kill(actor)

    # ------------------------------------------------------------------ calls and figures

    def is_stream(self, method: str) -> bool:
        """Whether ``method`` yields items."""
        return self.methods.get(method) in ("stream", "async_stream")

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Future:
        """Start one call through the router (starting the service first if needed)."""
        refused = self._refused()
        if refused is not None:
            return refused
        ref = self._router.call.remote(method, tuple(args), kwargs, _timeout(timeout))
        return reply_future(ref, lambda exc: self._lost(method, exc))

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: Any = DEFAULT) -> Iterator[Any]:
        """Start a streaming call through the router; a blocking iterator over its items."""
        self.ensure_started()
        generator = self._router.stream.options(num_returns="streaming").remote(method, tuple(args), kwargs, _timeout(timeout))
        return RemoteStream(generator, lambda exc: self._lost(method, exc))

    def metrics(self) -> dict[str, Any]:
        """The router's metrics (the same keys as locally); the state alone before start."""
        if self._state == "started":
            try:
                return ray.get(self._router.metrics.remote(), timeout=METRICS_TIMEOUT_S)
            except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
                pass
        return {"kind": self.kind, "state": self._state}

    def placement(self) -> dict[str, str | None]:
        """The Ray node id of every replica, by label (``name/backend/sNrM``)."""
        self.ensure_started()
        return ray.get(self._router.placement.remote(), timeout=METRICS_TIMEOUT_S)

    def replica_actors(self) -> dict[str, Any]:
        """The host actor of every replica, by label (for tooling and fault-injection tests)."""
        self.ensure_started()
        return {label: host for label, (_, host) in self._hosts.items()}

    def handle(self) -> RemoteService:
        """What a task actor gets: the config, the host actors' names and the method table."""
        self.ensure_started()
        return RemoteService(
            self.name, self.config, self._snapshot, self.job_name, self.router_name, self._host_names(), dict(self.methods)
        )

    # ------------------------------------------------------------------ actors

    def _launch(
        self, label: str, create: Callable[[], Any], *, workers: int, batch: BatchConfig | None, thread_name: str,
        resources: ResourcesConfig,
    ) -> Any:
        """Start the host actor of one replica (``build_tiers``'s replica factory)."""
        name = f"{self.router_name}/{label}"
        options = {**self._actor_options(resources), "name": name}
        host = RemoteReplicaHost.options(**options).remote(label, create, workers, batch, thread_name)
        self._hosts[label] = (name, host)
        return host

    def _host_names(self) -> dict[str, str]:
        return {label: name for label, (name, _) in self._hosts.items()}

    def _lost(self, method: str, exc: BaseException) -> ServiceError:
        msg = f"service {self.name!r}: {method}() failed: its Ray router actor failed: {type(exc).__name__}: {exc}"
        return ServiceError(msg, service=self.name, method=method, cause=exc)

    def _actor_options(self, resources: ResourcesConfig) -> dict[str, Any]:
        return actor_options(resources, max_restarts=self.max_restarts)


def actor_options(resources: ResourcesConfig, *, max_restarts: int) -> dict[str, Any]:
    """``.options()`` of an actor reserving ``resources`` and restarted by Ray when it dies."""
    options: dict[str, Any] = {
        "num_cpus": resources.num_cpus or 0,
        "max_restarts": max_restarts,
        "max_task_retries": -1,
    }
    if resources.num_gpus:
        options["num_gpus"] = resources.num_gpus
    if resources.custom:
        options["resources"] = dict(resources.custom)
    return options


def _timeout(timeout: Any) -> tuple[bool, float | None]:
    """The per-call timeout as it crosses to the router: ``(use the configured one, seconds)``."""
    return (True, None) if timeout is DEFAULT else (False, timeout)


__all__ = ["RayService", "RemoteService", "actor_options"]
