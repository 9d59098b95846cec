"""GPU utilisation during timed runs, sampled in a background thread by the monitor's NVML collector.

Shared by the multi-GPU benchmarks: ``with load.sampling(): run()`` adds samples only while a timed
run is going, and ``load.means()`` gives the mean ``utilization_gpu_pct`` of every GPU NVML sees.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from typing import Any, Iterator


class GpuLoad:
    """Per-GPU utilisation samples taken every ``interval_s`` inside :meth:`sampling` windows."""

    def __init__(self, interval_s: float = 0.1) -> None:
        try:
            from sage_monitor.gpu import GpuCollector
        except ImportError as exc:  # the monitor plugin is not on the path: figures stay empty
            self._collector: Any = None
            self.reason: str | None = f"sage_monitor is not importable ({exc}); add plugins/sage_monitor to PYTHONPATH"
        else:
            self._collector = GpuCollector()
            self.reason = None
        self.interval_s = interval_s
        self.samples: list[list[float]] = []

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Sample in a background thread for the duration of the ``with`` block."""
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), name="bench-gpu-load", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            row = self.read("utilization_gpu_pct")
            if row:
                self.samples.append(row)

    def read(self, field: str) -> list[float]:
        """One figure of every GPU now (empty without NVML)."""
        if self._collector is None:
            return []
        reading = self._collector.collect()
        if not reading["available"]:
            self.reason = reading.get("reason")
            return []
        return [float(gpu[field] or 0.0) for gpu in reading["gpus"]]

    def means(self) -> list[float]:
        """Mean utilisation (percent) of each GPU over every sample; empty when none was taken."""
        if not self.samples:
            return []
        return [round(statistics.fmean(column), 1) for column in zip(*self.samples)]

    def wait_released(self, baseline_bytes: list[float], slack_bytes: float = 3 * 2**30, timeout_s: float = 120.0) -> bool:
        """Wait until every GPU's used memory is back within ``slack_bytes`` of ``baseline_bytes``
        (engine processes exit a little after ``close``); ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            used = self.read("memory_used_bytes")
            if not used or all(now <= base + slack_bytes for now, base in zip(used, baseline_bytes)):
                return True
            time.sleep(1.0)
        return False
