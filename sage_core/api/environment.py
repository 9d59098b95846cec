"""Environments: where a pipeline is built, its services registered, and its job submitted."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from sage_core.api.capture import GraphCaptured, capturing
from sage_core.api.collect import Channel, Collected, LocalChannel
from sage_core.api.datastream import DataStream
from sage_core.api.functions import (
    BaseFunction,
    BatchFunction,
    RuntimeContext,
    SourceFunction,
)
from sage_core.compiler.logical import LogicalGraph, OperatorSpec, OpKind
from sage_core.compiler.physical import PhysicalGraph, compile_graph
from sage_core.config import SageConfig, load_config
from sage_core.plugins.manager import get_plugin_manager
from sage_core.runtime.errors import ErrorPolicy, RecordWatcher
from sage_core.runtime.job import JobHandle, Runtime
from sage_core.runtime.records import DeadLetter
from sage_core.services.registry import ServiceRegistry

log = logging.getLogger("sage")

_OPEN: "weakref.WeakSet[BaseEnvironment]" = weakref.WeakSet()
"""Environments not closed yet (``sage run`` closes them after Ctrl-C)."""

CLOSE_JOIN_S = 10.0
"""How long ``close()`` waits for a cancelled task still inside a user's function before closing services."""


class BaseEnvironment:
    """Builds a logical pipeline and runs it on a runtime chosen by the subclass.

    ``config`` is a :class:`SageConfig`, a dict, or a YAML file path with ``services:`` and ``job:``
    sections (``job.error_policy``: fail, skip or dead_letter; ``job.batch_size``; ``job.queue_size``)
    and any section an installed plugin offers (``monitor: {enabled: true}``). Jobs carry it as
    ``job.config``; plugins read their section with ``config.section(name)``.
    """

    def __init__(self, name: str, config: SageConfig | Mapping[str, Any] | str | Path | None = None) -> None:
        self.name = name
        self.config: SageConfig = load_config(config)
        self.logical = LogicalGraph()
        self.services = self._make_services()
        if self.config.services:
            self.services.register_config({k: v.model_dump() for k, v in self.config.services.items()})
        self.jobs: list[JobHandle] = []
        self.collectors: list[Collected] = []
        """Collected streams of the next submit (``stream.collect()``)."""
        self._dead_letter_sink: Callable[[DeadLetter], None] | None = None
        self._record_watcher: RecordWatcher | None = None
        _OPEN.add(self)

    # ------------------------------------------------------------------ sources

    def from_batch(self, source: Iterable[Any] | BatchFunction | type[BatchFunction], *, name: str | None = None) -> DataStream:
        """A bounded source: a list, any iterable or generator, or a :class:`BatchFunction`."""
        is_function = isinstance(source, BatchFunction) or (isinstance(source, type) and issubclass(source, BatchFunction))
        if not is_function and not hasattr(source, "__iter__"):
            msg = f"from_batch(): got {source!r}; pass a list, an iterable, a generator or a BatchFunction"
            raise TypeError(msg)
        kind = "batch_function" if is_function else "iterable"
        spec = self.logical.add(OpKind.SOURCE, source, name=name or "source", source_kind=kind)
        return DataStream(self, spec)

    def from_source(
        self, source: SourceFunction | type[SourceFunction], *, parallelism: int = 1, name: str | None = None
    ) -> DataStream:
        """An unbounded source: a :class:`SourceFunction`, run until the job is stopped."""
        if not (isinstance(source, SourceFunction) or (isinstance(source, type) and issubclass(source, SourceFunction))):
            msg = f"from_source(): got {source!r}; pass a SourceFunction subclass or instance (use from_batch for data)"
            raise TypeError(msg)
        spec = self.logical.add(
            OpKind.SOURCE, source, name=name or "source", parallelism=parallelism, source_kind="source_function"
        )
        return DataStream(self, spec)

    # ------------------------------------------------------------------ services

    def register_service(self, name: str, factory: Callable[[], Any] | type | None = None, **options: Any) -> None:
        """Register a long-lived service: a factory (callable or class), or config options.

        ``env.register_service("vdb", lambda: VDBService())`` or
        ``env.register_service("vdb", kind="vdb", backend="faiss", device="auto", replicas=2)``.
        """
        self.services.register(name, factory, **options)

    def register_services(self, config: Mapping[str, Any] | str | Path) -> None:
        """Register every service of a ``services:`` mapping (or a YAML file holding one)."""
        loaded = load_config(config)
        self.services.register_config({k: v.model_dump() for k, v in loaded.services.items()})

    # ------------------------------------------------------------------ running

    def set_dead_letter_sink(self, sink: Callable[[DeadLetter], None]) -> None:
        """Also hand every dead letter to ``sink`` (error policy ``dead_letter``)."""
        self._dead_letter_sink = sink

    @property
    def dead_letter_sink(self) -> Callable[[DeadLetter], None] | None:
        """The sink set by :meth:`set_dead_letter_sink`, if any (to chain another in front of it)."""
        return self._dead_letter_sink

    def set_record_watcher(self, watcher: RecordWatcher | None) -> None:
        """Tell ``watcher`` of every record the next jobs drop or fail (serving answers the request with it)."""
        self._record_watcher = watcher

    def compile(self) -> PhysicalGraph:
        """Validate the pipeline and build its physical graph."""
        return compile_graph(self.logical)

    def submit(self, autostop: bool = True) -> JobHandle:
        """Start the job. With ``autostop`` wait until every source is exhausted and the job drains.

        Without it, return at once; stop an unbounded job with ``job.stop()``.

        Each submit runs the streams built since the previous submit, never earlier ones again;
        the environment's services stay up, shared by its jobs, until :meth:`close`.
        """
        if capturing():
            raise GraphCaptured(self)
        graph = self.compile()
        self.logical = LogicalGraph()
        self.services.start()
        settings = self.config.job
        errors = ErrorPolicy(settings.error_policy, self._dead_letter_sink, settings.max_dead_letters, self._record_watcher)
        runtime = self._make_runtime(graph, errors)
        job = JobHandle(self.name, graph, runtime, errors, self.services, self.config)
        job.collectors, self.collectors = self.collectors, []
        for collected in job.collectors:
            collected.job = job
        hooks = get_plugin_manager().pm.hook
        job.on_finished(lambda j: _call_hook(hooks.sage_job_finished, job=j, summary=j.summary()))
        self.jobs.append(job)
        runtime.start()
        _call_hook(hooks.sage_job_started, job=job)
        if autostop:
            job.wait()
        return job

    def close(self) -> None:
        """End every job, then close the services.

        Running jobs are stopped (records in flight drain for up to ``STOP_TIMEOUT_S`` seconds, then
        the rest is cancelled and counted) and their tasks joined before any service closes, so no
        task calls a closed service.
        """
        _OPEN.discard(self)
        for job in self.jobs:
            job.stop()
        for job in self.jobs:
            if not job.runtime.join(CLOSE_JOIN_S):
                log.warning(
                    "env.close(): job %s: tasks %s still inside a function after %g s; closing services under them",
                    job.name, ", ".join(job.runtime.running_tasks()), CLOSE_JOIN_S,
                )
        self.services.close()

    def __enter__(self) -> "BaseEnvironment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def collect_channel(self, max_buffered: int) -> Channel:
        """The channel that brings a collected stream's records to the driver (local: a bounded queue)."""
        return LocalChannel(max_buffered)

    def _make_services(self) -> ServiceRegistry:
        """The service registry of this environment (local replicas; Ray actors on Ray)."""
        return ServiceRegistry(job_name=self.name)

    def _make_runtime(self, graph: PhysicalGraph, errors: ErrorPolicy) -> Runtime:
        raise TypeError(f"{type(self).__name__} has no runtime; use LocalEnvironment or RemoteEnvironment")

    def _context(self, spec: OperatorSpec, instance: int) -> RuntimeContext:
        return RuntimeContext(
            job_name=self.name,
            operator=spec.id,
            instance=instance,
            parallelism=spec.parallelism,
            services=self.services,
            logger=logging.getLogger(f"sage.{self.name}.{spec.id}"),
        )


class LocalEnvironment(BaseEnvironment):
    """Runs the pipeline on threads of this process (one per physical task)."""

    def _make_runtime(self, graph: PhysicalGraph, errors: ErrorPolicy) -> Runtime:
        from sage_core.runtime.local.runtime import LocalRuntime

        job = self.config.job
        return LocalRuntime(graph, errors, self._context, queue_size=job.queue_size, batch_size=job.batch_size)


def interrupt_all_environments(*, cancel: bool = False) -> None:
    """After Ctrl-C outside ``job.wait()`` (in ``sage run``): interrupt (or ``cancel``) every running job, then
    close every environment."""
    for env in list(_OPEN):
        for job in env.jobs:
            if job.running and cancel:
                job.cancel()
            elif job.running:
                job.interrupt()
        env.close()


def _call_hook(hook: Any, **kwargs: Any) -> None:
    try:
        hook(**kwargs)
    except Exception:  # a broken plugin is reported, never fatal to the job
        log.exception("a plugin's %s hook failed", hook.name)


__all__ = ["BaseEnvironment", "BaseFunction", "LocalEnvironment"]
