"""Building a service's chain of backends from its config: primary, fallbacks, shards, replicas.

Each replica gets a zero-argument creator, run later on the replica's own worker thread: a
registered backend is created as ``factory(device=<resolved device>, **options)``; a plain factory
as ``factory(**options)`` (plus ``device=`` when one was set and the factory takes it). A fallback
given by name without ``options`` inherits the primary's options that its factory accepts.

``make_replica`` lets a runtime host replicas elsewhere (the Ray runtime makes each one an actor):
it is called as ``make_replica(label, create, workers=, batch=, thread_name=, resources=)`` and
returns an object with :class:`Replica`'s interface.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from sage_core.plugins.manager import PluginManager
from sage_core.services.config import ResourcesConfig, ServiceConfig, accepted_options
from sage_core.services.devices import resolve_device
from sage_core.services.replica import Replica
from sage_core.services.routing import BackendGroup, ReplicaSet


ReplicaFactory = Callable[..., Replica]
"""``make_replica(label, create, *, workers, batch, thread_name, resources)`` -> a replica."""


def build_chain(
    name: str, config: ServiceConfig, plugins: PluginManager, job_name: str, make_replica: ReplicaFactory | None = None
) -> list[BackendGroup]:
    """The backend groups of a service: primary first, then each fallback, with their replicas."""
    make = make_replica or local_replica
    entries = [
        (config.backend, config.factory, config.options, config.device, config.replicas, config.shards, config.resources)
    ]
    for entry in config.fallback:
        options = entry.options
        if options is None:  # inherit the primary's options that this backend accepts
            factory = entry.factory or plugins.backend(config.kind, entry.backend).factory  # type: ignore[arg-type]
            accepted = accepted_options(factory)
            options = {k: v for k, v in config.options.items() if accepted is None or k in accepted}
        entries.append((entry.backend, entry.factory, options, entry.device, entry.replicas, 1, entry.resources))
    chain, labels = [], set()
    for position, (backend, factory, options, device, replicas, shards, resources) in enumerate(entries):
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
                    resources=resources,
                )
                for index in range(replicas)
            ]
            sets.append(ReplicaSet(members))
        chain.append(BackendGroup(label, config.kind, sets))
    return chain


def local_replica(label: str, create: Callable[[], Any], *, resources: ResourcesConfig, **options: Any) -> Replica:
    """The default replica: a backend in this process (``resources`` only matter on Ray)."""
    return Replica(label, create, **options)


def _creators(
    plugins: PluginManager, kind: str | None, backend: str | None, factory: Any, options: dict[str, Any], device: str
) -> Callable[[int], Callable[[], Any]]:
    """For replica ``i``: a zero-argument callable creating the backend (run on the replica's thread)."""
    if backend is not None:
        spec = plugins.backend(kind, backend)  # type: ignore[arg-type]
        return lambda i: lambda: spec.factory(device=resolve_device(device, spec.devices, i), **options)
    accepted = accepted_options(factory)
    wants_device = accepted is None or "device" in _parameters(factory)

    def create(i: int) -> Callable[[], Any]:
        def make() -> Any:
            extra = {"device": resolve_device(device, ("cpu", "cuda"), i)} if wants_device and device != "auto" else {}
            return factory(**options, **extra)

        return make

    return create


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


__all__ = ["ReplicaFactory", "build_chain", "local_replica"]
