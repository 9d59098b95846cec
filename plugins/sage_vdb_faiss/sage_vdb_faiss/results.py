"""From FAISS result arrays to ``Hit`` lists, with FAISS kept busy while Python builds them.

At GPU speeds, making ten ``Hit`` objects per query costs as much as the search itself. Two things
keep that from halving throughput:

* :func:`make_hit` builds a ``Hit`` without the frozen-dataclass ``__init__`` (which sets each
  field through ``object.__setattr__``): the same object, about twice as fast;
* :class:`OverlappedSearch` splits a large batch into chunks and runs FAISS on chunk *i + 1* in a
  helper thread (FAISS releases the GIL) while the calling thread turns chunk *i* into hits.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable

import numpy as np

from sage_core import Hit

from sage_vdb_faiss.table import VectorTable

SearchArrays = tuple[np.ndarray, np.ndarray]
"""``(scores, rows)`` of a batch, as :meth:`FaissEngine.search` returns them."""


def _hit_maker() -> Callable[[str, float, dict[str, Any]], Hit]:
    """A fast ``Hit`` constructor when ``Hit`` is a plain dataclass of (id, score, metadata), else ``Hit``."""
    names = [field.name for field in dataclasses.fields(Hit)]
    if names != ["id", "score", "metadata"] or not hasattr(Hit("", 0.0, {}), "__dict__"):
        return Hit
    new = object.__new__

    def make(id: str, score: float, metadata: dict[str, Any]) -> Hit:
        hit = new(Hit)
        fields = hit.__dict__
        fields["id"] = id
        fields["score"] = score
        fields["metadata"] = metadata
        return hit

    return make


make_hit = _hit_maker()
"""``make_hit(id, score, metadata)``: equal to ``Hit(id, score, metadata)``, built faster."""


def to_hits(table: VectorTable, result: SearchArrays) -> list[list[Hit]]:
    """One list of hits per query row; rows of -1 pad the end of a short list."""
    scores, rows = result
    ids, metadata = table.ids, table.metadata
    out: list[list[Hit]] = []
    for score_row, row_ids in zip(scores.tolist(), rows.tolist()):
        hits: list[Hit] = []
        for row, score in zip(row_ids, score_row):
            if row < 0:
                break
            entry = metadata[row]
            hits.append(make_hit(ids[row], score, dict(entry) if entry else {}))  # type: ignore[arg-type]
        out.append(hits)
    return out


class OverlappedSearch:
    """Runs a batch search in chunks of ``chunk_rows``, FAISS on the next chunk while hits are built.

    Batches up to ``chunk_rows`` run in one call on the calling thread. The helper thread makes at
    most one FAISS call at a time and only while the caller holds the store lock, so a GPU
    resources object still serves one call at a time.
    """

    def __init__(self, chunk_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self._executor: ThreadPoolExecutor | None = None

    def run(
        self,
        queries: np.ndarray,
        search: Callable[[np.ndarray], SearchArrays],
        build: Callable[[SearchArrays], list[list[Hit]]],
    ) -> list[list[Hit]]:
        """``build(search(queries))``, computed chunk by chunk with search and build overlapping."""
        if len(queries) <= self.chunk_rows:
            return build(search(queries))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faiss-search")
        pending: Future | None = self._executor.submit(search, queries[: self.chunk_rows])
        out: list[list[Hit]] = []
        try:
            for start in range(0, len(queries), self.chunk_rows):
                assert pending is not None
                result, pending = pending.result(), None
                following = start + self.chunk_rows
                if following < len(queries):
                    pending = self._executor.submit(search, queries[following : following + self.chunk_rows])
                out.extend(build(result))
        finally:
            if pending is not None:  # never leave a FAISS call running once the caller lets go of the lock
                wait([pending])
        return out

    def close(self) -> None:
        """Stop the helper thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
