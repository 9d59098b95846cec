"""``VDBService``: the FAISS vector store behind the ``VectorStore`` contract.

Use it directly, register it in a flow, or name it in a config::

    env.register_service("vdb_service", lambda: VDBService())            # dim from the first add
    env.register_service("vdb_service", lambda: VDBService(384, index="HNSW32", metric="ip"))
    # services: {vdb_service: {kind: vdb, backend: faiss, device: auto, options: {index: "IVF1024,Flat"}}}

Every method takes the store's lock: FAISS indexes are not safe to search while they change, and a
GPU resources object must not serve two calls at once. Concurrent searches arriving through the
service layer are stacked into one call by ``@batchable``, so the lock costs one FAISS call per
batch rather than one per caller.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Mapping, Sequence

import numpy as np

from sage_core.plugin import HitBatch, Hits, as_matrix, as_top_k, batchable, copy_metadata
from sage_vdb_faiss.config import FaissConfig
from sage_vdb_faiss.devices import resolve_placement
from sage_vdb_faiss.engine import FaissEngine
from sage_vdb_faiss.inputs import as_filter, as_ids, as_lookup_ids, as_metadata
from sage_vdb_faiss.metadata import MetadataIndex
from sage_vdb_faiss.persistence import read_store, write_store
from sage_vdb_faiss.table import VectorTable

HIT_ARRAY = np.dtype([("id", object), ("score", np.float32)])
"""The dtype of :meth:`VDBService.search_arrays` results: one ``(id, score)`` per hit."""

def _calls_in_flight(store: "VDBService") -> int:
    """Stacked searches in flight per replica: two on a GPU (host work overlaps the search), else one.

    On the CPU FAISS itself uses every core, and a second call in flight would only split the
    waiting queries into two smaller, slower batches.
    """
    return 2 if store.on_gpu else 1


class VDBService:
    """A vector store on FAISS: string ids, metadata, filters, persistence, CPU or GPU.

    ``dim`` may be omitted (learnt from the first vectors added). Other options, all keyword:
    ``index`` (a ``faiss.index_factory`` string, default ``"Flat"``), ``metric`` (``cosine``,
    ``ip`` or ``l2``), ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), ``nprobe``,
    ``ef_search``, ``train_min``, ``train_max``, ``fp16``, ``gpu_temp_memory_mb``, ``multi_gpu``
    (``shard`` or ``replicate``), ``rebuild_ratio``, ``filter_exact_max``, ``seed``; see
    :class:`~sage_vdb_faiss.config.FaissConfig`. ``device="cuda"`` without a GPU raises
    :class:`sage_core.plugin.BackendUnavailable`.
    """

    def __init__(self, dim: int | None = None, **options: Any) -> None:
        self.config = FaissConfig.from_options({"dim": dim, **options})
        self._planned = resolve_placement(self.config, None)  # a missing GPU fails now, not at the first add
        self.dim: int | None = None
        self._lock = threading.RLock()
        self._table: VectorTable | None = None
        self._engine: FaissEngine | None = None
        self._metadata = MetadataIndex()
        self._closed = False
        self._searches = 0
        self._queries = 0
        if self.config.dim is not None:
            self._start(self.config.dim)

    def __repr__(self) -> str:
        return (
            f"VDBService(index={self.config.index!r}, metric={self.config.metric!r}, dim={self.dim}, "
            f"device={self.device!r}, count={self.count()})"
        )

    @property
    def device(self) -> str:
        """Where the index lives: ``cpu``, ``cuda:0``, ``cuda:0,1 (shard)``; ``pending`` before dim is known."""
        return "pending" if self._engine is None else str(self._engine.placement)

    @property
    def on_gpu(self) -> bool:
        """Whether searches run on a GPU (as the config plans it until the dimension is known)."""
        return (self._planned if self._engine is None else self._engine.placement).on_gpu

    # ------------------------------------------------------------------ writes

    def add(
        self,
        vectors: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert vectors (ids generated when ``ids`` is None); an id already stored is a ``ValueError``."""
        where = "VDBService.add"
        with self._lock:
            self._check_open(where)
            matrix, _ = as_matrix(vectors, self.dim, where)
            count = len(matrix)
            ids = [uuid.uuid4().hex for _ in range(count)] if ids is None else as_ids(ids, count, where)
            metas = as_metadata(metadata, count, where)
            if count == 0:
                return []
            table = self._ready(matrix.shape[1])
            taken = [item for item in ids if item in table.row_of]
            if taken:
                raise ValueError(
                    f"{where}: {len(taken)} id(s) already stored, e.g. {taken[0]!r}; use upsert() to replace them"
                )
            self._write(matrix, ids, metas or [{} for _ in ids], replaced={})
            return ids

    def upsert(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert or replace vectors and their metadata by id (metadata ``None`` stores ``{}``)."""
        where = "VDBService.upsert"
        with self._lock:
            self._check_open(where)
            matrix, _ = as_matrix(vectors, self.dim, where)
            ids = as_ids(ids, len(matrix), where)
            metas = as_metadata(metadata, len(matrix), where)
            if not ids:
                return []
            table = self._ready(matrix.shape[1])
            replaced = {item: table.row_of[item] for item in ids if item in table.row_of}
            self._write(matrix, ids, metas or [{} for _ in ids], replaced=replaced)
            return ids

    def delete(self, ids: Sequence[str]) -> int:
        """Remove ids; returns how many existed (unknown ids are skipped)."""
        where = "VDBService.delete"
        with self._lock:
            self._check_open(where)
            wanted = as_lookup_ids(ids, where)
            if self._table is None:
                return 0
            rows = sorted({self._table.row_of[item] for item in wanted if item in self._table.row_of})
            self._kill(np.asarray(rows, dtype=np.int64))
            self._compact_if_needed()
            return len(rows)

    # ------------------------------------------------------------------ reads

    @batchable(arg="query", max_in_flight=_calls_in_flight)
    def search(self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None) -> Hits | HitBatch:
        """Nearest neighbours: the hits of one query (1-D), or one row of hits per query (2-D).

        Scores are higher-is-closer (cosine similarity, inner product, or ``-distance²`` for l2).
        ``filter`` keeps hits whose metadata equals every given value (a list value means one of);
        ``top_k`` above the number of matching vectors returns them all. The result reads as
        ``list[Hit]`` (``list[list[Hit]]`` for a batch) but holds columns; see :mod:`sage_core.services.hits`.
        """
        queries, single, _, found = self._find(query, top_k, filter, "VDBService.search")
        batch = HitBatch.empty(queries) if found is None else HitBatch.from_rows(*found)
        return batch[0] if single else batch

    @batchable(arg="query", max_in_flight=_calls_in_flight)
    def search_arrays(self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None) -> np.ndarray:
        """:meth:`search` as one structured array, fields ``id`` (object) and ``score`` (float32).

        Shape ``(rows, top_k)`` for a batch, ``(top_k,)`` for one 1-D query; slots past the available
        matches hold id ``None`` and score ``-inf``. No metadata is read (:meth:`get` has it).
        """
        queries, single, k, found = self._find(query, top_k, filter, "VDBService.search_arrays")
        # np.zeros, not np.empty: numpy fills a structured array's object field one element at a
        # time in np.empty (about 4x the cost of calloc's zeros); every slot is then written below.
        out = np.zeros((queries, k), dtype=HIT_ARRAY)
        width = 0 if found is None else found[0].shape[1]
        out["score"][:, width:] = -np.inf
        out["id"][:, width:] = None
        if found is not None:
            hits, scores, ids, _ = found
            out["score"][:, :width] = scores
            out["id"][:, :width] = ids[hits]  # object copies hold the GIL: two passes, not four
            missing = hits < 0
            if missing.any():
                out["score"][:, :width][missing] = -np.inf
                out["id"][:, :width][missing] = None
        return out[0] if single else out

    def _find(
        self, query: np.ndarray, top_k: int, filter: Mapping[str, Any] | None, where: str
    ) -> tuple[int, bool, int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]:
        """The search both result forms share: the number of queries, whether one 1-D query came,
        ``k``, and the rows found with their scores and the table's id and metadata columns
        (``None`` when nothing is stored or no query came).

        Only the FAISS call holds the store's lock; checking the queries before it and building the
        result after it do not (see :meth:`VectorTable.columns`), so with two stacked calls in
        flight on a GPU the index searches one batch while the next is prepared and the last split.
        """
        k = as_top_k(top_k, where)
        wanted = as_filter(filter, where)
        dim = self.dim
        matrix, single = as_matrix(query, dim, where, name="query")
        queries = self._to_index_space(matrix)[0]
        found = None
        with self._lock:
            self._check_open(where)
            table, engine = self._table, self._engine
            if table is not None and engine is not None and len(matrix):
                if dim is None:  # the first vectors were added meanwhile: check against their dim
                    as_matrix(matrix, self.dim, where, name="query")
                rows = None if wanted is None else self._metadata.match(wanted)
                scores, hits = engine.search(table, queries, k, rows)
                found = (hits, scores, *table.columns())
            self._searches += 1
            self._queries += len(matrix)
        return len(matrix), single, k, found

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``{"id", "vector", "metadata"}`` per id (copies), ``None`` for an unknown id."""
        where = "VDBService.get"
        with self._lock:
            self._check_open(where)
            wanted = as_lookup_ids(ids, where)
            table = self._table
            out: list[dict[str, Any] | None] = []
            for item in wanted:
                row = None if table is None else table.row_of.get(item)
                if row is None or table is None:
                    out.append(None)
                else:
                    out.append({"id": item, "vector": table.original(row), "metadata": copy_metadata(table.metadata[row])})
            return out

    def count(self) -> int:
        """Number of stored vectors."""
        table = self._table
        return 0 if table is None else table.live_count

    def stats(self) -> dict[str, Any]:
        """Figures for monitoring: sizes, index state, device, and search calls made."""
        with self._lock:
            table, engine = self._table, self._engine
            return {
                "index": self.config.index,
                "metric": self.config.metric,
                "device": self.device,
                "dim": self.dim,
                "count": self.count(),
                "rows": 0 if table is None else table.rows,
                "dead_rows": 0 if table is None else table.dead_count,
                "trained": bool(engine and engine.trained),
                "searches": self._searches,
                "queries": self._queries,
                "faiss_calls": 0 if engine is None else engine.calls,
            }

    # ------------------------------------------------------------------ persistence

    def save(self, path: str) -> None:
        """Write ids, vectors, metadata and the index to one file atomically (see ``persistence``)."""
        with self._lock:
            self._check_open("VDBService.save")
            engine = self._engine
            index = None
            if engine is not None:
                index = engine.cpu_index() if engine.cpu_index() is not None else engine.trained_empty_index()
            manifest = {
                "dim": self.dim,
                "metric": self.config.metric,
                "index": self.config.index,
                "rows": 0 if self._table is None else self._table.rows,
                "live": self.count(),
            }
            write_store(path, manifest, self._table, index)

    def load(self, path: str) -> None:
        """Replace the contents with what :meth:`save` wrote.

        The file's dimension must match this store's (when known) and its metric must match;
        the file's index type is adopted. A corrupt or truncated file raises ``ValueError`` and
        leaves the store as it was.
        """
        where = "VDBService.load"
        with self._lock:
            self._check_open(where)
            saved = read_store(path, where)
            if self.dim is not None and saved.dim is not None and saved.dim != self.dim:
                raise ValueError(
                    f"{where}: {path!r} holds dimension {saved.dim}, this store has dimension {self.dim} "
                    f"(option dim); load it into a store of dimension {saved.dim}"
                )
            if saved.manifest["metric"] != self.config.metric:
                raise ValueError(
                    f"{where}: {path!r} was saved with metric {saved.manifest['metric']!r}, this store uses "
                    f"{self.config.metric!r}; create the store with metric={saved.manifest['metric']!r}"
                )
            config = self.config.replace(index=saved.manifest["index"])
            dim = saved.dim if saved.dim is not None else self.dim
            if dim is None:
                self._replace(config, None, None, MetadataIndex())
                return
            table = VectorTable(dim)
            table.restore(saved.vectors, saved.norms, saved.alive, saved.ids, saved.metadata)
            engine = FaissEngine(config, dim)
            if saved.index is not None:
                engine.restore(saved.index, table)
            elif table.live_count >= engine.train_min and not engine.trained:
                engine.train(table)
            metadata = MetadataIndex()
            metadata.rebuild(table.metadata)
            self._replace(config, table, engine, metadata)

    def close(self) -> None:
        """Release the index and any GPU memory. Idempotent; later calls raise ``RuntimeError``."""
        with self._lock:
            if self._engine is not None:
                self._engine.close()
            self._closed = True

    # ------------------------------------------------------------------ internals

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise RuntimeError(f"{where}: the store is closed; create a new VDBService")

    def _start(self, dim: int) -> None:
        self._engine = FaissEngine(self.config, dim)
        self._table = VectorTable(dim)
        self.dim = dim

    def _ready(self, dim: int) -> VectorTable:
        if self._table is None:
            self._start(dim)
        assert self._table is not None
        return self._table

    def _to_index_space(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors as the index stores them, and the factor that restores each original."""
        if not self.config.normalise:
            return matrix, np.ones(len(matrix), dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
        unit = np.divide(matrix, norms[:, None], out=np.zeros_like(matrix), where=norms[:, None] > 0)
        return unit, norms

    def _write(
        self, matrix: np.ndarray, ids: list[str], metas: list[dict[str, Any]], replaced: dict[str, int]
    ) -> None:
        """Append rows and index them; on failure undo the append, so the store stays as it was."""
        table, engine = self._table, self._engine
        assert table is not None and engine is not None
        before = table.rows
        vectors, norms = self._to_index_space(matrix)
        rows = table.append(vectors, norms, ids, metas)
        try:
            engine.append(table, rows)
        except BaseException:
            table.truncate(before)
            table.row_of.update(replaced)
            engine.rebuild(table)
            raise
        for row, entry in zip(rows.tolist(), metas):
            self._metadata.add(row, entry)
        self._kill(np.asarray(sorted(replaced.values()), dtype=np.int64))
        self._compact_if_needed()

    def _kill(self, rows: np.ndarray) -> None:
        table = self._table
        if table is None or len(rows) == 0:
            return
        for row in rows.tolist():
            entry = table.metadata[row]
            if entry is not None:
                self._metadata.remove(row, entry)
        table.kill(rows)

    def _compact_if_needed(self) -> None:
        table, engine = self._table, self._engine
        if table is None or engine is None or not engine.needs_compaction(table):
            return
        table.compact()
        self._metadata.rebuild(table.metadata)
        engine.rebuild(table)

    def _replace(
        self, config: FaissConfig, table: VectorTable | None, engine: FaissEngine | None, metadata: MetadataIndex
    ) -> None:
        if self._engine is not None:
            self._engine.close()
        self.config, self._table, self._engine, self._metadata = config, table, engine, metadata
        self.dim = None if table is None else table.dim
