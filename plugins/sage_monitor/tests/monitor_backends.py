"""Backends for the monitor's start-failure and restart tests: module-level, so a child process can import them."""

from __future__ import annotations

import os


class NoGpu:
    """A primary backend whose creation raises, as torch does on a machine without a GPU."""

    def __init__(self) -> None:
        raise RuntimeError("CUDA unavailable: no NVIDIA driver found")

    def lookup(self, key: str) -> str:  # pragma: no cover - never created
        return key


class OnCpu:
    """The fallback that serves instead."""

    def lookup(self, key: str) -> str:
        return key.upper()


class Pid:
    """Tells which process serves it (a process replica: a child of the test)."""

    def pid(self) -> int:
        return os.getpid()
