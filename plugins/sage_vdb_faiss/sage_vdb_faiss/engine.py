"""One store's FAISS index: built from a factory string, trained when enough rows exist, searched
with tombstones and metadata filters, on the CPU or on GPUs.

The index is positional: slot ``r`` holds row ``r`` of the :class:`~sage_vdb_faiss.table.VectorTable`.
Until an untrained index (IVF, PQ) has ``train_min`` rows, searches scan the table exactly; the row
that crosses the threshold trains it and every row is added. Dead rows stay in the index and are
skipped in results (``k`` widened by their number) until the store compacts and rebuilds.
"""

from __future__ import annotations

import logging
from typing import Callable

import faiss
import numpy as np

from sage_core import ConfigError

from sage_vdb_faiss.config import FaissConfig
from sage_vdb_faiss.devices import GPU_MAX_K, GpuPlacer, Placement, resolve_placement
from sage_vdb_faiss.inputs import describe_error
from sage_vdb_faiss.table import VectorTable

log = logging.getLogger(__name__)

SearchResult = tuple[np.ndarray, np.ndarray]
"""``(scores, rows)``, both ``(n_queries, k)``; score higher is closer, row ``-1`` pads a short list."""


class FaissEngine:
    """The FAISS side of a store; the caller holds the store lock around every method."""

    def __init__(self, config: FaissConfig, dim: int) -> None:
        self.config = config
        self.dim = dim
        try:
            template = faiss.index_factory(dim, config.index, config.faiss_metric)
        except RuntimeError as exc:
            raise ConfigError(
                f"faiss vdb: cannot build index {config.index!r} for dimension {dim}: {describe_error(exc)}; "
                f"use a faiss.index_factory string such as 'Flat', 'HNSW32', 'IVF1024,Flat' or 'IVF1024,PQ32'"
            ) from None
        self.placement: Placement = resolve_placement(config, template)
        self._gpu = GpuPlacer(self.placement, config) if self.placement.on_gpu else None
        self.max_k = GPU_MAX_K if self.placement.on_gpu else None
        self._template = template
        self._ivf = faiss.try_extract_index_ivf(template)
        self._hnsw = _hnsw_of(template)
        self.train_min = self._train_min(template)
        self._selector_params = None if self.placement.on_gpu else self._params_factory(template)
        self._empty: faiss.Index | None = template if template.is_trained else None
        self.index: faiss.Index | None = None
        if self._empty is not None:
            self.index = self._place(faiss.clone_index(self._empty))
        self.calls = 0
        """FAISS search calls made (index or exact); tests read it to see coalescing."""

    # ------------------------------------------------------------------ state

    @property
    def trained(self) -> bool:
        """Whether the index is trained (until then searches scan the buffered rows exactly)."""
        return self._empty is not None

    def trained_empty_index(self) -> faiss.Index | None:
        """A CPU copy of the trained index without vectors (what persistence stores for GPU indexes)."""
        return None if self._empty is None else faiss.clone_index(self._empty)

    def cpu_index(self) -> faiss.Index | None:
        """The full index on the CPU when it lives there, else ``None``."""
        return None if self.placement.on_gpu else self.index

    # ------------------------------------------------------------------ writes

    def append(self, table: VectorTable, rows: np.ndarray) -> None:
        """Index rows just appended to the table, training first when the threshold is reached."""
        if not self.trained:
            if table.live_count >= self.train_min:
                self.train(table)
            return
        if self.index is None:  # an earlier rebuild failed part way: build again with every row
            self.rebuild(table)
            return
        start, stop = int(rows[0]), int(rows[-1]) + 1
        self.index.add(table.vectors[start:stop])

    def train(self, table: VectorTable) -> None:
        """Train on (a sample of) the live rows, then index every row."""
        live = table.live_rows()
        sample = live
        if self.config.train_max is not None and len(live) > self.config.train_max:
            rng = np.random.default_rng(self.config.seed)
            sample = np.sort(rng.choice(live, self.config.train_max, replace=False))
        trained = faiss.clone_index(self._template)
        trained.train(np.ascontiguousarray(table.vectors[sample]))
        self._empty = trained
        log.info("faiss vdb: trained %s on %d vectors", self.config.index, len(sample))
        self.rebuild(table)

    def rebuild(self, table: VectorTable) -> None:
        """Index every table row afresh (after compaction or training)."""
        if self._empty is None:
            return
        self.index = None  # drop the stale index first, so GPU memory holds one copy at a time
        index = self._place(faiss.clone_index(self._empty))
        if table.rows:
            index.add(table.vectors)
        self.index = index

    def restore(self, index: faiss.Index, table: VectorTable) -> None:
        """Adopt a loaded index: a full CPU index is placed as is, an empty trained one is refilled."""
        self._empty = faiss.clone_index(index) if index.ntotal == 0 else _emptied(index)
        if index.ntotal == 0 or self.placement.on_gpu:
            self.rebuild(table)
        else:
            self._tune(index)
            self.index = index

    def needs_compaction(self, table: VectorTable) -> bool:
        """Whether dead rows have passed ``rebuild_ratio`` of all rows."""
        return table.dead_count > 0 and table.dead_count > self.config.rebuild_ratio * table.rows

    def close(self) -> None:
        """Drop the index, then the GPU resources it used."""
        self.index = None
        if self._gpu is not None:
            self._gpu.close()

    # ------------------------------------------------------------------ search

    def search(self, table: VectorTable, queries: np.ndarray, k: int, rows: np.ndarray | None) -> SearchResult:
        """Top-``k`` live rows per query, among ``rows`` when a filter gave them.

        Every query gets ``min(k, candidates)`` results: a query the index answers short (a
        selective filter, few vectors in the probed IVF lists) is answered again exactly.
        """
        candidates = table.live_count if rows is None else len(rows)
        k = min(k, candidates)
        if k == 0:
            return _empty_result(len(queries))
        if self.index is None or (rows is not None and len(rows) <= self.config.filter_exact_max):
            return self.exact(table, queries, k, rows)
        if rows is None:
            widened = min(k + table.dead_count, table.rows)
            result = self._index_search(queries, widened, table.alive if table.dead_count else None, k)
        elif self._selector_params is not None:
            result = self._prefiltered_search(table, queries, k, rows)
        else:
            result = self._postfiltered_search(table, queries, k, rows)
        return self._complete(table, queries, k, rows, result)

    def exact(self, table: VectorTable, queries: np.ndarray, k: int, rows: np.ndarray | None) -> SearchResult:
        """Brute-force top-``k`` over live rows (or ``rows``) of the host copy."""
        self.calls += 1
        if rows is None and table.dead_count == 0:
            base, mapping = table.vectors, None
        else:
            mapping = table.live_rows() if rows is None else rows
            base = np.ascontiguousarray(table.vectors[mapping])
        k = min(k, len(base))
        if k == 0:
            return _empty_result(len(queries))
        distances, labels = faiss.knn(queries, base, k, metric=self.config.faiss_metric)
        found = labels if mapping is None else np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)
        return self._scores(distances), found

    def _index_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None, keep: int) -> SearchResult:
        """``index.search`` with ``k`` widened past rows that ``allowed`` excludes (None: all allowed)."""
        if self.max_k is not None and k > self.max_k:
            return _empty_result(len(queries), keep)
        self.calls += 1
        assert self.index is not None
        distances, labels = self.index.search(queries, k)
        if allowed is None:
            return self._scores(distances), labels
        return _first_allowed(self._scores(distances), labels, allowed, keep)

    def _prefiltered_search(self, table: VectorTable, queries: np.ndarray, k: int, rows: np.ndarray) -> SearchResult:
        mask = np.zeros(table.rows, dtype=bool)
        mask[rows] = True
        bits = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n counts bytes
        assert self.index is not None and self._selector_params is not None
        params = self._selector_params(selector)
        self.calls += 1
        distances, labels = self.index.search(queries, k, params=params)
        return _first_allowed(self._scores(distances), labels, mask, k)

    def _postfiltered_search(self, table: VectorTable, queries: np.ndarray, k: int, rows: np.ndarray) -> SearchResult:
        mask = np.zeros(table.rows, dtype=bool)
        mask[rows] = True
        limit = table.rows if self.max_k is None else min(table.rows, self.max_k)
        widened = min(limit, k * max(2, -(-table.rows // len(rows)) * 2) + table.dead_count)
        while True:
            result = self._index_search(queries, widened, mask, k)
            if widened >= limit or (result[1] >= 0).sum(axis=1).min() >= k:
                return result
            widened = min(limit, widened * 4)

    def _complete(
        self, table: VectorTable, queries: np.ndarray, k: int, rows: np.ndarray | None, result: SearchResult
    ) -> SearchResult:
        scores, found = result
        short = np.flatnonzero((found >= 0).sum(axis=1) < k)
        if len(short):
            exact_scores, exact_found = self.exact(table, queries[short], k, rows)
            scores[short], found[short] = exact_scores, exact_found
        return scores, found

    def _scores(self, distances: np.ndarray) -> np.ndarray:
        return -distances if self.config.metric == "l2" else distances

    # ------------------------------------------------------------------ construction helpers

    def _place(self, cpu_index: faiss.Index) -> faiss.Index:
        """Tune ``cpu_index`` and move it to the placement's GPU(s) when there are any."""
        self._tune(cpu_index)
        if self._gpu is None:
            return cpu_index
        try:
            index = self._gpu.to_gpu(cpu_index)
        except RuntimeError as exc:
            raise ConfigError(
                f"faiss vdb: cannot place index {self.config.index!r} on {self.placement}: {describe_error(exc)}; "
                f"choose an index type FAISS runs on the GPU or use device 'cpu'"
            ) from None
        if self._ivf is not None:
            self._gpu.set_parameter(index, "nprobe", self._nprobe())
        return index

    def _tune(self, index: faiss.Index) -> None:
        space = faiss.ParameterSpace()
        if self._ivf is not None:
            space.set_index_parameter(index, "nprobe", self._nprobe())
        if self._hnsw is not None:
            space.set_index_parameter(index, "efSearch", self.config.ef_search)

    def _nprobe(self) -> int:
        assert self._ivf is not None
        return min(self.config.nprobe, self._ivf.nlist, self.max_k or self._ivf.nlist)

    def _params_factory(self, template: faiss.Index) -> Callable[[faiss.IDSelector], faiss.SearchParameters] | None:
        """How to pass an ID selector to this index type, or ``None`` when it takes none."""
        core = _core(template)
        if isinstance(core, faiss.IndexIVF):
            return lambda sel: faiss.SearchParametersIVF(sel=sel, nprobe=self._nprobe())
        if isinstance(core, faiss.IndexHNSW):
            return lambda sel: faiss.SearchParametersHNSW(sel=sel, efSearch=self.config.ef_search)
        if isinstance(core, faiss.IndexFlat):
            return lambda sel: faiss.SearchParameters(sel=sel)
        return None

    def _train_min(self, template: faiss.Index) -> int:
        needed = 1
        if self._ivf is not None:
            needed = max(needed, self._ivf.nlist)
        quantizer = getattr(_core(template), "pq", None)
        if quantizer is not None:
            needed = max(needed, quantizer.ksub)
        if self.config.train_min is None:
            return max(1000, 39 * needed) if not template.is_trained else 0
        if self.config.train_min < needed:
            raise ConfigError(
                f"faiss vdb: train_min={self.config.train_min} is too small for index {self.config.index!r}, "
                f"which needs at least {needed} training vectors (39 x that avoids FAISS warnings)"
            )
        return self.config.train_min


def _first_allowed(scores: np.ndarray, labels: np.ndarray, allowed: np.ndarray, keep: int) -> SearchResult:
    """Per query, the first ``keep`` results whose row is allowed, in score order; -1 pads."""
    valid = labels >= 0
    valid[valid] = allowed[labels[valid]]
    order = np.argsort(~valid, axis=1, kind="stable")[:, :keep]
    kept_valid = np.take_along_axis(valid, order, axis=1)
    rows = np.where(kept_valid, np.take_along_axis(labels, order, axis=1), -1)
    kept_scores = np.where(kept_valid, np.take_along_axis(scores, order, axis=1), -np.inf)
    return kept_scores.astype(np.float32), rows


def _empty_result(queries: int, k: int = 0) -> SearchResult:
    return np.full((queries, k), -np.inf, dtype=np.float32), np.full((queries, k), -1, dtype=np.int64)


def _core(index: faiss.Index) -> faiss.Index:
    core = faiss.downcast_index(index)
    while isinstance(core, faiss.IndexPreTransform):
        core = faiss.downcast_index(core.index)
    return core


def _hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    core = _core(index)
    return core if isinstance(core, faiss.IndexHNSW) else None


def _emptied(index: faiss.Index) -> faiss.Index:
    empty = faiss.clone_index(index)
    empty.reset()
    return empty
