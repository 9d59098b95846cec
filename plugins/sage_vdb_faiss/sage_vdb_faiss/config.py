"""The options of a FAISS vector store: :class:`FaissOptions` (what a config's ``options:`` may set).

A config entry ``{kind: vdb, backend: faiss, device: auto, options: {...}}`` is validated by
:class:`FaissOptions` (the backend's options model, ``sage plugins --json`` shows its schema);
``VDBService(device=..., **options)`` takes the same names and builds a :class:`FaissConfig`, the
options plus the device the store runs on.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import faiss
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sage_core.plugin import ConfigError, check_device, describe_errors

METRICS: dict[str, int] = {
    "cosine": faiss.METRIC_INNER_PRODUCT,
    "ip": faiss.METRIC_INNER_PRODUCT,
    "l2": faiss.METRIC_L2,
}
"""Metric names and the FAISS metric each one searches with (cosine normalises, then uses ip)."""


class FaissOptions(BaseModel):
    """Everything in a config's ``options:`` that shapes one store: index, metric and tuning knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    dim: int | None = Field(None, gt=0)
    """Vector dimension; learnt from the first vectors added when omitted."""
    index: str = "Flat"
    """A ``faiss.index_factory`` string: ``Flat``, ``HNSW32``, ``IVF1024,Flat``, ``IVF1024,PQ32``..."""
    metric: Literal["cosine", "ip", "l2"] = "cosine"
    """Similarity; scores are higher-is-closer (``cosine`` normalises, then uses ``ip``)."""
    nprobe: int = Field(16, ge=1)
    """IVF lists searched per query."""
    ef_search: int = Field(64, ge=1)
    """HNSW search breadth."""
    train_min: int | None = Field(None, ge=0)
    """Vectors an untrained index (IVF, PQ) waits for before it trains (default: 39 per centroid)."""
    train_max: int | None = Field(None, ge=0)
    """Cap on the training sample."""
    fp16: bool = False
    """On a GPU, store vectors in float16."""
    gpu_temp_memory_mb: int | None = Field(None, ge=0)
    """Scratch memory FAISS reserves per GPU (default: FAISS's own)."""
    multi_gpu: Literal["shard", "replicate"] | None = None
    """With several GPUs, split the index over them (``shard``) or copy it to each (``replicate``)."""
    rebuild_ratio: float = Field(0.2, gt=0, le=1)
    """Share of deleted rows that triggers a compacting rebuild."""
    filter_exact_max: int = Field(10_000, ge=1)
    """Filter matches below which a filtered search scans the matches exactly instead of asking the index."""
    seed: int = 0
    """Seed of training (IVF k-means, PQ)."""

    @field_validator("index")
    @classmethod
    def _index_string(cls, value: str) -> str:
        if not value.strip():
            msg = "index must be a faiss index_factory string such as 'Flat' or 'HNSW32'"
            raise ValueError(msg)
        return value


class FaissConfig(FaissOptions):
    """:class:`FaissOptions` and the device the store runs on (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""

    device: str = "auto"
    """Where the index lives; the service layer passes the service's ``device``."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)

    @property
    def faiss_metric(self) -> int:
        """The FAISS metric constant the index is built with."""
        return METRICS[self.metric]

    @property
    def normalise(self) -> bool:
        """Whether vectors and queries are L2-normalised (the cosine metric)."""
        return self.metric == "cosine"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "FaissConfig":
        """Build from a mapping of options; a :class:`ConfigError` names each bad option (``VDBService.metric``) and the valid choices."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc, cls, "VDBService")) from None

    def replace(self, **changes: Any) -> "FaissConfig":
        """A copy with some fields changed (validated again)."""
        return self.from_options({**self.model_dump(), **changes})


__all__ = ["METRICS", "FaissConfig", "FaissOptions"]
