"""Building a service's chain of backends from its config: primary, fallbacks, shards, replicas.

Each replica gets a zero-argument creator, run later on the replica's own worker thread: a
registered backend is created as ``factory(device=<resolved device>, **options)``; a plain factory
as ``factory(**options)`` (plus ``device=`` when one was set and the factory takes it). A fallback
given by name without ``options`` inherits the primary's options that its factory accepts.

Creators are plain partial functions, so they pickle (by reference) whenever the factory does: a
replica with ``isolation: process`` runs its creator in a child process.

``make_replica`` lets a runtime host replicas elsewhere (the Ray runtime makes each one an actor):
it is called as ``make_replica(label, create, workers=, batch=, thread_name=, resources=)`` and
returns an object with :class:`Replica`'s interface.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from sage_core.plugins.manager import PluginManager
from sage_core.services.config import ResourcesConfig, ServiceConfig, accepted_options
from sage_core.services.devices import resolve_device
from sage_core.services.process_replica import ProcessReplica
from sage_core.services.replica import Replica
from sage_core.services.routing import BackendGroup, ReplicaSet

ReplicaFactory = Callable[..., Replica]
"""``make_replica(label, create, *, workers, batch, thread_name, resources)`` -> a replica."""


def build_chain(
    name: str, config: ServiceConfig, plugins: PluginManager, job_name: str, make_replica: ReplicaFactory | None = None
) -> list[BackendGroup]:
    """The backend groups of a service: primary first, then each fallback, with their replicas."""
    entries = [(config.backend, config.factory, config.options, config.device, config.replicas, config.shards, config)]
    for entry in config.fallback:
        options = entry.options
        if options is None:  # inherit the primary's options that this backend accepts
            factory = entry.factory or plugins.backend(config.kind, entry.backend).factory  # type: ignore[arg-type]
            accepted = accepted_options(factory)
            options = {k: v for k, v in config.options.items() if accepted is None or k in accepted}
        entries.append((entry.backend, entry.factory, options, entry.device, entry.replicas, 1, entry))
    kind = plugins.kinds().get(config.kind) if config.kind else None
    chain, labels = [], set()
    for position, (backend, factory, options, device, replicas, shards, choice) in enumerate(entries):
        make = make_replica or (
            functools.partial(process_replica, restart=config.restart) if choice.isolation == "process" else local_replica
        )
        label = backend or _factory_label(factory, position)
        if label in labels:
            label = f"{label}#{position}"
        labels.add(label)
        creates = _creators(plugins, config.kind, backend, factory, options, device)
        sets = []
        for shard in range(shards):
            members = [
                make(
                    f"{name}/{label}/s{shard}r{index}",
                    creates(index),
                    workers=config.workers,
                    batch=config.batch,
                    thread_name=f"sage-{job_name}-{name}-{label}-s{shard}r{index}",
                    resources=choice.resources,
                )
                for index in range(replicas)
            ]
            sets.append(ReplicaSet(members))
        chain.append(BackendGroup(label, kind, sets))
    return chain


def local_replica(label: str, create: Callable[[], Any], *, resources: ResourcesConfig, **options: Any) -> Replica:
    """The default replica: a backend in this process (``resources`` only matter on Ray)."""
    return Replica(label, create, **options)


def process_replica(
    label: str, create: Callable[[], Any], *, resources: ResourcesConfig, restart: RestartConfig, **options: Any
) -> ProcessReplica:
    """A replica in its own child process (``isolation: process``), restarted when that process dies."""
    return ProcessReplica(label, create, restart=restart, **options)


def _creators(
    plugins: PluginManager, kind: str | None, backend: str | None, factory: Any, options: dict[str, Any], device: str
) -> Callable[[int], Callable[[], Any]]:
    """For replica ``i``: a zero-argument callable creating the backend (run where the replica runs)."""
    if backend is not None:
        spec = plugins.backend(kind, backend)  # type: ignore[arg-type]
        return lambda i: functools.partial(_create_registered, spec.factory, device, spec.devices, i, options)
    accepted = accepted_options(factory)
    wants_device = (accepted is None or "device" in _parameters(factory)) and device != "auto"
    return lambda i: functools.partial(_create_plain, factory, device if wants_device else None, i, options)


def _create_registered(factory: Any, device: str, devices: Any, index: int, options: dict[str, Any]) -> Any:
    return factory(device=resolve_device(device, devices, index), **options)


def _create_plain(factory: Any, device: str | None, index: int, options: dict[str, Any]) -> Any:
    extra = {} if device is None else {"device": resolve_device(device, ("cpu", "cuda"), index)}
    return factory(**options, **extra)


def _parameters(factory: Any) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def _factory_label(factory: Any, position: int) -> str:
    name = getattr(factory, "__name__", None) or type(factory).__name__
    if name == "<lambda>":
        return "factory" if position == 0 else f"fallback{position}"
    return name


__all__ = ["ReplicaFactory", "build_chain", "local_replica", "process_replica"]
