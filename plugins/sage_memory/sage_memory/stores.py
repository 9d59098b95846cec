"""Opens the KV, vector and graph stores and the embedder a memory is composed of.

Each part is looked up by name among the installed backends of its kind
(``get_plugin_manager().backend(kind, name)``) and created with ``spec.factory(device=..., **options)``,
so any plugin's backend (FAISS, a third party's KV) can serve a part without code here changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sage_core import ConfigError
from sage_core.plugin import get_plugin_manager

from sage_memory.config import STORE_KINDS, MemoryConfig, StoreConfig


@dataclass
class MemoryStores:
    """The four parts of one memory, each a backend object following its contract."""

    kv: Any
    vector: Any
    graph: Any
    embedder: Any

    def close(self) -> None:
        """Close every part, even when one of them raises; the first error is re-raised."""
        first: BaseException | None = None
        for part in (self.vector, self.kv, self.graph, self.embedder):
            try:
                part.close()
            except Exception as exc:  # closing the rest matters more than the first failure
                first = first or exc
        if first is not None:
            raise first


def open_stores(config: MemoryConfig) -> MemoryStores:
    """Create the backends ``config`` names; errors say which part failed and list valid backends."""
    opened: dict[str, Any] = {}
    try:
        for part in STORE_KINDS:
            opened[part] = open_part(part, getattr(config, part), config.device)
    except BaseException:
        for backend in opened.values():
            backend.close()
        raise
    return MemoryStores(**opened)


def open_part(part: str, store: StoreConfig, memory_device: str) -> Any:
    """Create the backend for one part (``kv``, ``vector``, ``graph`` or ``embedder``)."""
    kind = STORE_KINDS[part]
    try:
        spec = get_plugin_manager().backend(kind, store.backend)
    except ConfigError as exc:
        msg = f"memory config {part}.backend: {exc}"
        raise ConfigError(msg) from exc
    device = store.device or _inherited_device(memory_device, spec.devices)
    try:
        return spec.factory(device=device, **store.options)
    except TypeError as exc:
        msg = f"memory config {part}.options {store.options!r} rejected by backend {store.backend!r} ({kind}): {exc}"
        raise ValueError(msg) from exc


def _inherited_device(memory_device: str, supported: tuple[str, ...]) -> str:
    """The memory's device when the backend supports its family (or it is ``auto``), else ``cpu``."""
    family = memory_device.split(":", 1)[0]
    if memory_device == "auto" or family in supported:
        return memory_device
    return "cpu"
