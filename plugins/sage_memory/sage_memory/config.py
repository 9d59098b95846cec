"""The memory service's configuration: which backend serves each store, retrieval weights, persistence.

Every part has a working default, so ``MemoryService()`` needs no arguments::

    kv:        {backend: sqlite, options: {}}
    vector:    {backend: numpy, options: {metric: cosine}}
    graph:     {backend: networkx, options: {}}
    embedder:  {backend: hashing, options: {}}
    retrieval: {vector_weight: 1.0, graph_weight: 0.5, recency_weight: 0.0, ...}
    path:      null            # a directory makes the memory persistent (snapshot + journal)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

STORE_KINDS: dict[str, str] = {"kv": "kv", "vector": "vdb", "graph": "graph", "embedder": "embedding"}
"""Config key of each part -> the service kind whose backends may serve it."""

DEFAULT_BACKENDS: dict[str, str] = {"kv": "sqlite", "vector": "numpy", "graph": "networkx", "embedder": "hashing"}
"""The backend each part uses when the config does not name one."""

DURABILITY_MODES = ("none", "flush", "fsync")


@dataclass(frozen=True)
class StoreConfig:
    """One part of the memory: the backend's name, its options, and an optional device of its own."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    device: str | None = None

    @classmethod
    def parse(cls, part: str, value: Mapping[str, Any] | str | None) -> "StoreConfig":
        """Read ``{backend, options, device}`` (or just a backend name) for config key ``part``."""
        if value is None:
            return cls(backend=DEFAULT_BACKENDS[part])
        if isinstance(value, str):
            return cls(backend=value)
        if not isinstance(value, Mapping):
            msg = f"memory config {part!r}: expected a mapping {{backend, options, device}} or a backend name, got {type(value).__name__}"
            raise ValueError(msg)
        _reject_unknown(part, value, ("backend", "options", "device"))
        options = value.get("options") or {}
        if not isinstance(options, Mapping):
            msg = f"memory config {part}.options: expected a mapping, got {type(options).__name__}"
            raise ValueError(msg)
        return cls(
            backend=str(value.get("backend") or DEFAULT_BACKENDS[part]),
            options=dict(options),
            device=value.get("device"),
        )


@dataclass(frozen=True)
class RetrievalConfig:
    """How :meth:`MemoryService.retrieve_memories` ranks candidates.

    ``score = vector_weight * similarity + graph_weight * graph + recency_weight * recency`` where
    ``graph`` is the best similarity of a linked vector hit times ``graph_decay ** (hops - 1)`` and
    ``recency`` halves every ``recency_half_life_s`` seconds since the memory was last written.
    ``candidate_factor`` times ``top_k`` vector candidates are fetched before re-ranking.
    """

    vector_weight: float = 1.0
    graph_weight: float = 0.5
    recency_weight: float = 0.0
    recency_half_life_s: float = 86_400.0
    graph_decay: float = 0.5
    candidate_factor: int = 4

    @classmethod
    def parse(cls, value: Mapping[str, Any] | None) -> "RetrievalConfig":
        """Read the ``retrieval`` mapping, checking names and ranges."""
        if value is None:
            return cls()
        if isinstance(value, RetrievalConfig):
            return value
        names = tuple(f.name for f in fields(cls))
        _reject_unknown("retrieval", value, names)
        config = cls(**{k: type(getattr(cls, k))(v) for k, v in value.items()})
        if config.recency_half_life_s <= 0 or config.candidate_factor < 1:
            msg = "memory config retrieval: recency_half_life_s must be > 0 and candidate_factor >= 1"
            raise ValueError(msg)
        return config


@dataclass(frozen=True)
class MemoryConfig:
    """The whole memory configuration (see the module docstring for the defaults)."""

    kv: StoreConfig = field(default_factory=lambda: StoreConfig.parse("kv", None))
    vector: StoreConfig = field(default_factory=lambda: StoreConfig.parse("vector", None))
    graph: StoreConfig = field(default_factory=lambda: StoreConfig.parse("graph", None))
    embedder: StoreConfig = field(default_factory=lambda: StoreConfig.parse("embedder", None))
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    path: str | None = None
    durability: str = "flush"
    checkpoint_every: int = 0
    device: str = "cpu"

    @classmethod
    def from_options(cls, device: str = "cpu", **options: Any) -> "MemoryConfig":
        """Build from the options of a ``{kind: memory, backend: sage_memory, options: {...}}`` entry."""
        names = tuple(f.name for f in fields(cls))
        _reject_unknown("options", options, names)
        durability = str(options.get("durability", "flush"))
        if durability not in DURABILITY_MODES:
            msg = f"memory config durability={durability!r}: valid values are {', '.join(DURABILITY_MODES)}"
            raise ValueError(msg)
        checkpoint_every = int(options.get("checkpoint_every") or 0)
        if checkpoint_every < 0:
            msg = f"memory config checkpoint_every={checkpoint_every}: must be >= 0 (0 checkpoints only on save/close)"
            raise ValueError(msg)
        path = options.get("path")
        return cls(
            **{part: StoreConfig.parse(part, options.get(part)) for part in STORE_KINDS},
            retrieval=RetrievalConfig.parse(options.get("retrieval")),
            path=None if path is None else str(path),
            durability=durability,
            checkpoint_every=checkpoint_every,
            device=str(options.get("device") or device),
        )

    def describe(self) -> dict[str, Any]:
        """The store choices as plain data (written into the persistence manifest)."""
        return {part: {"backend": getattr(self, part).backend, "options": getattr(self, part).options} for part in STORE_KINDS}


def _reject_unknown(where: str, value: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - set(valid))
    if unknown:
        msg = f"memory config {where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
        raise ValueError(msg)
