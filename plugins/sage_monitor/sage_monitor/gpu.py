"""GPU figures through NVML (``pynvml``, from the ``nvidia-ml-py`` distribution).

:class:`GpuCollector` reads every GPU's utilisation, memory, temperature, power, SM clock and the
memory each process holds. Without NVML (no driver, no library, no GPU) it reports
``{"available": False, "gpus": [], "reason": ...}`` and logs nothing above DEBUG: a machine without a
GPU is a normal place to run a pipeline. This module imports nothing from ``sage_core`` so that the
GPU test runs wherever ``pynvml`` does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("sage.monitor.gpu")

__all__ = ["GpuCollector"]

MIB = 1024 * 1024


class GpuCollector:
    """A metrics collector (``name`` and ``collect()``) for the GPUs NVML sees.

    ``collect()`` returns ``{"available": True, "driver": str, "gpus": [...], "time": float}``, one entry
    per GPU with ``index, name, uuid, utilization_gpu_pct, utilization_memory_pct, memory_used_bytes,
    memory_total_bytes, memory_reserved_bytes, temperature_c, power_w, power_limit_w, sm_clock_mhz,
    sm_clock_max_mhz, processes`` (each process: ``pid, name, memory_used_bytes``). A figure the GPU
    does not report is ``None``. NVML is initialised on the first call and kept for the process.
    """

    name = "gpu"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._reason: str | None = None

    def collect(self) -> dict[str, Any]:
        """Read every GPU now (a few NVML calls each; no background sampling)."""
        with self._lock:
            nvml = self._init()
            if nvml is None:
                return {"available": False, "gpus": [], "reason": self._reason, "time": time.time()}
            try:
                gpus = [_read_gpu(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
            except nvml.NVMLError as exc:  # the driver went away (GPU fell off the bus, reset)
                log.debug("NVML read failed: %s", exc)
                return {"available": False, "gpus": [], "reason": f"NVML read failed: {exc}", "time": time.time()}
            driver = _optional(nvml, nvml.nvmlSystemGetDriverVersion)
            return {"available": True, "driver": _text(driver), "gpus": gpus, "time": time.time()}

    def close(self) -> None:
        """Release NVML (a later ``collect()`` initialises it again)."""
        with self._lock:
            if self._nvml is not None:
                try:
                    self._nvml.nvmlShutdown()
                except self._nvml.NVMLError as exc:
                    log.debug("nvmlShutdown failed: %s", exc)
                self._nvml = None
                self._reason = None

    def _init(self) -> Any:
        if self._nvml is not None or self._reason is not None:
            return self._nvml
        try:
            import pynvml
        except ImportError:
            self._reason = 'pynvml is not installed: pip install nvidia-ml-py (or "sage-monitor")'
            log.debug(self._reason)
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._reason = f"no NVIDIA GPU: NVML did not initialise ({exc})"
            log.debug(self._reason)
            return None
        self._nvml = pynvml
        return pynvml


def _read_gpu(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    util = _optional(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
    memory = _memory(nvml, handle)
    power_mw = _optional(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
    limit_mw = _optional(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
    return {
        "index": index,
        "name": _text(_optional(nvml, nvml.nvmlDeviceGetName, handle)),
        "uuid": _text(_optional(nvml, nvml.nvmlDeviceGetUUID, handle)),
        "utilization_gpu_pct": None if util is None else util.gpu,
        "utilization_memory_pct": None if util is None else util.memory,
        "memory_used_bytes": None if memory is None else memory.used,
        "memory_total_bytes": None if memory is None else memory.total,
        "memory_reserved_bytes": getattr(memory, "reserved", None),
        "temperature_c": _optional(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "power_w": None if power_mw is None else power_mw / 1000.0,
        "power_limit_w": None if limit_mw is None else limit_mw / 1000.0,
        "sm_clock_mhz": _optional(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
        "sm_clock_max_mhz": _optional(nvml, nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_SM),
        "processes": _processes(nvml, handle),
    }


def _memory(nvml: Any, handle: Any) -> Any:
    """Memory info v2 where the driver has it (``used`` then excludes driver-reserved memory, as
    ``nvidia-smi`` reports it), else v1."""
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            return nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
        except nvml.NVMLError:
            pass
    return _optional(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)


def _processes(nvml: Any, handle: Any) -> list[dict[str, Any]]:
    """Compute and graphics processes on the GPU, merged by pid (a process may be both)."""
    found: dict[int, dict[str, Any]] = {}
    for read in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
        for proc in _optional(nvml, read, handle) or []:
            used = proc.usedGpuMemory
            # NVML_VALUE_NOT_AVAILABLE (all ones) inside containers without access to other pids
            used = None if used is None or used >= 2**63 else int(used)
            entry = found.setdefault(
                proc.pid, {"pid": proc.pid, "name": _process_name(nvml, proc.pid), "memory_used_bytes": None}
            )
            if used is not None:
                entry["memory_used_bytes"] = (entry["memory_used_bytes"] or 0) + used
    return sorted(found.values(), key=lambda p: p["pid"])


def _process_name(nvml: Any, pid: int) -> str:
    name = _optional(nvml, nvml.nvmlSystemGetProcessName, pid)
    if name:
        return _text(name) or str(pid)
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip()
    except OSError:
        return str(pid)


def _optional(nvml: Any, read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or ``None`` when the GPU does not support or allow that query."""
    try:
        return read(*args)
    except nvml.NVMLError as exc:
        log.debug("%s%s not available: %s", getattr(read, "__name__", read), args[1:], exc)
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
