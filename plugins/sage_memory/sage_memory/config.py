"""The memory backend's options (its options model): what serves each part, retrieval weights, persistence.

Every part has a working default, so ``MemoryService()`` needs no arguments::

    kv:        {backend: sqlite}
    vector:    {backend: numpy}
    graph:     {backend: networkx}
    embedder:  {backend: hashing}
    retrieval: {vector_weight: 1.0, graph_weight: 0.5, recency_weight: 0.0, ...}
    path:      null            # a directory makes the memory persistent (snapshot + journal)

A part is either a store the memory creates and owns, ``{backend, options, device}`` (or just the
backend's name), or a registered service of the part's kind that the memory calls by name,
``{service: mem_kv}``, so the service layer's batching, fallback, timeouts and shards apply to it.
``path`` snapshots the stores the memory owns, so it needs the KV, vector and graph stores owned.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STORE_KINDS: dict[str, str] = {"kv": "kv", "vector": "vdb", "graph": "graph", "embedder": "embedding"}
"""Config key of each part -> the service kind whose backends (or services) may serve it."""

DEFAULT_BACKENDS: dict[str, str] = {"kv": "sqlite", "vector": "numpy", "graph": "networkx", "embedder": "hashing"}
"""The backend each part uses when the config names neither a backend nor a service."""

PERSISTED_PARTS = ("kv", "vector", "graph")
"""The parts a persistent memory snapshots (the embedder holds no data)."""


class StoreConfig(BaseModel):
    """One part of the memory: a store it creates (``backend``, ``options``, ``device``) or a registered ``service``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    backend: str | None = None
    """An installed backend of the part's kind, created and owned by the memory (the part's default when unset)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword options of that backend's factory."""
    device: str | None = None
    """That backend's device; unset: the memory's device when the backend supports it, else ``cpu``."""
    service: str | None = None
    """The name of a registered service of the part's kind, called through the service layer instead."""

    @model_validator(mode="after")
    def _one_source(self) -> StoreConfig:
        if self.service is not None and (self.backend is not None or self.options or self.device is not None):
            msg = "give either service (a registered service's name) or backend/options/device (a store the memory creates), not both"
            raise ValueError(msg)
        return self


class RetrievalConfig(BaseModel):
    """How :meth:`MemoryService.retrieve_memories` ranks candidates.

    ``score = vector_weight * similarity + graph_weight * graph + recency_weight * recency`` where
    ``graph`` is the best similarity of a linked vector hit times ``graph_decay ** (hops - 1)`` and
    ``recency`` halves every ``recency_half_life_s`` seconds since the memory was last written.
    ``candidate_factor`` times ``top_k`` vector candidates are fetched before re-ranking.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    vector_weight: float = 1.0
    """Weight of the vector similarity."""
    graph_weight: float = 0.5
    """Weight of the graph score (reaching a memory through links to a hit)."""
    recency_weight: float = 0.0
    """Weight of recency (1.0 for a memory written now)."""
    recency_half_life_s: float = Field(86_400.0, gt=0)
    """Seconds for recency to halve."""
    graph_decay: float = 0.5
    """Factor per extra hop of the graph score."""
    candidate_factor: int = Field(4, ge=1)
    """Vector candidates fetched per result wanted, when filters or recency re-rank."""


class MemoryConfig(BaseModel):
    """The options of the ``sage_memory`` backend (see the module docstring for the defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kv: StoreConfig = StoreConfig(backend=DEFAULT_BACKENDS["kv"])
    """The KV store holding each memory's record (kind ``kv``)."""
    vector: StoreConfig = StoreConfig(backend=DEFAULT_BACKENDS["vector"])
    """The vector store holding each memory's embedding (kind ``vdb``)."""
    graph: StoreConfig = StoreConfig(backend=DEFAULT_BACKENDS["graph"])
    """The graph store holding the links between memories (kind ``graph``)."""
    embedder: StoreConfig = StoreConfig(backend=DEFAULT_BACKENDS["embedder"])
    """The embedder turning content into vectors when none is given (kind ``embedding``)."""
    retrieval: RetrievalConfig = RetrievalConfig()
    """Hybrid ranking weights."""
    path: str | None = None
    """A directory making the memory persistent (snapshot + journal); needs the KV, vector and graph stores owned."""
    durability: Literal["none", "flush", "fsync"] = "flush"
    """``none`` (snapshots only), ``flush`` (survives a killed process), ``fsync`` (survives power loss)."""
    checkpoint_every: int = Field(0, ge=0)
    """Journaled writes between automatic checkpoints (0: on ``save()`` and ``close()`` only)."""

    @model_validator(mode="before")
    @classmethod
    def _default_backends(cls, data: Any) -> Any:
        """A part given as a backend's name, or naming neither backend nor service, gets its backend filled in."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for part, backend in DEFAULT_BACKENDS.items():
            value = data.get(part)
            if value is None:
                value = {}
            if isinstance(value, str):
                value = {"backend": value}
            if isinstance(value, dict) and value.get("backend") is None and value.get("service") is None:
                value = {**value, "backend": backend}
            data[part] = value
        return data

    @field_validator("path", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _persisted_parts_owned(self) -> MemoryConfig:
        named = [f"{part}.service={getattr(self, part).service!r}" for part in PERSISTED_PARTS if getattr(self, part).service]
        if self.path is not None and named:
            msg = (
                f"path: a persistent memory snapshots the stores it owns, but {', '.join(named)} "
                "names a service, which keeps its own data; leave path unset (and persist that service), "
                "or give that part a backend"
            )
            raise ValueError(msg)
        return self

    def sources(self) -> dict[str, str]:
        """What serves each part, ``sqlite`` or ``service:<name>`` (the persistence manifest records it)."""
        return {part: getattr(self, part).backend or f"service:{getattr(self, part).service}" for part in STORE_KINDS}
