"""What plugins register: service kinds (contracts) and backends (implementations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from sage_core.plugins.sharding import ShardRule


@dataclass(frozen=True)
class ServiceKind:
    """A kind of service: a name, its contract, which of its methods change state, and how it shards.

    ``write_methods`` are mirrored to every backend of a fallback chain so that a fallback answers
    with the same data (vector, KV and graph stores); stateless kinds (llm, embedding) leave it empty.

    ``sharding`` maps a method name to a :class:`~sage_core.plugins.sharding.ShardRule` saying how
    a call spreads over the shards of a service with ``shards: N`` and how their answers merge
    (built with :mod:`sage_core.plugins.sharding`: ``by_key``, ``by_keys``, ``fan_out(top_k())``,
    ``broadcast()``, ...). A kind without rules cannot be sharded (use ``replicas`` to share load);
    a method without a rule cannot be called on a sharded service. Like ``write_methods``, the rules
    may name methods beyond the contract that backends offer (``put_many`` of the KV stores).
    """

    name: str
    contract: type
    description: str = ""
    write_methods: tuple[str, ...] = ()
    sharding: Mapping[str, ShardRule] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for method, rule in self.sharding.items():
            if not isinstance(rule, ShardRule):
                msg = (
                    f"service kind {self.name!r}: sharding[{method!r}] is a {type(rule).__name__}, not a ShardRule; "
                    "build it with sage_core.plugins.sharding (by_key, by_keys, by_items, fan_out, broadcast, shard_files)"
                )
                raise TypeError(msg)


@dataclass(frozen=True)
class BackendSpec:
    """A backend implementing the contract of ``kind``, created by ``factory(device=..., **options)``.

    ``devices`` lists the device families it supports (``"cpu"``, ``"cuda"``); the factory raises
    :class:`BackendUnavailable` when the requested device is absent. ``plugin`` is filled in by the
    plugin manager with the name of the plugin that registered it.

    ``options`` is the backend's options model: a pydantic ``BaseModel`` with
    ``ConfigDict(extra="forbid", use_attribute_docstrings=True)``, a default and a docstring per
    field, and no ``device`` (the service's own setting). A config's ``options:`` are validated by
    it, errors naming the key path; the factory receives the validated ``model_dump()`` as keyword
    arguments, so it takes the model's fields; ``sage plugins --json`` shows its JSON schema.
    Without one the options are checked against the factory's keyword parameters. How a fallback
    inherits the primary's options: :mod:`sage_core.services.backend_options`.

    A factory that declares a keyword parameter ``services`` also receives the job's services:
    ``services["kv"]`` is the blocking proxy of the service named ``kv`` (batching, fallback and
    timeouts apply), ``services.kind("kv")`` its kind; see :mod:`sage_core.services.dependencies`.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    devices: tuple[str, ...] = ("cpu",)
    description: str = ""
    options: type[BaseModel] | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.options is not None and not (isinstance(self.options, type) and issubclass(self.options, BaseModel)):
            msg = (
                f"backend {self.kind}/{self.name}: options must be a pydantic BaseModel subclass "
                f"(the backend's options model), not {self.options!r}"
            )
            raise TypeError(msg)
