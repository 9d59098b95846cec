"""The options of a FAISS vector store, validated once when the store is created.

A config entry ``{kind: vdb, backend: faiss, device: auto, options: {...}}`` reaches
:class:`FaissConfig` through the backend factory; ``VDBService(**options)`` takes the same names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import faiss

from sage_core.plugin import ConfigError, check_device

METRICS: dict[str, int] = {
    "cosine": faiss.METRIC_INNER_PRODUCT,
    "ip": faiss.METRIC_INNER_PRODUCT,
    "l2": faiss.METRIC_L2,
}
"""Metric names and the FAISS metric each one searches with (cosine normalises, then uses ip)."""

MULTI_GPU_MODES = ("shard", "replicate")


@dataclass(frozen=True)
class FaissConfig:
    """Everything that shapes one store: index, metric, device and tuning knobs.

    ``index`` is a ``faiss.index_factory`` string (``Flat``, ``HNSW32``, ``IVF1024,Flat``,
    ``IVF1024,PQ32``...). ``train_min`` is how many vectors an untrained index (IVF, PQ) waits for
    before it trains (default: 39 per centroid); ``train_max`` caps the training sample.
    ``rebuild_ratio`` is the share of deleted rows that triggers a compacting rebuild;
    ``filter_exact_max`` the number of filter matches below which a filtered search scans the
    matches exactly instead of asking the index.
    """

    dim: int | None = None
    index: str = "Flat"
    metric: str = "cosine"
    device: str = "auto"
    nprobe: int = 16
    ef_search: int = 64
    train_min: int | None = None
    train_max: int | None = None
    fp16: bool = False
    gpu_temp_memory_mb: int | None = None
    multi_gpu: str | None = None
    rebuild_ratio: float = 0.2
    filter_exact_max: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        where = "faiss vdb options"
        if self.dim is not None and (not _is_int(self.dim) or self.dim <= 0):
            raise ConfigError(f"{where}: dim must be a positive integer or null, got {self.dim!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"{where}: unknown metric {self.metric!r}; valid metrics: {', '.join(METRICS)}")
        check_device(self.device, where)
        if self.multi_gpu is not None and self.multi_gpu not in MULTI_GPU_MODES:
            raise ConfigError(
                f"{where}: multi_gpu must be one of {', '.join(MULTI_GPU_MODES)} or null, got {self.multi_gpu!r}"
            )
        if not isinstance(self.index, str) or not self.index.strip():
            raise ConfigError(f"{where}: index must be a faiss index_factory string such as 'Flat' or 'HNSW32'")
        for name in ("nprobe", "ef_search", "filter_exact_max"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
        for name in ("train_min", "train_max", "gpu_temp_memory_mb"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise ConfigError(f"{where}: {name} must be a non-negative integer or null, got {value!r}")
        if not 0.0 < float(self.rebuild_ratio) <= 1.0:
            raise ConfigError(f"{where}: rebuild_ratio must be in (0, 1], got {self.rebuild_ratio!r}")

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
        """Build from a mapping of options; an unknown name is a :class:`ConfigError` listing valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(
                f"faiss vdb options: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}"
            )
        return cls(**dict(options))

    def replace(self, **changes: Any) -> "FaissConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
