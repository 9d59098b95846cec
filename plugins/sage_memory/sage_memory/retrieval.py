"""Hybrid ranking of memories: vector similarity, graph expansion and recency, weighted by config.

The memory service fetches vector hits of the session and keeps the ``top_k`` best (by similarity and
recency); with ``hops > 0``, :func:`expand` adds up to ``top_k`` more memories linked to those hits and
gives every memory its graph score; :func:`rank` orders the lot::

    score = vector_weight * similarity + graph_weight * graph + recency_weight * recency

``similarity`` is the vector store's score (0 for a memory reached only through the graph), ``graph``
the best ``max(similarity of a linked hit, 0) * graph_decay ** (distance - 1)`` and ``recency``
``0.5 ** (age / recency_half_life_s)`` with age measured from the last write. Ties go to the newer
memory. Graph weighting assumes a similarity metric (cosine or inner product, the memory's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping, Sequence

from sage_memory.config import RetrievalConfig
from sage_memory.records import MemoryRecord


@dataclass
class Candidate:
    """A memory under consideration and the evidence gathered for it."""

    record: MemoryRecord
    similarity: float = 0.0
    graph: float = 0.0

    def score(self, config: RetrievalConfig, now: float) -> float:
        """The weighted hybrid score."""
        return (
            config.vector_weight * self.similarity
            + config.graph_weight * self.graph
            + config.recency_weight * recency(self.record, config, now)
        )


def admitter(
    read: Callable[[str], MemoryRecord | None],
    session_id: str,
    memory_type: str | Sequence[str] | None,
    window: tuple[float, float] | None,
) -> Callable[[str], MemoryRecord | None]:
    """A function giving the record of a memory that passes the query's filters, else ``None``.

    The session is checked on the record itself, so isolation holds even with a vector store that
    ignored the metadata filter.
    """
    types = None if memory_type is None else {memory_type} if isinstance(memory_type, str) else set(memory_type)

    def admit(memory_id: str) -> MemoryRecord | None:
        record = read(memory_id)
        if record is None or record.session_id != session_id:
            return None
        if types is not None and record.memory_type not in types:
            return None
        if window is not None and not window[0] <= record.created_at <= window[1]:
            return None
        return record

    return admit


def recency(record: MemoryRecord, config: RetrievalConfig, now: float) -> float:
    """1.0 for a memory written now, halving every ``recency_half_life_s`` seconds."""
    age = max(0.0, now - record.updated_at)
    return 0.5 ** (age / config.recency_half_life_s)


def expand(
    hits: dict[str, Candidate],
    hops: int,
    config: RetrievalConfig,
    neighbors: Callable[[str, int], list[str]],
    admit: Callable[[str], MemoryRecord | None],
    known: Mapping[str, Candidate],
    now: float,
) -> dict[str, Candidate]:
    """Give graph scores to the memories within ``hops`` links of each vector hit.

    Hits linked to other hits get their graph score in place; the memories reached that are not hits
    are returned (at most ``len(hits)``, best first). ``neighbors(node, distance)`` lists nodes within
    ``distance``; ``admit(id)`` returns the record of a memory that passes the query's filters
    (session, type, time range), else ``None``; ``known`` holds candidates whose similarity was
    already measured (the fetched vector hits beyond the first ``top_k``).
    """
    reached: dict[str, Candidate] = {}
    rejected: set[str] = set()
    for seed_id, seed in list(hits.items()):
        strength = max(seed.similarity, 0.0)
        seen = {seed_id}
        for distance in range(1, hops + 1):
            ring = [node for node in neighbors(seed_id, distance) if node not in seen]
            if not ring:
                break
            seen.update(ring)
            boost = strength * config.graph_decay ** (distance - 1)
            for node in ring:
                candidate = hits.get(node) or reached.get(node)
                if candidate is None:
                    if node in rejected:
                        continue
                    record = admit(node)
                    if record is None:
                        rejected.add(node)
                        continue
                    similarity = known[node].similarity if node in known else 0.0
                    candidate = reached[node] = Candidate(record, similarity=similarity)
                candidate.graph = max(candidate.graph, boost)
    return dict(best(reached.values(), config, now, len(hits)))


def best(candidates: Iterable[Candidate], config: RetrievalConfig, now: float, top_k: int) -> list[tuple[str, Candidate]]:
    """The ``top_k`` best candidates by hybrid score (ties to the newer memory), as ``(id, candidate)``."""
    scored = sorted(candidates, key=lambda c: (-c.score(config, now), -c.record.updated_at, c.record.id))
    return [(c.record.id, c) for c in scored[:top_k]]


def rank(candidates: Collection[Candidate], config: RetrievalConfig, now: float) -> list[dict]:
    """Every candidate as a result dict, best first."""
    return [c.record.as_result(c.score(config, now)) for _, c in best(candidates, config, now, len(candidates))]


def rank_by_recency(records: Iterable[MemoryRecord], config: RetrievalConfig, now: float, top_k: int) -> list[dict]:
    """Without a query: the ``top_k`` most recently written memories, scored by recency alone."""
    ordered = sorted(records, key=lambda r: (-r.updated_at, r.id))[:top_k]
    return [r.as_result(recency(r, config, now)) for r in ordered]
