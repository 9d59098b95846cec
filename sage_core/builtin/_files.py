"""File helpers shared by the built-in stores (not a plugin: not in DEFAULT_PLUGINS)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file in the same folder, fsync it, then rename it over ``path``.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["atomic_write"]
