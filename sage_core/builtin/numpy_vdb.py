"""Built-in plugin: an exact vector store on numpy (backend ``numpy`` of kind ``vdb``).

Brute-force search: one matrix product per block of queries and ``argpartition`` for the top k,
so a batch of queries (the service layer stacks concurrent callers, see ``@batchable``) costs
little more than one. A metadata filter is answered by an inverted index
(:class:`sage_core.plugin.MetadataIndex`) kept in step with every write, so a selective filter scores only
its matching rows. Options (:class:`NumpyVectorStoreOptions`): ``dim``, ``metric`` and ``path``.
Files are ``.npz`` archives with a JSON header, written atomically (temporary file + rename) and
read without pickle.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sage_core.plugin import (
    BackendSpec,
    BackendUnavailable,
    HitBatch,
    Hits,
    MetadataIndex,
    ReadWriteLock,
    as_matrix,
    copy_metadata,
    as_top_k,
    batchable,
    hookimpl,
)
from sage_core.builtin._files import atomic_write
from sage_core.services.hits import object_column

Metric = Literal["cosine", "ip", "l2"]
METRICS: tuple[str, ...] = get_args(Metric)
FILE_FORMAT = "sage-numpy-vdb/1"
SCORE_BLOCK_BYTES = 64 << 20
"""Upper bound on the score matrix of one block of queries (bounds memory for huge batches)."""


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the exact numpy vector store."""
    register(
        BackendSpec(
            kind="vdb",
            name="numpy",
            factory=NumpyVectorStore,
            devices=("cpu",),
            description="exact brute-force search on numpy; cosine, ip or l2; persistence to .npz",
            options=NumpyVectorStoreOptions,
        )
    )


class NumpyVectorStoreOptions(BaseModel):
    """Options of the ``numpy`` vector store (``services.<name>.options``); its constructor takes the same names."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    dim: int | None = Field(None, ge=1)
    """Vector dimension; learnt from the first add when omitted."""
    metric: Metric = "cosine"
    """Similarity; scores are higher-is-closer (``l2`` gives ``-distance²``, ``cosine`` normalises)."""
    path: str | None = None
    """A ``.npz`` file: loaded at start when it exists, saved on close."""


class NumpyVectorStore:
    """An exact, thread-safe in-memory vector store; options as :class:`NumpyVectorStoreOptions` validates them."""

    def __init__(
        self, dim: int | None = None, metric: Metric = "cosine", path: str | None = None, device: str = "cpu"
    ) -> None:
        if not str(device).startswith(("cpu", "auto")):
            msg = f"the numpy vector store runs on cpu only, not {device!r}; set device: cpu (or auto)"
            raise BackendUnavailable(msg)
        options = NumpyVectorStoreOptions(dim=dim, metric=metric, path=path)
        self.dim: int | None = options.dim
        self.metric = options.metric
        self.path = options.path
        self._lock = ReadWriteLock()
        self._vectors = np.empty((0, self.dim or 0), dtype=np.float32)
        self._aux = np.empty(0, dtype=np.float32)  # 1/|x| (cosine) or |x|² (l2) per row
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._meta: list[dict[str, Any]] = []
        self._index = MetadataIndex()  # metadata filter: field -> value -> rows
        self._n = 0
        self._closed = False
        if path and Path(path).exists():
            self.load(path)

    # ------------------------------------------------------------------ writes

    def add(
        self,
        vectors: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert vectors; an id already stored is a ``ValueError`` (use :meth:`upsert`)."""
        matrix, _ = as_matrix(vectors, None, "add")
        ids = _check_ids(ids, len(matrix), generate=True)
        metas = _check_metadata(metadata, len(matrix))
        with self._lock.write():
            self._check_dim(matrix.shape[1], "add")
            taken = [i for i in ids if i in self._rows]
            if taken:
                msg = f"add: ids already stored: {taken[:5]}; use upsert() to replace them"
                raise ValueError(msg)
            self._append(matrix, ids, metas)
        return ids

    def upsert(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert or replace vectors (and their metadata) by id."""
        matrix, _ = as_matrix(vectors, None, "upsert")
        ids = _check_ids(ids, len(matrix), generate=False)
        metas = _check_metadata(metadata, len(matrix))
        with self._lock.write():
            self._check_dim(matrix.shape[1], "upsert")
            fresh = [j for j, i in enumerate(ids) if i not in self._rows]
            for j, key in enumerate(ids):
                row = self._rows.get(key)
                if row is not None:
                    self._vectors[row] = matrix[j]
                    self._aux[row] = self._row_aux(matrix[j : j + 1])[0]
                    self._index.remove(row, self._meta[row])
                    self._meta[row] = metas[j]
                    self._index.add(row, metas[j])
            if fresh:
                self._append(matrix[fresh], [ids[j] for j in fresh], [metas[j] for j in fresh])
        return ids

    def delete(self, ids: Sequence[str]) -> int:
        """Remove ids; returns how many were stored."""
        ids = _check_ids(ids, None, generate=False)
        removed = 0
        with self._lock.write():
            for key in ids:
                row = self._rows.pop(key, None)
                if row is None:
                    continue
                last = self._n - 1
                self._index.remove(row, self._meta[row])
                if row != last:  # move the last row into the hole
                    self._vectors[row] = self._vectors[last]
                    self._aux[row] = self._aux[last]
                    self._ids[row] = self._ids[last]
                    self._meta[row] = self._meta[last]
                    self._rows[self._ids[row]] = row
                    self._index.remove(last, self._meta[row])
                    self._index.add(row, self._meta[row])
                self._ids.pop()
                self._meta.pop()
                self._n = last
                removed += 1
        return removed

    # ------------------------------------------------------------------ reads

    @batchable(arg="query")
    def search(
        self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None
    ) -> Hits | HitBatch:
        """Exact top-k: the hits of one query (1-D), one row of hits per query (2-D); they read as
        ``list[Hit]`` / ``list[list[Hit]]`` (see :mod:`sage_core.services.hits`)."""
        queries, single = as_matrix(query, None, "search", name="query")
        k = as_top_k(top_k, "search")
        with self._lock.read():
            if self._n and queries.shape[1] != self.dim:
                msg = f"search: query has dimension {queries.shape[1]}, the store holds dimension {self.dim}"
                raise ValueError(msg)
            rows = self._matching_rows(filter) if filter else None
            results = self._search_rows(queries, k, rows)
        return results[0] if single else results

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``{"id", "vector", "metadata"}`` per id (copies), ``None`` for an unknown id."""
        ids = _check_ids(ids, None, generate=False)
        with self._lock.read():
            out: list[dict[str, Any] | None] = []
            for key in ids:
                row = self._rows.get(key)
                if row is None:
                    out.append(None)
                else:
                    out.append({"id": key, "vector": self._vectors[row].copy(), "metadata": copy_metadata(self._meta[row])})
            return out

    def count(self) -> int:
        """Number of stored vectors."""
        return self._n

    # ------------------------------------------------------------------ persistence

    def save(self, path: str) -> None:
        """Write everything to ``path`` atomically (``.npz`` with a JSON header, no pickle)."""
        with self._lock.read():
            try:
                header = json.dumps(
                    {"format": FILE_FORMAT, "dim": self.dim, "metric": self.metric, "metadata": self._meta[: self._n]}
                ).encode()
            except (TypeError, ValueError) as exc:
                msg = f"save: metadata must be JSON-serialisable to be saved ({exc})"
                raise ValueError(msg) from exc
            ids = np.array(self._ids[: self._n], dtype=str) if self._n else np.empty(0, dtype="<U1")
            arrays = {"vectors": self._vectors[: self._n], "ids": ids, "header": np.frombuffer(header, np.uint8)}
            atomic_write(path, lambda f: np.savez(f, **arrays))

    def load(self, path: str) -> None:
        """Replace the contents with what :meth:`save` wrote; a corrupt file raises ``ValueError``."""
        vectors, ids, header = _read_store_file(path)
        if header["metric"] != self.metric:
            msg = f"load: {path} was saved with metric {header['metric']!r}, this store uses {self.metric!r}"
            raise ValueError(msg)
        with self._lock.write():
            if self.dim is not None and len(ids) and vectors.shape[1] != self.dim:
                msg = f"load: {path} holds dimension {vectors.shape[1]}, this store is configured for {self.dim}"
                raise ValueError(msg)
            self.dim = self.dim or header["dim"]
            self._vectors = np.empty((0, vectors.shape[1]), dtype=np.float32)
            self._aux = np.empty(0, dtype=np.float32)
            self._ids, self._rows, self._meta, self._n = [], {}, [], 0
            self._index = MetadataIndex()
            self._append(vectors, ids, [dict(m) for m in header["metadata"]])

    def close(self) -> None:
        """Save to ``path`` when one was configured. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.path:
            self.save(self.path)

    # ------------------------------------------------------------------ internals

    def _check_dim(self, dim: int, method: str) -> None:
        if self.dim is None:
            self.dim = dim
            self._vectors = np.empty((0, dim), dtype=np.float32)
        elif dim != self.dim:
            msg = f"{method}: vectors have dimension {dim}, the store holds dimension {self.dim}"
            raise ValueError(msg)

    def _row_aux(self, matrix: np.ndarray) -> np.ndarray:
        norms_sq = np.einsum("ij,ij->i", matrix, matrix)
        if self.metric == "cosine":
            norms = np.sqrt(norms_sq)
            return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return norms_sq

    def _append(self, matrix: np.ndarray, ids: list[str], metas: list[dict[str, Any]]) -> None:
        count = len(matrix)
        if not count:
            return
        need = self._n + count
        if need > len(self._vectors):
            capacity = max(need, 2 * len(self._vectors), 1024)
            vectors = np.empty((capacity, matrix.shape[1]), dtype=np.float32)
            vectors[: self._n] = self._vectors[: self._n]
            aux = np.empty(capacity, dtype=np.float32)
            aux[: self._n] = self._aux[: self._n]
            self._vectors, self._aux = vectors, aux
        self._vectors[self._n : need] = matrix
        self._aux[self._n : need] = self._row_aux(matrix)
        for offset, (key, meta) in enumerate(zip(ids, metas)):
            self._rows[key] = self._n + offset
            self._index.add(self._n + offset, meta)
        self._ids.extend(ids)
        self._meta.extend(metas)
        self._n = need

    def _matching_rows(self, filter: Mapping[str, Any]) -> np.ndarray:
        if not isinstance(filter, Mapping):
            msg = f"search: filter must be a mapping of metadata key to value(s), got {type(filter).__name__}"
            raise ValueError(msg)
        return self._index.match(filter)

    def _search_rows(self, queries: np.ndarray, top_k: int, rows: np.ndarray | None) -> HitBatch:
        candidates = self._n if rows is None else len(rows)
        if candidates == 0 or len(queries) == 0:
            return HitBatch.empty(len(queries))
        vectors = self._vectors[: self._n] if rows is None else self._vectors[rows]
        aux = self._aux[: self._n] if rows is None else self._aux[rows]
        k = min(top_k, candidates)
        block = max(1, SCORE_BLOCK_BYTES // (4 * candidates))
        tops: list[np.ndarray] = []
        top_scores: list[np.ndarray] = []
        for start in range(0, len(queries), block):
            scores = self._scores(queries[start : start + block], vectors, aux)
            if k < candidates:
                top = np.argpartition(scores, candidates - k, axis=1)[:, candidates - k :]
            else:
                top = np.broadcast_to(np.arange(candidates), scores.shape)
            best = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-best, axis=1, kind="stable")
            tops.append(np.take_along_axis(top, order, axis=1))
            top_scores.append(np.take_along_axis(best, order, axis=1))
        found = np.concatenate(tops)
        if rows is not None:
            found = rows[found]
        # The columns are gathered under the read lock: the lists change in place on writes.
        flat = found.ravel().tolist()
        ids = object_column([self._ids[i] for i in flat]).reshape(found.shape)
        meta = object_column([self._meta[i] for i in flat]).reshape(found.shape)
        return HitBatch(ids, np.concatenate(top_scores), meta, np.full(len(queries), k))

    def _scores(self, queries: np.ndarray, vectors: np.ndarray, aux: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            norms = np.linalg.norm(queries, axis=1, keepdims=True)
            queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
        scores = queries @ vectors.T
        if self.metric == "cosine":
            scores *= aux
        elif self.metric == "l2":
            scores *= 2.0
            scores -= aux
            scores -= np.einsum("ij,ij->i", queries, queries)[:, None]
        return scores


# ---------------------------------------------------------------------- validation


def _check_ids(ids: Sequence[str] | None, count: int | None, *, generate: bool) -> list[str]:
    if ids is None:
        if generate and count is not None:
            return [uuid.uuid4().hex for _ in range(count)]
        msg = "ids are required"
        raise ValueError(msg)
    if isinstance(ids, str):
        ids = [ids]
    ids = list(ids)
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        msg = f"ids must be strings, got {type(bad[0]).__name__} {bad[0]!r}"
        raise ValueError(msg)
    if count is not None:
        if len(ids) != count:
            msg = f"got {len(ids)} ids for {count} vectors"
            raise ValueError(msg)
        if len(set(ids)) != len(ids):
            msg = "ids repeat within one call"
            raise ValueError(msg)
    return ids


def _check_metadata(metadata: Sequence[Mapping[str, Any]] | None, count: int) -> list[dict[str, Any]]:
    if metadata is None:
        return [{} for _ in range(count)]
    metas = list(metadata)
    if len(metas) != count:
        msg = f"got {len(metas)} metadata entries for {count} vectors"
        raise ValueError(msg)
    if not all(m is None or isinstance(m, Mapping) for m in metas):
        msg = "each metadata entry must be a mapping (or None)"
        raise ValueError(msg)
    return [copy_metadata(m) for m in metas]


def _read_store_file(path: str) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            vectors = np.ascontiguousarray(archive["vectors"], dtype=np.float32)
            ids = [str(i) for i in archive["ids"].tolist()]
            header = json.loads(archive["header"].tobytes().decode())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        msg = f"load: {path} is not a numpy vector store file ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from exc
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        msg = f"load: {path} has no {FILE_FORMAT!r} header"
        raise ValueError(msg)
    if vectors.ndim != 2 or len(vectors) != len(ids) or len(ids) != len(header.get("metadata", ())):
        msg = f"load: {path} is inconsistent ({len(vectors)} vectors, {len(ids)} ids)"
        raise ValueError(msg)
    if vectors.size and not np.isfinite(vectors).all():
        msg = f"load: {path} contains NaN or infinite vectors"
        raise ValueError(msg)
    return vectors, ids, header


__all__ = ["METRICS", "Metric", "NumpyVectorStore", "NumpyVectorStoreOptions", "sage_backends"]
