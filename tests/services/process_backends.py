"""Backends for the process replica tests: module-level, so that a child process can import them."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterator

import numpy as np

from sage_core.services.batching import batchable


class Where:
    """Tells which process serves it, and exercises every method style across the pipe."""

    def pid(self) -> int:
        return os.getpid()

    async def double(self, x: float) -> float:
        return 2 * x

    @batchable(arg="rows", max_wait_ms=20)
    def total(self, rows: Any) -> list[float] | float:
        matrix = np.asarray(rows, dtype=np.float64)
        return float(matrix.sum()) if matrix.ndim == 1 else [float(r.sum()) for r in matrix]

    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    def nap(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def slow_count(self, n: int, seconds: float) -> Iterator[int]:
        for i in range(n):
            time.sleep(seconds)
            yield i

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def unpicklable(self) -> Any:
        return lambda: None

    def crash(self, code: int) -> None:
        os._exit(code)

    def signal_then_hang(self, fifo: str) -> int:
        """First call: write a line to the named pipe ``fifo`` (the test waits for it), then hang.

        Any later call, in this process or a restarted one, answers this process's id at once.
        """
        marker = f"{fifo}.seen"
        if os.path.exists(marker):
            return os.getpid()
        open(marker, "w").close()
        with open(fifo, "w") as pipe:
            pipe.write("running\n")
        threading.Event().wait()
        return os.getpid()


class NoGpu:
    """A backend whose creation fails the way a GPU library does without a GPU."""

    def __init__(self) -> None:
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")


class DiesAtStart:
    """A backend whose creation kills its process (as a crash in a native library would)."""

    def __init__(self) -> None:
        os._exit(7)


class Fallback:
    """The same ``pid`` method, served in the caller's process."""

    def pid(self) -> int:
        return os.getpid()
