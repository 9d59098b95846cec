"""GPU figures for the demo's summary, read through the monitor plugin's NVML collector when installed.

:class:`GpuSampler` samples the collector registered under the name ``gpu`` (plugin ``sage_monitor``)
on a background thread while a phase runs, and reduces the samples to peak memory and utilisation.
Without the plugin, NVML or a GPU it reports why, and the summary says the run had no GPU.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from sage_core import get_plugin_manager

GIB = 1024**3


@dataclass
class PhaseGpu:
    """What the GPU did during one phase: peak memory, utilisation, and memory per process at the peak."""

    samples: int = 0
    memory_used_peak_gib: float = 0.0
    memory_total_gib: float = 0.0
    utilization_mean_pct: float = 0.0
    utilization_max_pct: float = 0.0
    processes_gib: dict[str, float] = field(default_factory=dict)


class GpuSampler:
    """Samples GPU 0 every ``interval_s`` seconds during :meth:`phase`; ``available`` says whether it can."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.collector = next((c for c in get_plugin_manager().collectors() if getattr(c, "name", None) == "gpu"), None)
        first = self.collector.collect() if self.collector is not None else {}
        self.available = bool(first.get("available")) and bool(first.get("gpus"))
        if self.collector is None:
            self.reason = "the monitor plugin (sage-monitor) is not installed"
        elif not self.available:
            self.reason = first.get("reason") or "NVML sees no GPU"
        else:
            self.reason = ""
        self.gpu_name = first["gpus"][0].get("name", "GPU") if self.available else ""
        self.phases: dict[str, PhaseGpu] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseGpu]:
        """Sample while the ``with`` block runs; the figures land in ``self.phases[name]``."""
        figures = self.phases[name] = PhaseGpu()
        if not self.available:
            yield figures
            return
        stop = threading.Event()
        utilizations: list[float] = []
        thread = threading.Thread(target=self._sample, args=(stop, figures, utilizations), name=f"gpu-sampler-{name}", daemon=True)
        thread.start()
        try:
            yield figures
        finally:
            stop.set()
            thread.join()
            if utilizations:
                figures.utilization_mean_pct = sum(utilizations) / len(utilizations)

    def _sample(self, stop: threading.Event, figures: PhaseGpu, utilizations: list[float]) -> None:
        while True:
            self._read(figures, utilizations)
            if stop.wait(self.interval_s):
                self._read(figures, utilizations)
                return

    def _read(self, figures: PhaseGpu, utilizations: list[float]) -> None:
        reading: dict[str, Any] = self.collector.collect()
        if not reading.get("available") or not reading.get("gpus"):
            return
        gpu = reading["gpus"][0]
        figures.samples += 1
        if gpu.get("utilization_gpu_pct") is not None:
            utilizations.append(float(gpu["utilization_gpu_pct"]))
            figures.utilization_max_pct = max(figures.utilization_max_pct, float(gpu["utilization_gpu_pct"]))
        used = (gpu.get("memory_used_bytes") or 0) / GIB
        figures.memory_total_gib = (gpu.get("memory_total_bytes") or 0) / GIB
        if used >= figures.memory_used_peak_gib:
            figures.memory_used_peak_gib = used
            figures.processes_gib = {_process_label(p): (p.get("memory_used_bytes") or 0) / GIB for p in gpu.get("processes", [])}


def _process_label(process: dict[str, Any]) -> str:
    pid = process.get("pid")
    if pid == os.getpid():
        return f"this process (pid {pid}: vdb + embedder)"
    return f"{process.get('name') or 'process'} (pid {pid})"
