"""GPU figures for the demo's summary, read through the monitor plugin's NVML collector when installed.

:class:`GpuSampler` samples the collector registered under the name ``gpu`` (plugin ``sage_monitor``)
on a background thread while a phase runs, and reduces the samples to each GPU's peak memory and
utilisation: ``sampler.phases[name]`` is a list of :class:`GpuFigures`, one per GPU the collector
reports (idle ones included), in GPU index order. Without the plugin, NVML or a GPU it reports why,
and the summary says the run had no GPU.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from sage_core.plugin import get_plugin_manager

GIB = 1024**3


@dataclass
class GpuFigures:
    """What one GPU did during one phase: peak memory, utilisation, and memory per process at its peak."""

    index: int
    name: str
    samples: int = 0
    memory_used_peak_gib: float = 0.0
    memory_total_gib: float = 0.0
    utilization_mean_pct: float = 0.0
    utilization_max_pct: float = 0.0
    processes_gib: dict[str, float] = field(default_factory=dict)


class GpuSampler:
    """Samples every GPU each ``interval_s`` seconds during :meth:`phase`; ``available`` says whether it can.

    ``collector`` is any object with ``collect() -> dict`` in the format of ``sage_monitor``'s
    ``GpuCollector``; by default the one the installed monitor plugin registers under the name ``gpu``.
    """

    def __init__(self, interval_s: float = 0.25, collector: Any | None = None) -> None:
        self.interval_s = interval_s
        self.collector = collector if collector is not None else _installed_gpu_collector()
        first = self.collector.collect() if self.collector is not None else {}
        self.available = bool(first.get("available")) and bool(first.get("gpus"))
        if self.collector is None:
            self.reason = "the monitor plugin (sage-monitor) is not installed"
        elif not self.available:
            self.reason = first.get("reason") or "NVML sees no GPU"
        else:
            self.reason = ""
        self.gpus: list[tuple[int, str]] = (
            [(int(g.get("index", i)), g.get("name") or "GPU") for i, g in enumerate(first["gpus"])] if self.available else []
        )
        self.gpu_name = _describe([name for _, name in self.gpus])
        self.phases: dict[str, list[GpuFigures]] = {}

    @property
    def gpu_count(self) -> int:
        """How many GPUs the collector reported when the sampler started (0 without one)."""
        return len(self.gpus)

    @contextmanager
    def phase(self, name: str) -> Iterator[list[GpuFigures]]:
        """Sample while the ``with`` block runs; the per-GPU figures land in ``self.phases[name]``."""
        figures = self.phases[name] = [GpuFigures(index, gpu_name) for index, gpu_name in self.gpus]
        if not self.available:
            yield figures
            return
        stop = threading.Event()
        utilizations: dict[int, list[float]] = {}
        thread = threading.Thread(
            target=self._sample, args=(stop, figures, utilizations), name=f"gpu-sampler-{name}", daemon=True
        )
        thread.start()
        try:
            yield figures
        finally:
            stop.set()
            thread.join()
            figures.sort(key=lambda f: f.index)
            for gpu in figures:
                values = utilizations.get(gpu.index)
                if values:
                    gpu.utilization_mean_pct = sum(values) / len(values)

    def _sample(self, stop: threading.Event, figures: list[GpuFigures], utilizations: dict[int, list[float]]) -> None:
        while True:
            self._read(figures, utilizations)
            if stop.wait(self.interval_s):
                self._read(figures, utilizations)
                return

    def _read(self, figures: list[GpuFigures], utilizations: dict[int, list[float]]) -> None:
        reading: dict[str, Any] = self.collector.collect()
        if not reading.get("available") or not reading.get("gpus"):
            return
        by_index = {f.index: f for f in figures}
        for position, gpu in enumerate(reading["gpus"]):
            index = int(gpu.get("index", position))
            if index not in by_index:  # a GPU that appeared after the sampler started
                by_index[index] = GpuFigures(index, gpu.get("name") or "GPU")
                figures.append(by_index[index])
            _add_sample(by_index[index], gpu, utilizations.setdefault(index, []))


def _add_sample(figures: GpuFigures, gpu: dict[str, Any], utilizations: list[float]) -> None:
    """Fold one collector entry for this GPU into its phase figures."""
    figures.samples += 1
    if gpu.get("utilization_gpu_pct") is not None:
        utilizations.append(float(gpu["utilization_gpu_pct"]))
        figures.utilization_max_pct = max(figures.utilization_max_pct, float(gpu["utilization_gpu_pct"]))
    used = (gpu.get("memory_used_bytes") or 0) / GIB
    figures.memory_total_gib = (gpu.get("memory_total_bytes") or 0) / GIB
    if used >= figures.memory_used_peak_gib:
        figures.memory_used_peak_gib = used
        figures.processes_gib = {_process_label(p): (p.get("memory_used_bytes") or 0) / GIB for p in gpu.get("processes", [])}


def _installed_gpu_collector() -> Any | None:
    return next((c for c in get_plugin_manager().collectors() if getattr(c, "name", None) == "gpu"), None)


def _describe(names: list[str]) -> str:
    """``"NVIDIA H200"`` for one GPU, ``"2x NVIDIA H200"`` for two alike, else the models joined."""
    counts = Counter(names)
    return ", ".join(name if count == 1 else f"{count}x {name}" for name, count in counts.items())


def _process_label(process: dict[str, Any]) -> str:
    pid = process.get("pid")
    if pid == os.getpid():
        return f"this process (pid {pid}: vdb + embedder)"
    return f"{process.get('name') or 'process'} (pid {pid})"
