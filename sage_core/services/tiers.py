"""A service's tiers, in fallback order: the primary backend, then each fallback, each split into shards.

A :class:`Tier` is one backend of a service, ``shards`` :class:`~sage_core.services.shards.Shard`s.
With one shard every call goes straight through. With several, the service kind's ``sharding`` rule
for the method (:mod:`sage_core.plugins.sharding`) splits the call into parts, one per shard it
concerns, and merges their answers.

:func:`build_tiers` makes them from the service's config. Each replica gets a zero-argument
creator, run later on the replica's own worker thread: a registered backend is created as
``factory(device=<resolved device>, **options)``; a plain factory as ``factory(**options)`` (plus
``device=`` when one was set and the factory takes it), ``options`` as
:mod:`~sage_core.services.backend_options` validates them (a fallback without its own inherits the
primary's that it takes, by the rule written there). Creators are plain partial
functions, so they pickle (by reference) whenever the factory does: a replica with
``isolation: process`` runs its creator in a child process. ``make_replica`` lets a runtime host
replicas elsewhere (the Ray runtime makes each one an actor): it is called as
``make_replica(label, create, workers=, batch=, thread_name=, resources=)`` and returns an object
with :class:`~sage_core.services.replica.Replica`'s interface.
"""

from __future__ import annotations

import functools
import inspect
import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from sage_core.errors import ConfigError
from sage_core.plugins.manager import PluginManager
from sage_core.services.backend_options import accepted_options, tier_options
from sage_core.services.config import ResourcesConfig, RestartConfig, ServiceConfig
from sage_core.services.dependencies import NoServices
from sage_core.services.devices import resolve_device
from sage_core.services.futures import combine, failed
from sage_core.services.process_replica import ProcessReplica
from sage_core.services.replica import Replica, StreamIterator
from sage_core.services.shards import Shard

if TYPE_CHECKING:
    from sage_core.plugins.specs import ServiceKind

log = logging.getLogger("sage.services")


class Tier:
    """One backend of a service (a tier of its fallback order): its label, its kind (``None`` for a bare factory) and shards of replicas."""

    def __init__(self, label: str, kind: ServiceKind | None, shards: list[Shard]) -> None:
        self.label = label
        self.kind = kind
        self.shards = shards
        self._signatures: dict[str, inspect.Signature] = {}

    @property
    def replicas(self) -> list[Replica]:
        """Every replica of every shard."""
        return [r for shard in self.shards for r in shard.replicas]

    @property
    def usable(self) -> bool:
        """Whether every shard has a usable replica."""
        for shard in self.shards:  # plain loops: this runs on every call
            for replica in shard.replicas:
                if replica.usable:
                    break
            else:
                return False
        return True

    def saturated(self, depth: int | None) -> bool:
        """Whether some shard has ``depth`` calls in flight on every replica."""
        return depth is not None and any(shard.saturated(depth) for shard in self.shards)

    def methods(self) -> dict[str, str]:
        """Method styles of this backend (from its first ready replica)."""
        for replica in self.replicas:
            if replica.state in ("ready", "closed") and replica.methods:
                return replica.methods
        return {}

    def mark_stale(self) -> None:
        """Stop reads here: a write failed here but succeeded on another backend."""
        for replica in self.replicas:
            replica.stale = True

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], write: bool) -> Future:
        """Route one call to the right shard(s) and replica(s)."""
        if len(self.shards) == 1:
            return self.shards[0].call(method, args, kwargs, write)
        sharding = self.kind.sharding if self.kind is not None else {}
        rule = sharding.get(method)
        if rule is None:
            return failed(self._unsharded(method, sharding))
        try:
            arguments = self.bind(method, args, kwargs)
            parts = rule.split(arguments, len(self.shards))
        except Exception as exc:
            return failed(exc)
        futures = [self.shards[part.shard].call(method, (), part.arguments, write) for part in parts]
        return combine(futures, lambda answers: rule.merge(answers, parts, arguments))

    def open_stream(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], timeout: float | None) -> StreamIterator:
        """Start a streaming call on the least-loaded replica of the first shard."""
        replica = self.shards[0].pick()
        if replica is None:
            msg = f"{self.label}: no usable replica"
            raise RuntimeError(msg)
        return replica.open_stream(method, args, kwargs, timeout)

    def bind(self, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in, bound to the backend method's signature."""
        signature = self._signatures.get(method)
        if signature is None:
            replica = next((r for r in self.replicas if r.state == "ready"), None)
            if replica is None:
                msg = f"{self.label}: no ready replica to read {method}()'s signature from"
                raise RuntimeError(msg)
            signature = self._signatures[method] = inspect.signature(getattr(replica.backend, method))
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _unsharded(self, method: str, sharding: Any) -> ConfigError:
        kind = self.kind.name if self.kind is not None else None
        msg = (
            f"kind {kind!r} has no sharding rule for {method}(), so it cannot run on {len(self.shards)} shards; "
            f"methods that shard: {', '.join(sorted(sharding)) or 'none'} "
            f"(call {method}() on a service without shards, or give the kind a rule in ServiceKind(sharding=...))"
        )
        return ConfigError(msg)


ReplicaFactory = Callable[..., Replica]
"""``make_replica(label, create, *, workers, batch, thread_name, resources)`` -> a replica."""


def build_tiers(
    name: str,
    config: ServiceConfig,
    plugins: PluginManager,
    job_name: str,
    make_replica: ReplicaFactory | None = None,
    services: Mapping[str, Any] | None = None,
) -> list[Tier]:
    """The backend groups of a service: primary first, then each fallback, with their replicas.

    Options follow :func:`~sage_core.services.backend_options.tier_options` (validated; a fallback
    without its own inherits the primary's it takes); the keys a fallback drops are logged here, once.
    """
    plans = tier_options(f"services.{name}", config, plugins)
    entries = [(config.backend, config.factory, plans[0].options, config.device, config.replicas, config.shards, config)]
    for position, (entry, plan) in enumerate(zip(config.fallback, plans[1:])):
        if plan.dropped:
            log.warning(
                "service %r: fallback[%d] %r does not take option(s) %s of services.%s.options; they are dropped "
                "(give services.%s.fallback[%d].options to set its own)",
                name, position, entry.backend or _factory_label(entry.factory, position + 1),
                ", ".join(plan.dropped), name, name, position,
            )
        entries.append((entry.backend, entry.factory, plan.options, entry.device, entry.replicas, 1, entry))
    kind = plugins.kinds().get(config.kind) if config.kind else None
    tiers, labels = [], set()
    for position, (backend, factory, options, device, replicas, shards, choice) in enumerate(entries):
        make = make_replica or (
            functools.partial(process_replica, restart=config.restart) if choice.isolation == "process" else local_replica
        )
        label = backend or _factory_label(factory, position)
        if label in labels:
            label = f"{label}#{position}"
        labels.add(label)
        where = f"services.{name}" if position == 0 else f"services.{name}.fallback[{position - 1}]"
        reachable = _reachable(where, choice.isolation if make_replica is None else "ray", services)
        creates = _creators(plugins, config.kind, backend, factory, options, device, reachable, where)
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
            sets.append(Shard(members))
        tiers.append(Tier(label, kind, sets))
    return tiers


def local_replica(label: str, create: Callable[[], Any], *, resources: ResourcesConfig, **options: Any) -> Replica:
    """The default replica: a backend in this process (``resources`` only matter on Ray)."""
    return Replica(label, create, **options)


def process_replica(
    label: str, create: Callable[[], Any], *, resources: ResourcesConfig, restart: RestartConfig, **options: Any
) -> ProcessReplica:
    """A replica in its own child process (``isolation: process``), restarted when that process dies."""
    return ProcessReplica(label, create, restart=restart, **options)


def _creators(
    plugins: PluginManager,
    kind: str | None,
    backend: str | None,
    factory: Any,
    options: dict[str, Any],
    device: str,
    services: Mapping[str, Any],
    where: str,
) -> Callable[[int], Callable[[], Any]]:
    """For replica ``i``: a zero-argument callable creating the backend (run where the replica runs)."""
    if backend is not None:
        spec = plugins.backend(kind, backend)  # type: ignore[arg-type]
        options = _with_services(spec.factory, options, services, where)
        return lambda i: functools.partial(_create_registered, spec.factory, device, spec.devices, i, options)
    options = _with_services(factory, options, services, where)
    accepted = accepted_options(factory)
    wants_device = (accepted is None or "device" in _parameters(factory)) and device != "auto"
    return lambda i: functools.partial(_create_plain, factory, device if wants_device else None, i, options)


def _create_registered(factory: Any, device: str, devices: Any, index: int, options: dict[str, Any]) -> Any:
    return factory(device=resolve_device(device, devices, index), **options)


def _create_plain(factory: Any, device: str | None, index: int, options: dict[str, Any]) -> Any:
    extra = {} if device is None else {"device": resolve_device(device, ("cpu", "cuda"), index)}
    return factory(**options, **extra)


def _reachable(where: str, placement: str, services: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The services a backend placed as ``placement`` can call: ``services``, or a :class:`NoServices` saying why not."""
    if placement == "process":
        return NoServices(
            f"{where}.isolation: a backend in its own process cannot call other services; "
            f"set {where}.isolation: thread to let it"
        )
    if services is None or placement == "ray":
        return NoServices(f"{where}: a backend that calls other services is not supported on Ray yet; run it locally")
    return services


def _with_services(factory: Any, options: dict[str, Any], services: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` plus ``services=`` when the factory declares that parameter."""
    if "services" not in _parameters(factory):
        return options
    if "services" in options:
        msg = f"{where}.options.services: reserved, SAGE passes the job's services to a factory that declares it; rename the option"
        raise ConfigError(msg)
    return {**options, "services": services}


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


__all__ = ["ReplicaFactory", "Tier", "build_tiers", "local_replica", "process_replica"]
