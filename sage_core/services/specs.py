"""What plugins register: service kinds (contracts) and backends (implementations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ServiceKind:
    """A kind of service: a name, its contract, and which of its methods change state.

    ``write_methods`` are mirrored to every backend of a fallback chain so that a fallback answers
    with the same data (vector, KV and graph stores); stateless kinds (llm, embedding) leave it empty.
    """

    name: str
    contract: type
    description: str = ""
    write_methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendSpec:
    """A backend implementing the contract of ``kind``, created by ``factory(device=..., **options)``.

    ``devices`` lists the device families it supports (``"cpu"``, ``"cuda"``); the factory raises
    :class:`BackendUnavailable` when the requested device is absent. ``plugin`` is filled in by the
    plugin manager with the name of the plugin that registered it.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    devices: tuple[str, ...] = ("cpu",)
    description: str = ""
    plugin: str = field(default="", compare=False)
