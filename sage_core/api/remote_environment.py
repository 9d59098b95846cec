"""``RemoteEnvironment``: the same pipelines on Ray, each physical task and service replica an actor.

::

    env = RemoteEnvironment("rag")                            # a local Ray instance
    env = RemoteEnvironment("rag", address="10.0.0.5:6379")   # or join a cluster
    env.register_service("vdb", kind="vdb", backend="numpy", options={"dim": 384},
                         replicas=2, resources={"num_cpus": 1, "custom": {"node_a": 1}})
    env.from_batch(questions).map(Embed).map(Retrieve).sink(Print)
    env.submit()

User code is the same as with :class:`~sage_core.api.environment.LocalEnvironment`. Ray is an
optional dependency: ``pip install "sage-core[ray]"``. Where tasks run is set per operator with
``task_resources={"embed": {"num_gpus": 0.5}}`` (keys are operator names or ids); by default a
task actor reserves nothing and is restarted up to ``max_restarts`` times.
See :mod:`sage_core.runtime.ray` for the delivery guarantee.
"""

from __future__ import annotations

import warnings
from collections import deque
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from sage_core.api.environment import BaseEnvironment
from sage_core.compiler.logical import OpKind
from sage_core.compiler.physical import Chain, PhysicalGraph
from sage_core.config import SageConfig, load_config
from sage_core.errors import ConfigError
from sage_core.runtime.errors import ErrorPolicy
from sage_core.runtime.job import Runtime
from sage_core.runtime.ray.cluster import connect
from sage_core.services.config import ResourcesConfig, ServiceConfig, describe_errors
from sage_core.services.registry import ServiceRegistry


class RemoteEnvironment(BaseEnvironment):
    """Runs the pipeline on Ray: one actor per physical task, one per service replica.

    ``address``: ``None`` starts a local Ray instance (or reuses this process's connection), a
    cluster address joins it (``"auto"``: the cluster ``ray start`` began on this machine; a
    cluster started with ``RAY_AUTH_MODE=disabled`` needs the same variable in this process). ``ray_init``: extra ``ray.init`` keywords. ``task_resources``: what
    the task actors of an operator reserve, by operator name or id (``num_cpus``, ``num_gpus``,
    ``custom``). ``max_restarts``: how often Ray restarts a crashed task or replica actor.
    ``window``: unacknowledged batches per channel (default: the job's ``queue_size``, at most 16).
    """

    def __init__(
        self,
        name: str,
        address: str | None = None,
        config: SageConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        ray_init: Mapping[str, Any] | None = None,
        task_resources: Mapping[str, Mapping[str, Any]] | None = None,
        max_restarts: int = 3,
        window: int | None = None,
    ) -> None:
        loaded = load_config(config)
        self.address = address
        self.max_restarts = max_restarts
        self.task_resources = {key: _resources(key, value) for key, value in (task_resources or {}).items()}
        self.window = window or min(loaded.job.queue_size, 16)
        connect(address, ray_init)
        super().__init__(name, loaded)

    def _make_services(self) -> ServiceRegistry:
        """Services whose router and replicas are Ray actors."""
        return ServiceRegistry(job_name=self.name, service_factory=self._ray_service)

    def close(self) -> None:
        """Stop running jobs, end their task actors, close every service (Ray stays connected)."""
        super().close()
        for job in self.jobs:
            job.runtime.release()  # type: ignore[attr-defined]
            for collected in job.collectors:
                collected.pump()
                collected.channel.close()  # type: ignore[attr-defined]

    def collect_channel(self, max_buffered: int) -> Any:
        """A bounded Ray queue: collecting sinks in task actors put, the driver gets."""
        from sage_core.api.collect import REMOTE_BATCH
        from sage_core.runtime.ray.collect import RayChannel

        return RayChannel(max_buffered, REMOTE_BATCH)

    def _ray_service(self, name: str, config: ServiceConfig) -> Any:
        from sage_core.runtime.ray.services import RayService

        return RayService(name, config, self.services.plugins, job_name=self.name, max_restarts=self.max_restarts)

    def _make_runtime(self, graph: PhysicalGraph, errors: ErrorPolicy) -> Runtime:
        from sage_core.runtime.ray.runtime import RayRuntime

        self._check_task_resources(graph)
        _warn_about_driver_side_sinks(graph)
        services = {n: self.services.service(n).handle() for n in self.services.names()}  # type: ignore[attr-defined]
        return RayRuntime(
            graph,
            errors,
            self._context,
            services,
            job_name=self.name,
            actor_options=self._task_options,
            batch_size=self.config.job.batch_size,
            window=self.window,
        )

    def _task_options(self, chain: Chain) -> dict[str, Any]:
        from sage_core.runtime.ray.services import actor_options

        reserved = ResourcesConfig()
        for key, resources in self.task_resources.items():
            if any(_names(key, op) for op in chain.operators):
                reserved = resources
        return actor_options(reserved, max_restarts=self.max_restarts)

    def _check_task_resources(self, graph: PhysicalGraph) -> None:
        operators = [op for chain in graph.chains.values() for op in chain.operators]
        for key in self.task_resources:
            if not any(_names(key, op) for op in operators):
                msg = f"task_resources: no operator named {key!r}; operators: {', '.join(operators)}"
                raise ConfigError(msg)


def _warn_about_driver_side_sinks(graph: PhysicalGraph) -> None:
    """A sink such as ``results.append`` runs in an actor on Ray and fills the actor's copy: say so."""
    for chain in graph.chains.values():
        for op_id in chain.operators:
            spec = graph.operator(op_id)
            owner = getattr(spec.function, "__self__", None)
            if spec.kind is OpKind.SINK and isinstance(owner, (list, dict, set, deque, bytearray)):
                warnings.warn(
                    f"{spec.label} runs in a Ray actor: it fills that actor's copy of the {type(owner).__name__}, "
                    "and the driver's stays empty. Use stream.collect() to get records back in the driver.",
                    RuntimeWarning,
                    stacklevel=4,
                )


def _names(key: str, op_id: str) -> bool:
    """Whether ``key`` names operator ``op_id`` (its id, or the name it was given: ``embed`` for ``embed_3``)."""
    if key == op_id:
        return True
    base, _, counter = op_id.rpartition("_")
    return base == key and counter.isdigit()


def _resources(key: str, value: Mapping[str, Any]) -> ResourcesConfig:
    try:
        return ResourcesConfig.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, ResourcesConfig, f"task_resources.{key}")) from None


__all__ = ["RemoteEnvironment"]
