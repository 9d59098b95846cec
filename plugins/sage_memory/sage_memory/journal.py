"""The write-ahead journal of a persistent memory: one checksummed JSON line per operation.

Every change is appended here *before* it reaches the three stores, so a process killed between two
store writes loses nothing that was acknowledged: on reload the last snapshot is loaded and the
journal replayed on top of it. A line is ``<crc32 hex> <json>\\n``; a torn last line (the process died
while writing it) is dropped and cut off, a bad line followed by good ones means the file was damaged
and raises ``ValueError``.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from typing import Any, BinaryIO, Iterator

import numpy as np


class Journal:
    """An append-only operation log at ``path``; ``durability`` is ``flush`` or ``fsync`` per append."""

    def __init__(self, path: str, durability: str = "flush") -> None:
        self.path = path
        self.durability = durability
        self._file: BinaryIO | None = None
        self.appended = 0
        """Entries appended since this journal was opened."""

    def replay(self) -> Iterator[dict[str, Any]]:
        """Yield the journal's entries in order, cutting off a torn last line first."""
        if not os.path.exists(self.path):
            return iter(())
        entries, good_length = read_entries(self.path)
        if good_length != os.path.getsize(self.path):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_length)
                os.fsync(handle.fileno())
        return iter(entries)

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry; it is durable against a process kill when this returns."""
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the journal's lifetime
        payload = json.dumps(entry, separators=(",", ":")).encode()
        self._file.write(b"%08x %s\n" % (zlib.crc32(payload), payload))
        self._file.flush()
        if self.durability == "fsync":
            os.fsync(self._file.fileno())
        self.appended += 1

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_entries(path: str) -> tuple[list[dict[str, Any]], int]:
    """The valid entries of the journal at ``path`` and the byte length they occupy."""
    entries: list[dict[str, Any]] = []
    good_length = 0
    bad_line: int | None = None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            entry = _decode(line)
            if entry is None:
                bad_line = bad_line or number
                continue
            if bad_line is not None:
                msg = (
                    f"memory journal {path} is damaged at line {bad_line} (valid lines follow it); "
                    "restore the directory from a backup or delete the journal to fall back to the last snapshot"
                )
                raise ValueError(msg)
            entries.append(entry)
            good_length += len(line)
    return entries, good_length


def _decode(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        entry = json.loads(payload)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def encode_vectors(vectors: np.ndarray) -> dict[str, Any]:
    """A float32 matrix as JSON-friendly data (shape and base64 bytes)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    return {"shape": list(matrix.shape), "data": base64.b64encode(matrix.tobytes()).decode()}


def decode_vectors(data: dict[str, Any]) -> np.ndarray:
    """The matrix :func:`encode_vectors` encoded."""
    raw = base64.b64decode(data["data"])
    return np.frombuffer(raw, dtype=np.float32).reshape(data["shape"]).copy()
