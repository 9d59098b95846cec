"""Ingestion: passages → embedding service → vdb service, before the answering pipeline runs.

All embedding requests are sent at once (the service layer stacks them into batches for the
model); each batch's vectors are added to the vector store, with the passage's title and text as
metadata, as soon as they arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from rag.corpus import Passage


@dataclass(frozen=True)
class IngestResult:
    """How many passages were indexed, in how long, and how much of that the vector store took."""

    passages: int
    seconds: float
    index_seconds: float


def ingest(
    services: Any,
    passages: Sequence[Passage],
    *,
    batch_size: int = 32,
    on_batch: Callable[[int], None] = lambda n: None,
) -> IngestResult:
    """Embed and index ``passages`` through the ``embedder`` and ``vdb`` services of ``services``.

    ``services`` is the environment's service registry (``env.services``); ``on_batch(n)`` is called
    after each batch of ``n`` passages is indexed (the progress bar).
    """
    if batch_size < 1:
        msg = f"ingest: batch_size must be >= 1, got {batch_size}"
        raise ValueError(msg)
    started = time.perf_counter()
    embedder = services.async_["embedder"]
    vdb = services.sync["vdb"]
    batches = [list(passages[i : i + batch_size]) for i in range(0, len(passages), batch_size)]
    pending = [(batch, embedder.embed(texts=[p.document for p in batch])) for batch in batches]
    index_seconds = 0.0
    for batch, future in pending:
        vectors = np.asarray(future.result(), dtype=np.float32)
        added = time.perf_counter()
        vdb.add(vectors=vectors, ids=[p.id for p in batch], metadata=[p.metadata for p in batch])
        index_seconds += time.perf_counter() - added
        on_batch(len(batch))
    count = vdb.count()
    if count != len(passages):
        msg = f"ingest: the vector store holds {count} vectors after indexing {len(passages)} passages; is it shared with another run?"
        raise RuntimeError(msg)
    return IngestResult(passages=len(passages), seconds=time.perf_counter() - started, index_seconds=index_seconds)
