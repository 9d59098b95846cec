"""Where a backend runs: ``auto`` picks a GPU when the backend supports one and one is present."""

from __future__ import annotations

import functools
import os
import re

from sage_core.errors import BackendUnavailable, ConfigError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


def check_device(device: object, where: str = "") -> str:
    """``device`` when it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``), else a :class:`ConfigError`
    (a ``ValueError``) whose message starts with ``where``."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        msg = f"{where + ': ' if where else ''}unknown device {device!r}; valid devices: {DEVICE_CHOICES}"
        raise ConfigError(msg)
    return device


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """NVIDIA GPUs visible to this process (0 without a driver or with ``CUDA_VISIBLE_DEVICES=""``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: no GPU
        return 0
    if visible is not None:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


def resolve_device(requested: str, supported: tuple[str, ...], replica: int = 0) -> str:
    """The device string handed to a backend factory for replica number ``replica``.

    ``auto`` means ``cuda`` when the backend lists it and a GPU is present, else ``cpu``; ``cuda``
    spreads replicas over the GPUs (``cuda:0``, ``cuda:1``, ...). A device the backend does not
    support, or ``cuda`` without a GPU, raises :class:`BackendUnavailable` (the fallback takes over).
    """
    family = requested.split(":", 1)[0]
    if family == "auto":
        family = "cuda" if "cuda" in supported and gpu_count() > 0 else "cpu"
        requested = family
    if family not in supported:
        msg = f"the backend supports devices {', '.join(supported)}, not {requested!r}"
        raise BackendUnavailable(msg)
    if family == "cuda":
        gpus = gpu_count()
        if gpus == 0:
            msg = "device cuda requested but no NVIDIA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
            raise BackendUnavailable(msg)
        if requested == "cuda":
            return f"cuda:{replica % gpus}"
    return requested


__all__ = ["DEVICE_CHOICES", "check_device", "gpu_count", "resolve_device"]
