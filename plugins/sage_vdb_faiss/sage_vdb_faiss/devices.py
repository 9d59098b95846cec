"""Where an index runs: resolving ``auto | cpu | cuda | cuda:N`` and moving indexes onto GPUs.

One ``StandardGpuResources`` per GPU, created once per store. FAISS lets a resources object serve
only one query at a time, so the store calls the GPU index under its lock; requests batched by the
service layer make that cheap (one call answers many callers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faiss

from sage_core import ConfigError
from sage_core.plugin import BackendUnavailable

from sage_vdb_faiss.config import FaissConfig

log = logging.getLogger(__name__)

GPU_MAX_K = 2048
"""The largest ``k`` FAISS GPU indexes select; larger searches run exactly on the host copy."""

_OTHER_CHOICES = "use device 'cpu' or 'auto', or name a fallback backend in the service config (fallback: [numpy])"
_GPU_BUILD_HINT = (
    "install a GPU build of FAISS (pip install 'sage-vdb-faiss[gpu]' for CUDA 12, "
    "pip install faiss-gpu-cu13-cuvs for CUDA 13)"
)


@dataclass(frozen=True)
class Placement:
    """The device an index lives on: the CPU, one GPU, or several GPUs (sharded or replicated)."""

    gpus: tuple[int, ...] = ()
    mode: str | None = None

    @property
    def on_gpu(self) -> bool:
        """Whether the index lives on GPU memory."""
        return bool(self.gpus)

    def __str__(self) -> str:
        if not self.gpus:
            return "cpu"
        text = "cuda:" + ",".join(str(g) for g in self.gpus)
        return f"{text} ({self.mode})" if self.mode else text


CPU = Placement()


def gpu_count() -> int:
    """GPUs FAISS can use here: 0 with a CPU-only FAISS build or no visible GPU."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def gpu_capable(index: faiss.Index) -> bool:
    """Whether FAISS can clone this (empty) CPU index to a GPU: flat and IVF flat/SQ/PQ families."""
    core = faiss.downcast_index(index)
    while isinstance(core, faiss.IndexPreTransform):
        core = faiss.downcast_index(core.index)
    return isinstance(core, (faiss.IndexFlat, faiss.IndexIVFFlat, faiss.IndexIVFScalarQuantizer, faiss.IndexIVFPQ))


def resolve_placement(config: FaissConfig, template: faiss.Index | None) -> Placement:
    """Turn ``config.device`` into a :class:`Placement`.

    ``auto`` picks the GPU(s) when FAISS sees one and the index type runs there, else the CPU.
    ``cuda``/``cuda:N`` without a usable GPU raise :class:`BackendUnavailable` (the service layer
    then moves to the configured fallback); an index type the GPU cannot run is a ``ConfigError``.
    With ``template=None`` (dimension not known yet) the index type is not checked.
    """
    device = config.device
    if device == "cpu":
        return CPU
    available = gpu_count()
    if device == "auto":
        if available == 0:
            return CPU
        if template is not None and not gpu_capable(template):
            log.info("faiss vdb: index %r has no GPU version; device auto uses the CPU", config.index)
            return CPU
        return _gpus(config, available, None)
    if not hasattr(faiss, "StandardGpuResources"):
        raise BackendUnavailable(
            f"faiss vdb: device {device!r} requested but the installed FAISS is CPU-only; "
            f"{_GPU_BUILD_HINT}, or {_OTHER_CHOICES}"
        )
    if available == 0:
        raise BackendUnavailable(
            f"faiss vdb: device {device!r} requested but no GPU is visible (faiss.get_num_gpus() == 0); "
            f"check the driver and CUDA_VISIBLE_DEVICES, or {_OTHER_CHOICES}"
        )
    if template is not None and not gpu_capable(template):
        raise ConfigError(
            f"faiss vdb: index {config.index!r} cannot run on the GPU (FAISS GPU supports Flat and IVF "
            f"with Flat, SQ or PQ codes); choose one of those or use device 'cpu'"
        )
    number = None if device == "cuda" else int(device.split(":", 1)[1])
    if number is not None and number >= available:
        raise BackendUnavailable(
            f"faiss vdb: device {device!r} requested but only {available} GPU(s) are visible "
            f"(cuda:0 to cuda:{available - 1})"
        )
    return _gpus(config, available, number)


def _gpus(config: FaissConfig, available: int, number: int | None) -> Placement:
    """One GPU (``number``, default 0), or with ``multi_gpu`` every visible GPU.

    The service layer hands each replica ``cuda:N``; with ``multi_gpu`` the index spans all GPUs
    whatever ``N`` is (run one replica of such a service).
    """
    if config.multi_gpu is None:
        return Placement(gpus=(number or 0,))
    if number is not None:
        log.info("faiss vdb: multi_gpu=%s spans every GPU, so device %s counts as cuda", config.multi_gpu, config.device)
    return Placement(gpus=tuple(range(available)), mode=config.multi_gpu if available > 1 else None)


class GpuPlacer:
    """Holds one ``StandardGpuResources`` per GPU of a placement and clones CPU indexes onto them."""

    def __init__(self, placement: Placement, config: FaissConfig) -> None:
        self.placement = placement
        self.fp16 = config.fp16
        self.resources: list[Any] = []
        for _ in placement.gpus:
            resources = faiss.StandardGpuResources()
            if config.gpu_temp_memory_mb is not None:
                resources.setTempMemory(config.gpu_temp_memory_mb * 1024 * 1024)
            self.resources.append(resources)

    def to_gpu(self, cpu_index: faiss.Index) -> faiss.Index:
        """A GPU copy of ``cpu_index`` (expected empty; rows are added afterwards, in order).

        ``replicate`` uses ``index_cpu_to_gpu_multiple`` (every GPU holds every vector, queries split
        between them). ``shard`` builds an ``IndexShards`` of one GPU index per card, each behind an
        ``IndexIDMap`` so that later adds keep global slot numbers (the shards FAISS clones for flat
        indexes accept only a single add pass).
        """
        gpus = self.placement.gpus
        if len(gpus) == 1:
            options = faiss.GpuClonerOptions()
            options.useFloat16 = self.fp16
            return faiss.index_cpu_to_gpu(self.resources[0], gpus[0], cpu_index, options)
        if self.placement.mode == "replicate":
            options = faiss.GpuMultipleClonerOptions()
            options.shard = False
            options.useFloat16 = self.fp16
            return faiss.index_cpu_to_gpu_multiple_py(self.resources, cpu_index, options, list(gpus))
        shards = faiss.IndexShards(cpu_index.d, True, False)
        shards.metric_type = cpu_index.metric_type
        for resources, gpu in zip(self.resources, gpus):
            options = faiss.GpuClonerOptions()
            options.useFloat16 = self.fp16
            gpu_index = faiss.index_cpu_to_gpu(resources, gpu, faiss.clone_index(cpu_index), options)
            shards.add_shard(faiss.IndexIDMap(gpu_index))
        return shards

    def set_parameter(self, index: faiss.Index, name: str, value: int) -> None:
        """Set a search parameter (``nprobe``) on a GPU index and everything it wraps."""
        faiss.GpuParameterSpace().set_index_parameter(index, name, value)

    def close(self) -> None:
        """Release the GPU resources (the index using them must be dropped first)."""
        self.resources.clear()
