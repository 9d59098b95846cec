"""Services on Ray: each replica a :class:`ReplicaHost` actor, each service a :class:`ServiceRouter` actor.

Each host runs the local :class:`~sage_core.services.replica.Replica` (the backend, its worker
threads, its event loop and its batching queues), so concurrent calls to a host are coalesced
into batches exactly as locally, and listens for task actors' calls on a
:class:`~sage_core.runtime.ray.endpoint.CallEndpoint`: a task calls a host in one hop, running the
service layer itself (:mod:`sage_core.runtime.ray.direct`). The router runs the same
:class:`~sage_core.services.service.Service` (fallback chain, shards, replicas, deadlines, write
mirroring) over :class:`RemoteReplica` stand-ins that call the hosts through Ray, for the
driver's own calls; it starts the service, adds up the figures that task actors report, reads
each host's load and batching figures for ``metrics()``, and closes the hosts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Sequence

import ray

from sage_core.runtime.ray.cluster import threads_block_not_the_loop
from sage_core.runtime.ray.endpoint import CallEndpoint, EndpointAddress
from sage_core.runtime.ray.figures import CallFigures, TalliedService
from sage_core.runtime.ray.portable import portable_exception
from sage_core.runtime.ray.replies import (
    RemoteStream,
    Reply,
    answer,
    reply_future,
    stream_replies,
)
from sage_core.services.config import BatchConfig, ServiceConfig
from sage_core.services.deadlines import DeadlineScheduler
from sage_core.services.remote import SignatureView, method_signatures
from sage_core.services.replica import Replica, ReplicaState
from sage_core.services.service import DEFAULT
from sage_core.plugins.specs import BackendSpec, ServiceKind

log = logging.getLogger("sage.services")

STREAM_THREADS = 64
"""Threads an actor uses to pull items of streaming calls (one per open stream)."""


@dataclass(frozen=True)
class PluginSnapshot:
    """The plugin lookups a service makes, answered in the driver and shipped to the router.

    Plugins registered in the driver's process (tests, notebooks) do not exist in Ray workers.
    """

    known_kinds: dict[str, ServiceKind]
    backends: dict[tuple[str, str], BackendSpec] = field(default_factory=dict)

    @classmethod
    def capture(cls, plugins: Any, config: ServiceConfig) -> "PluginSnapshot":
        """What ``config`` needs of ``plugins``: every kind, and its primary and fallback backends."""
        names = [config.backend, *(entry.backend for entry in config.fallback)]
        backends = {(config.kind, n): plugins.backend(config.kind, n) for n in names if n and config.kind}
        return cls(dict(plugins.kinds()), backends)

    def kinds(self) -> dict[str, ServiceKind]:
        """Service kinds by name."""
        return self.known_kinds

    def backend(self, kind: str, name: str) -> BackendSpec:
        """The backend ``name`` of ``kind``."""
        return self.backends[(kind, name)]


@dataclass
class ReplicaInfo:
    """What a host reports once its backend is built."""

    state: str
    error: BaseException | None
    methods: dict[str, str]
    signatures: dict[str, inspect.Signature]
    node_id: str
    endpoint: EndpointAddress
    """Where task actors call this replica directly."""


@dataclass(frozen=True)
class HostFigures:
    """A host's load and batching figures (every caller's calls, through Ray or directly)."""

    served: int
    failed: int
    batch: dict[str, dict[str, float]]


class ReplicaHost:
    """One replica in its own actor (with the resources its service asked for)."""

    def __init__(self, label: str, create: Callable[[], Any], workers: int, batch: BatchConfig | None, thread_name: str) -> None:
        threads_block_not_the_loop()
        self.replica = Replica(label, create, workers=workers, batch=batch, thread_name=thread_name)
        self.started = self.replica.start()
        self.pool = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix=f"{thread_name}-stream")
        self.endpoint = CallEndpoint(self.replica, ray.util.get_node_ip_address(), thread_name)

    async def start(self) -> ReplicaInfo:
        """Wait for the backend; its state, methods and where it runs."""
        try:
            await asyncio.wrap_future(self.started)
        except Exception:  # the replica records state "failed" and the error
            pass
        replica = self.replica
        error = None if replica.error is None else portable_exception(replica.error)
        signatures = method_signatures(replica.backend, replica.methods, ray.cloudpickle.dumps)
        node_id = ray.get_runtime_context().get_node_id()
        return ReplicaInfo(replica.state, error, dict(replica.methods), signatures, node_id, self.endpoint.address)

    async def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Reply:
        """One call, batched with concurrent ones when the method is batchable."""
        if not self.started.done():
            await asyncio.wait([asyncio.wrap_future(self.started)])
        return await answer(self.replica.submit(method, args, kwargs))

    async def stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> AsyncIterator[Reply]:
        """A streaming call's items (``timeout`` per item, as locally)."""
        if not self.started.done():
            await asyncio.wait([asyncio.wrap_future(self.started)])
        try:
            items = self.replica.open_stream(method, args, kwargs, timeout)
        except Exception as exc:
            yield ("err", portable_exception(exc))
            return
        async for reply in stream_replies(items, self.pool):
            yield reply

    async def figures(self) -> HostFigures:
        """Calls served and failed so far, and batching figures per batchable method."""
        replica = self.replica
        return HostFigures(replica.served, replica.failed, replica.batch_stats())

    async def close(self) -> None:
        """Stop taking calls, finish queued ones and close the backend."""
        self.endpoint.close()
        await asyncio.get_running_loop().run_in_executor(None, self.replica.close)


class RemoteReplica(ReplicaState):
    """Stands in for a :class:`Replica` inside the router; every call goes to its host actor."""

    def __init__(self, label: str, host: Any) -> None:
        super().__init__(label)
        self.host = host
        self.node_id: str | None = None
        self._batch: dict[str, dict[str, float]] = {}

    def start(self) -> Future:
        """Ask the host for its backend's state (once)."""
        with self._lock:
            if self._started is None:
                self.state = "starting"
                self._started = Future()
                self.host.start.remote().future().add_done_callback(self._on_started)
            return self._started

    def _on_started(self, done: Future) -> None:
        assert self._started is not None
        try:
            info: ReplicaInfo = done.result()
        except Exception as exc:
            self.state, self.error = "failed", self._lost(exc)
            self._started.set_exception(self.error)
            return
        self.methods, self.node_id = info.methods, info.node_id
        self.backend = SignatureView(info.signatures)
        if info.state == "ready":
            try:
                self._serve(info)
            except Exception as exc:
                info.state, info.error = "failed", self._lost(exc)
        self.state, self.error = info.state, info.error
        if info.state == "failed" and info.error is not None:
            self._started.set_exception(info.error)
        else:
            self._started.set_result(None)

    def _serve(self, info: ReplicaInfo) -> None:
        """Get ready to call the host that ``info`` describes (through Ray: nothing to open)."""

    def submit(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Future:
        """One call on the host."""
        if self.state != "ready" or method not in self.methods:
            future: Future = Future()
            future.set_exception(self._refusal(method))
            return future
        with self._lock:
            self.in_flight += 1
        future = reply_future(self.host.submit.remote(method, tuple(args), kwargs), self._lost)
        future.add_done_callback(self._finished)
        return future

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> RemoteStream:
        """A streaming call on the host."""
        if self.state != "ready" or self.methods.get(method) not in ("stream", "async_stream"):
            raise self._refusal(method)
        generator = self.host.stream.options(num_returns="streaming").remote(method, tuple(args), kwargs, timeout)
        return RemoteStream(generator, self._lost)

    def batch_stats(self) -> dict[str, dict[str, float]]:
        """The host's batching figures as of the last :meth:`refresh`."""
        return self._batch

    async def refresh(self) -> None:
        """Fetch the host's load and batching figures."""
        figures: HostFigures = await self.host.figures.remote()
        self.served, self.failed, self._batch = figures.served, figures.failed, figures.batch

    def close(self, timeout: float = 30.0) -> None:
        """Close the host's backend (queued calls finish first)."""
        with self._lock:
            if self.state == "closed":
                return
            self.state = "closed"
        try:
            self.host.close.remote().future().result(timeout)
        except Exception:  # closing goes on for the other replicas
            log.exception("%s: closing its Ray actor failed", self.label)

    def _lost(self, exc: BaseException) -> BaseException:
        return RuntimeError(f"{self.label}: its Ray actor failed: {type(exc).__name__}: {exc}")

class ServiceRouter:
    """One service's local machinery (routing, fallback, shards, deadlines) over its replica hosts."""

    def __init__(self, name: str, config: ServiceConfig, plugins: PluginSnapshot, job_name: str, hosts: dict[str, str]) -> None:
        """``hosts``: actor name by replica label (names, not handles, keep the arguments inline)."""
        threads_block_not_the_loop()
        self.deadlines = DeadlineScheduler(name=f"sage-{job_name}-{name}-deadlines")
        self.service = TalliedService(
            name, config, plugins, job_name=job_name, deadlines=self.deadlines,  # type: ignore[arg-type]
            make_replica=lambda label, create, **_: RemoteReplica(label, ray.get_actor(hosts[label])),
        )
        self.pool = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix=f"sage-{name}-router-stream")
        self._started: asyncio.Future | None = None

    async def start(self) -> Reply:
        """Wait for every replica; the service's methods, or why it cannot serve."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._started)

    async def _start(self) -> Reply:
        futures = self.service.begin_start()
        await asyncio.wait([asyncio.wrap_future(f) for f in futures])
        try:
            self.service.finish_start(futures)
        except Exception as exc:
            return ("err", portable_exception(exc))
        return ("ok", dict(self.service.methods))

    async def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: tuple[bool, float | None]) -> Reply:
        """One call through the service layer; ``timeout`` is ``(use the configured one, seconds)``."""
        if self._started is None:  # restarted by Ray: wait for the replicas again
            await self.start()
        use_default, seconds = timeout
        return await answer(self.service.call(method, args, kwargs, DEFAULT if use_default else seconds))

    async def stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: tuple[bool, float | None]) -> AsyncIterator[Reply]:
        """A streaming call's items."""
        if self._started is None:
            await self.start()
        use_default, seconds = timeout
        loop = asyncio.get_running_loop()
        try:
            items = await loop.run_in_executor(
                self.pool, self.service.open_stream, method, args, kwargs, DEFAULT if use_default else seconds
            )
        except Exception as exc:
            yield ("err", portable_exception(exc))
            return
        async for reply in stream_replies(items, self.pool):
            yield reply

    async def add_figures(self, figures: CallFigures) -> None:
        """Count the figures a task actor's calls made."""
        self.service.add_figures(figures)

    async def metrics(self) -> dict[str, Any]:
        """The service's metrics, with every host's load and batching figures fetched first."""
        replicas = [r for group in self.service.tiers for r in group.replicas]
        await asyncio.gather(*(r.refresh() for r in replicas if r.state == "ready"), return_exceptions=True)
        return self.service.metrics()

    async def placement(self) -> dict[str, str | None]:
        """The Ray node id of every replica, by label."""
        return {r.label: r.node_id for group in self.service.tiers for r in group.replicas}

    async def close(self) -> None:
        """Close every replica (queued calls finish first)."""
        await asyncio.get_running_loop().run_in_executor(None, self.service.close)
        self.deadlines.close()


RemoteReplicaHost = ray.remote(ReplicaHost)
RemoteServiceRouter = ray.remote(ServiceRouter)

__all__ = [
    "PluginSnapshot",
    "RemoteReplica",
    "RemoteReplicaHost",
    "RemoteServiceRouter",
    "HostFigures",
    "ReplicaHost",
    "ReplicaInfo",
    "ServiceRouter",
]
