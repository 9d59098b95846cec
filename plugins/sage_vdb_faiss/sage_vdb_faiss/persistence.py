"""Saving and loading a store as one zip file: manifest, vectors, ids, metadata and the FAISS index.

Layout (uncompressed zip, no pickle anywhere)::

    manifest.json   format name, format version, dim, metric, index string, row counts
    vectors.npy     float32 (rows, dim) as indexed (unit length for cosine), dead rows included
                    so that row r stays slot r
    norms.npy       float32 (rows,): the factor that restores each original vector
    alive.npy       bool (rows,)
    ids.json        one string per row, null for a dead row
    metadata.json   one dict per row, null for a dead row
    index.faiss     faiss.write_index output: the full CPU index, or the trained empty index when
                    the store lives on GPUs (refilled from vectors.npy on load); absent if untrained

The file is written beside its destination under a temporary name, flushed, synced and renamed
over the destination, so a reader sees the old file or the new one, never half of one. Zip CRCs
catch corruption; a truncated file has no central directory. Either is a ``ValueError``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from sage_vdb_faiss.inputs import describe_error
from sage_vdb_faiss.table import VectorTable

FORMAT = "sage-vdb-faiss"
VERSION = 1


@dataclass
class SavedStore:
    """What :func:`read_store` found in a file, checked for consistency."""

    manifest: dict[str, Any]
    vectors: np.ndarray
    norms: np.ndarray
    alive: np.ndarray
    ids: list[str | None]
    metadata: list[dict[str, Any] | None]
    index: faiss.Index | None

    @property
    def dim(self) -> int | None:
        """The vector dimension the file was saved with (``None`` for an empty, unsized store)."""
        return self.manifest["dim"]


def write_store(path: str, manifest: dict[str, Any], table: VectorTable | None, index: faiss.Index | None) -> None:
    """Write a store to ``path`` atomically (temporary file in the same directory, then rename)."""
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    manifest = {"format": FORMAT, "version": VERSION, **manifest}
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.writestr("manifest.json", json.dumps(manifest))
                dim = manifest["dim"] or 0
                vectors = table.vectors if table is not None else np.empty((0, dim), dtype=np.float32)
                norms = table.norms if table is not None else np.zeros(0, dtype=np.float32)
                alive = table.alive if table is not None else np.zeros(0, dtype=bool)
                with archive.open("vectors.npy", "w", force_zip64=True) as member:
                    np.save(member, vectors, allow_pickle=False)
                with archive.open("norms.npy", "w") as member:
                    np.save(member, norms, allow_pickle=False)
                with archive.open("alive.npy", "w") as member:
                    np.save(member, alive, allow_pickle=False)
                archive.writestr("ids.json", json.dumps(table.ids.tolist() if table is not None else []))
                archive.writestr("metadata.json", json.dumps(table.metadata.tolist() if table is not None else []))
                if index is not None:
                    with archive.open("index.faiss", "w", force_zip64=True) as member:
                        faiss.write_index(index, faiss.PyCallbackIOWriter(member.write))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def read_store(path: str, where: str) -> SavedStore:
    """Read and check a file written by :func:`write_store`.

    A missing file is ``FileNotFoundError``; anything unreadable, inconsistent or of another
    format or version is a ``ValueError`` that says which and how to recover.
    """
    target = os.fspath(path)
    if not os.path.exists(target):
        raise FileNotFoundError(f"{where}: no saved store at {target!r}; call save(path) first or fix the path")
    try:
        with zipfile.ZipFile(target) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            _check_manifest(manifest, target, where)
            with archive.open("vectors.npy") as member:
                vectors = np.load(member, allow_pickle=False)
            with archive.open("norms.npy") as member:
                norms = np.load(member, allow_pickle=False)
            with archive.open("alive.npy") as member:
                alive = np.load(member, allow_pickle=False)
            ids = json.loads(archive.read("ids.json"))
            metadata = json.loads(archive.read("metadata.json"))
            index = None
            if "index.faiss" in archive.namelist():
                with archive.open("index.faiss") as member:
                    index = faiss.read_index(faiss.PyCallbackIOReader(member.read))
    except _FormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{where}: {target!r} is truncated or corrupt ({type(exc).__name__}: {describe_error(exc)}); "
            f"restore it from a backup or save the store again"
        ) from None
    saved = SavedStore(manifest, vectors, norms, alive, ids, metadata, index)
    _check_consistent(saved, target, where)
    return saved


class _FormatError(ValueError):
    """A readable file of another format or version."""


def _check_manifest(manifest: Any, target: str, where: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise _FormatError(f"{where}: {target!r} is not a {FORMAT} file (format {found!r}); load a file written by save()")
    if manifest.get("version") != VERSION:
        raise _FormatError(
            f"{where}: {target!r} has {FORMAT} format version {manifest.get('version')!r}, this version reads "
            f"{VERSION}; load it with the sage-vdb-faiss release that wrote it and save again"
        )
    for key in ("dim", "metric", "index", "rows"):
        if key not in manifest:
            raise _FormatError(f"{where}: {target!r} manifest lacks {key!r}; the file is damaged, save the store again")


def _check_consistent(saved: SavedStore, target: str, where: str) -> None:
    rows, dim = saved.manifest["rows"], saved.manifest["dim"]
    problems = []
    if saved.vectors.dtype != np.float32 or saved.vectors.shape != (rows, dim or 0):
        problems.append(f"vectors have shape {saved.vectors.shape} {saved.vectors.dtype}, expected ({rows}, {dim}) float32")
    if saved.norms.dtype != np.float32 or saved.norms.shape != (rows,):
        problems.append(f"norms have shape {saved.norms.shape}, expected ({rows},)")
    if saved.alive.dtype != bool or saved.alive.shape != (rows,):
        problems.append(f"alive mask has shape {saved.alive.shape}, expected ({rows},)")
    if not isinstance(saved.ids, list) or len(saved.ids) != rows:
        problems.append(f"ids list has {len(saved.ids) if isinstance(saved.ids, list) else '?'} entries, expected {rows}")
    if not isinstance(saved.metadata, list) or len(saved.metadata) != rows:
        problems.append("metadata list length does not match the rows")
    if not problems:
        live_ids = [item for item, alive in zip(saved.ids, saved.alive.tolist()) if alive]
        if any(not isinstance(item, str) for item in live_ids) or len(set(live_ids)) != len(live_ids):
            problems.append("live ids are not distinct strings")
    if saved.index is not None:
        if saved.index.d != dim:
            problems.append(f"index dimension {saved.index.d} differs from the manifest's {dim}")
        if saved.index.ntotal not in (0, rows):
            problems.append(f"index holds {saved.index.ntotal} vectors for {rows} rows")
    if problems:
        raise ValueError(f"{where}: {target!r} is inconsistent ({'; '.join(problems)}); save the store again")


def _sync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
