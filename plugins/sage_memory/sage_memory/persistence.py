"""Snapshots of the three stores under one manifest, so they are always loaded as a consistent set.

A memory directory holds::

    manifest.json           which generation is current, its files' sizes and hashes, its journal
    gen-000007/kv|vector|graph   the stores as their own ``save()`` wrote them
    journal-000007.jsonl    operations since that snapshot (see :mod:`sage_memory.journal`)

A checkpoint writes the stores into a new generation directory, flushes it to disk, then replaces
``manifest.json`` atomically; only then are older generations and journals removed. A process killed
at any point leaves the previous manifest naming a complete generation and its journal, so a reload
is consistent; a half-written generation is ignored and removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sage_memory.config import PERSISTED_PARTS
from sage_memory.stores import MemoryStores

MANIFEST = "manifest.json"
LOCK_FILE = "lock"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """The current snapshot of a memory directory."""

    generation: int = 0
    journal: str = "journal-000000.jsonl"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Relative path -> ``{"size", "sha256"}`` of every file the stores wrote."""
    backends: dict[str, str] = field(default_factory=dict)
    """Part -> backend name that wrote the snapshot."""
    created_at: float = 0.0
    format: int = FORMAT_VERSION


class MemoryDirectory:
    """Reads and writes the snapshots and manifest of one memory directory.

    Holds an exclusive lock on the directory until :meth:`release`, so two memories (two replicas,
    two processes) never write the same directory; the OS drops the lock when the process dies.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self._lock_file = open(os.path.join(self.root, LOCK_FILE), "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            msg = (
                f"memory directory {self.root} is in use by another MemoryService; close that one first, "
                "or give each memory (each replica) its own path"
            )
            raise RuntimeError(msg) from None

    def release(self) -> None:
        """Give up the directory lock (idempotent)."""
        if not self._lock_file.closed:
            self._lock_file.close()

    @property
    def manifest_path(self) -> str:
        """Where the manifest lives."""
        return os.path.join(self.root, MANIFEST)

    def journal_path(self, manifest: Manifest) -> str:
        """The journal that follows ``manifest``'s snapshot."""
        return os.path.join(self.root, manifest.journal)

    def read_manifest(self) -> Manifest:
        """The current manifest; a directory without one is generation 0 (empty stores)."""
        if not os.path.exists(self.manifest_path):
            return Manifest()
        try:
            with open(self.manifest_path, encoding="utf-8") as handle:
                manifest = Manifest(**json.load(handle))
        except (ValueError, TypeError) as exc:
            msg = f"memory manifest {self.manifest_path} is unreadable ({exc}); restore the directory from a backup"
            raise ValueError(msg) from exc
        if manifest.format != FORMAT_VERSION:
            msg = f"memory manifest {self.manifest_path} has format {manifest.format}, this sage-memory reads {FORMAT_VERSION}"
            raise ValueError(msg)
        return manifest

    def load(self, manifest: Manifest, stores: MemoryStores, backends: dict[str, str]) -> None:
        """Load ``manifest``'s snapshot into ``stores`` after checking backends and file hashes."""
        if manifest.generation == 0:
            return
        for part, name in manifest.backends.items():
            if backends.get(part) != name:
                msg = (
                    f"memory directory {self.root} was saved with {part} backend {name!r} but the config asks for "
                    f"{backends.get(part)!r}; use the same backend, or start a new directory"
                )
                raise ValueError(msg)
        for relative, expected in manifest.files.items():
            actual = _describe_file(os.path.join(self.root, relative))
            if actual != expected:
                msg = f"memory snapshot file {os.path.join(self.root, relative)} is missing or damaged ({actual} != {expected})"
                raise ValueError(msg)
        gen_dir = self._gen_dir(manifest.generation)
        for part in PERSISTED_PARTS:
            getattr(stores, part).load(os.path.join(gen_dir, part))

    def checkpoint(self, current: Manifest, stores: MemoryStores, backends: dict[str, str]) -> Manifest:
        """Write a new generation from ``stores``, switch the manifest to it, drop older ones."""
        generation = current.generation + 1
        gen_dir = self._gen_dir(generation)
        shutil.rmtree(gen_dir, ignore_errors=True)  # left by a checkpoint that was killed
        os.makedirs(gen_dir)
        for part in PERSISTED_PARTS:
            getattr(stores, part).save(os.path.join(gen_dir, part))
        files = {}
        for directory, _, names in os.walk(gen_dir):
            for name in sorted(names):
                path = os.path.join(directory, name)
                _fsync_file(path)
                files[os.path.relpath(path, self.root)] = _describe_file(path)
            _fsync_dir(directory)
        manifest = Manifest(
            generation=generation,
            journal=f"journal-{generation:06d}.jsonl",
            files=files,
            backends=dict(backends),
            created_at=time.time(),
        )
        with open(self.journal_path(manifest), "wb") as handle:
            os.fsync(handle.fileno())
        self._write_manifest(manifest)
        self.remove_unreferenced(manifest)
        return manifest

    def remove_unreferenced(self, manifest: Manifest) -> None:
        """Delete generations, journals and temporary files that ``manifest`` does not name."""
        keep = {self._gen_dir(manifest.generation), self.journal_path(manifest), self.manifest_path}
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if path in keep or not name.startswith(("gen-", "journal-", MANIFEST + ".")):
                continue
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)

    def _gen_dir(self, generation: int) -> str:
        return os.path.join(self.root, f"gen-{generation:06d}")

    def _write_manifest(self, manifest: Manifest) -> None:
        tmp = self.manifest_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(asdict(manifest), handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.manifest_path)
        _fsync_dir(self.root)


def _describe_file(path: str) -> dict[str, Any] | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}


def _fsync_file(path: str) -> None:
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
