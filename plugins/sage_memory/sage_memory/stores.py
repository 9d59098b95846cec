"""Opens the KV, vector and graph stores and the embedder a memory is composed of.

A part given a backend is created here: looked up by name among the installed backends of its kind
(``get_plugin_manager().backend(kind, name)``) and created with ``spec.factory(device=..., **options)``,
so any plugin's backend serves without code here changing; the memory owns it and closes it. A part
given a service is that registered service's blocking proxy, found by name in the ``services`` table
SAGE gives the memory's factory: its calls go through the service layer, and the registry closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from sage_core import ConfigError
from sage_core.plugin import get_plugin_manager
from sage_memory.config import STORE_KINDS, MemoryConfig, StoreConfig


@dataclass
class MemoryStores:
    """The four parts of one memory, each a backend object or a service proxy following its contract."""

    kv: Any
    vector: Any
    graph: Any
    embedder: Any
    owned: frozenset[str] = frozenset(STORE_KINDS)
    """The parts the memory created (it closes them); the others are services."""
    learned_dim: int | None = field(default=None, repr=False)

    @property
    def dim(self) -> int | None:
        """The vectors' dimension: an owned vector store's ``dim``, else the width of the vectors it was given."""
        return self.vector.dim if "vector" in self.owned else self.learned_dim

    def saw_vectors(self, vectors: np.ndarray) -> None:
        """Remember the width of vectors written to a vector service (whose ``dim`` cannot be read)."""
        if self.learned_dim is None:
            self.learned_dim = int(vectors.shape[-1])

    def close(self) -> None:
        """Close every owned part, even when one of them raises; the first error is re-raised."""
        first: BaseException | None = None
        for part in ("vector", "kv", "graph", "embedder"):
            if part not in self.owned:
                continue
            try:
                getattr(self, part).close()
            except Exception as exc:  # closing the rest matters more than the first failure
                first = first or exc
        if first is not None:
            raise first


def open_stores(config: MemoryConfig, device: str, services: Mapping[str, Any] | None) -> MemoryStores:
    """Create or look up each part; errors name the part's option key and list the valid choices."""
    opened: dict[str, Any] = {}
    owned = frozenset(part for part in STORE_KINDS if getattr(config, part).service is None)
    try:
        for part in STORE_KINDS:
            store = getattr(config, part)
            if store.service is None:
                opened[part] = open_part(part, store, device)
            else:
                opened[part] = service_part(part, store.service, services)
    except BaseException:
        for part, backend in opened.items():
            if part in owned:
                backend.close()
        raise
    return MemoryStores(**opened, owned=owned)


def open_part(part: str, store: StoreConfig, memory_device: str) -> Any:
    """Create the backend for one part (``kv``, ``vector``, ``graph`` or ``embedder``)."""
    kind = STORE_KINDS[part]
    try:
        spec = get_plugin_manager().backend(kind, store.backend)  # type: ignore[arg-type]
    except ConfigError as exc:
        msg = f"{part}.backend: {exc}"
        raise ConfigError(msg) from exc
    device = store.device or _inherited_device(memory_device, spec.devices)
    try:
        return spec.factory(device=device, **store.options)
    except TypeError as exc:
        msg = f"{part}.options {store.options!r} rejected by backend {store.backend!r} ({kind}): {exc}"
        raise ConfigError(msg) from exc


def service_part(part: str, name: str, services: Mapping[str, Any] | None) -> Any:
    """The proxy of the registered service ``name``, after checking it exists and is of the part's kind."""
    kind = STORE_KINDS[part]
    where = f"{part}.service"
    if services is None:
        msg = (
            f"{where}: {name!r} names a service, but this memory was created outside a service registry; "
            f"register the memory as a service (kind: memory, backend: sage_memory) or give {part}.backend"
        )
        raise ConfigError(msg)
    if name not in services:  # where services are out of reach, this raises the reason
        msg = f"{where}: no service named {name!r}; registered services: {_listing(services)}"
        raise ConfigError(msg)
    actual = services.kind(name)  # type: ignore[attr-defined]
    if actual != kind:
        msg = f"{where}: service {name!r} is of kind {actual!r}, the memory's {part} needs kind {kind!r}; registered services: {_listing(services)}"
        raise ConfigError(msg)
    return services[name]


def _listing(services: Mapping[str, Any]) -> str:
    """``name (kind)`` of every registered service."""
    return ", ".join(f"{name} ({services.kind(name)})" for name in sorted(services)) or "none"  # type: ignore[attr-defined]


def _inherited_device(memory_device: str, supported: tuple[str, ...]) -> str:
    """The memory's device when the backend supports its family (or it is ``auto``), else ``cpu``."""
    family = memory_device.split(":", 1)[0]
    if memory_device == "auto" or family in supported:
        return memory_device
    return "cpu"
