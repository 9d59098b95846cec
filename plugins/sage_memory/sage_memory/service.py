"""``MemoryService``: long-term memory over a KV store, a vector store and a graph store.

The KV store holds each memory's content, session, type, metadata and timestamps; the vector store
its embedding (metadata ``session_id`` and ``memory_type`` for filtered search); the graph store a
node per memory and the links between memories. Every write reaches the three stores under one
lock, in one order, after being journaled when the memory is persistent (``path=``), so readers and a
reloaded memory always see the three stores agree.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from pydantic import ValidationError

from sage_core.plugin import ConfigError, ReadWriteLock, describe_errors
from sage_memory.config import MemoryConfig
from sage_memory.journal import Journal
from sage_memory.operations import (
    OperationApplier,
    SessionIndex,
    from_journal,
    store_operation,
    to_journal,
    update_operation,
)
from sage_memory.persistence import Manifest, MemoryDirectory
from sage_memory.records import (
    KEY_PREFIX,
    MemoryRecord,
    check_metadata,
    check_text,
    check_time_range,
    check_vectors,
    new_ids,
)
from sage_memory.retrieval import (
    Candidate,
    admitter,
    best,
    expand,
    rank,
    rank_by_recency,
)
from sage_memory.stores import MemoryStores, open_stores

MemoryTypeFilter = str | Sequence[str] | None
logger = logging.getLogger("sage.memory")


class MemoryService:
    """Long-term memory (the ``Memory`` contract), composed of KV, vector and graph stores.

    ``MemoryService()`` works with no arguments (SQLite KV, numpy vectors, networkx graph, hashing
    embedder, in memory). Options are those of :class:`sage_memory.config.MemoryConfig`, e.g.
    ``MemoryService(vector={"backend": "faiss"}, path="./memory")``; a ``path`` makes it persistent.
    ``device`` goes to the stores it creates that support it; ``services`` is the table SAGE gives a
    memory registered as a service, where parts given as ``{service: name}`` are found; ``clock``
    gives the timestamps (seconds since the epoch). Safe to call from several threads.
    """

    def __init__(
        self,
        config: MemoryConfig | Mapping[str, Any] | None = None,
        *,
        device: str = "cpu",
        services: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        if isinstance(config, MemoryConfig):
            if options:
                msg = f"MemoryService: pass either a MemoryConfig or options, not both (got {sorted(options)})"
                raise ValueError(msg)
            self.config = config
        else:
            self.config = _validated({**dict(config or {}), **options})
        self._clock = clock
        self._lock = ReadWriteLock()
        self._index = SessionIndex()
        self._closed = False
        self.stores: MemoryStores = open_stores(self.config, device, services)
        """The parts the memory is composed of (read them; write through the memory only)."""
        self._applier = OperationApplier(self.stores, self._index)
        self._directory: MemoryDirectory | None = None
        self._manifest = Manifest()
        self._journal: Journal | None = None
        try:
            if self.config.path is not None:
                self._open_directory(self.config.path)
            elif "kv" not in self.stores.owned:  # a KV service may already hold this memory's records
                self._index.rebuild(self.stores)
        except BaseException:
            if self._directory is not None:
                self._directory.release()
            self.stores.close()
            raise

    # ------------------------------------------------------------------ writes

    def store_memory(
        self,
        content: str,
        vector: np.ndarray | None = None,
        session_id: str = "default",
        memory_type: str = "conversation",
        metadata: Mapping[str, Any] | None = None,
        memory_id: str | None = None,
    ) -> str:
        """Store one memory and return its id (embedding ``content`` when no vector is given).

        ``memory_id`` chooses the id (it must be new); by default a random one is made.
        """
        vectors = None if vector is None else check_vectors("store_memory", vector, 1, self.stores.dim)
        ids = None if memory_id is None else [memory_id]
        return self.store_memories([content], vectors, session_id, memory_type, [metadata], ids)[0]

    def store_memories(
        self,
        contents: Sequence[str],
        vectors: np.ndarray | None = None,
        session_id: str = "default",
        memory_type: str = "conversation",
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Store many memories of one session in one write per store; returns their ids in order.

        ``ids`` chooses the ids (new, distinct strings); by default random ones are made.
        """
        self._check_open()
        contents = [check_text("store_memories", "content", c) for c in contents]
        check_text("store_memories", "session_id", session_id)
        check_text("store_memories", "memory_type", memory_type)
        if not contents:
            return []
        metadata = metadata if metadata is not None else [None] * len(contents)
        if len(metadata) != len(contents):
            msg = f"memory_service.store_memories: {len(contents)} contents but {len(metadata)} metadata entries"
            raise ValueError(msg)
        metas = [check_metadata("store_memories", m) for m in metadata]
        if vectors is None:
            vectors = self._embed("store_memories", contents)
        vectors = check_vectors("store_memories", vectors, len(contents), self.stores.dim)
        ids = new_ids(ids, len(contents))
        now = self._clock()
        records = [
            MemoryRecord(memory_id, content, session_id, memory_type, meta, now, now)
            for memory_id, content, meta in zip(ids, contents, metas)
        ]
        with self._lock.write():
            self._check_dim("store_memories", vectors)
            taken = [memory_id for memory_id in ids if memory_id in self._index.owner]
            if taken:
                msg = f"memory_service.store_memories: memory id(s) already stored: {taken[:5]}; pick new ids or update() them"
                raise ValueError(msg)
            self._write(store_operation(records, vectors), {"op": "delete", "ids": [r.id for r in records]})
        return [r.id for r in records]

    def update(
        self,
        memory_id: str,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        vector: np.ndarray | None = None,
    ) -> bool:
        """Change a memory's content (re-embedded unless ``vector`` is given) and/or metadata.

        ``metadata`` replaces the previous metadata. Returns whether the memory existed.
        """
        self._check_open()
        if content is not None:
            check_text("update", "content", content)
        meta = None if metadata is None else check_metadata("update", metadata)
        if vector is not None:
            vector = check_vectors("update", vector, 1, self.stores.dim)
        elif content is not None:
            vector = check_vectors("update", self._embed("update", [content]), 1, self.stores.dim)
        with self._lock.write():
            record = self._record(memory_id)
            if record is None:
                return False
            undo = update_operation(record, None)
            if vector is not None:
                self._check_dim("update", vector)
                undo["vector"] = self.stores.vector.get([memory_id])[0]["vector"]
            self._write(update_operation(record.changed(content, meta, self._clock()), vector), undo)
            return True

    def delete(self, memory_id: str) -> bool:
        """Remove a memory from every store; returns whether it existed."""
        with self._lock.write():
            if self._record(memory_id) is None:
                return False
            self._write({"op": "delete", "ids": [memory_id]})
            return True

    def link(self, a: str, b: str, relation: str = "related") -> None:
        """Relate two memories of the same session (a directed, labelled edge ``a -> b``)."""
        check_text("link", "relation", relation)
        with self._lock.write():
            first, second = self._record(a), self._record(b)
            missing = [m for m, r in ((a, first), (b, second)) if r is None]
            if missing:
                msg = f"memory_service.link: unknown memory id(s) {', '.join(map(repr, missing))}"
                raise ValueError(msg)
            if first.session_id != second.session_id:
                msg = (
                    f"memory_service.link: {a!r} belongs to session {first.session_id!r} and {b!r} to "
                    f"{second.session_id!r}; only memories of one session can be linked"
                )
                raise ValueError(msg)
            self._write({"op": "link", "a": a, "b": b, "relation": relation})

    def clear_session(self, session_id: str) -> int:
        """Delete a session's memories; returns how many."""
        with self._lock.write():
            ids = self._index.ids(session_id)
            if ids:
                self._write({"op": "delete", "ids": ids})
            return len(ids)

    # ------------------------------------------------------------------ reads

    def retrieve_memories(
        self,
        query: str | None = None,
        vector: np.ndarray | None = None,
        session_id: str = "default",
        top_k: int = 5,
        memory_type: MemoryTypeFilter = None,
        time_range: tuple[float, float] | None = None,
        hops: int = 0,
    ) -> list[dict[str, Any]]:
        """The best ``top_k`` memories of one session for a text ``query`` or a ``vector``.

        Results are dicts with id, score, content, metadata, memory_type, session_id, created_at and
        updated_at, best first. ``memory_type`` (one type or a list) and ``time_range`` (``created_at``
        bounds, inclusive) filter; ``hops > 0`` adds up to ``top_k`` memories linked to the hits within
        ``hops`` links (see :mod:`sage_memory.retrieval` for the scoring). Without query and vector, the most recent
        memories come back.
        """
        if not isinstance(top_k, int) or top_k < 1 or not isinstance(hops, int) or hops < 0:
            msg = f"memory_service.retrieve_memories: top_k must be an int >= 1 and hops an int >= 0 (got {top_k!r}, {hops!r})"
            raise ValueError(msg)
        window = check_time_range(time_range)
        if vector is None and query is not None:
            vector = self._embed("retrieve_memories", [check_text("retrieve_memories", "query", query)])
        if vector is not None:
            vector = check_vectors("retrieve_memories", vector, 1, None)[0]
        with self._lock.read():
            admit = admitter(self._record, session_id, memory_type, window)
            if vector is None:
                records = [r for r in map(admit, self._index.ids(session_id)) if r is not None]
                return rank_by_recency(records, self.config.retrieval, self._clock(), top_k)
            self._check_dim("retrieve_memories", vector[None, :])
            settings, now = self.config.retrieval, self._clock()
            fetched = self._vector_candidates(vector, session_id, top_k, memory_type, window is not None, admit)
            hits = dict(best(fetched.values(), settings, now, top_k))
            if hops and hits:
                hits.update(expand(hits, hops, settings, self._graph_neighbors, admit, fetched, now))
            return rank(hits.values(), settings, now)

    def get(self, memory_id: str) -> dict[str, Any] | None:
        """One memory as a dict (without score), or ``None``."""
        with self._lock.read():
            record = self._record(memory_id)
        return None if record is None else record.as_result()

    def neighbors(self, memory_id: str, hops: int = 1) -> list[str]:
        """Ids of memories linked to ``memory_id`` within ``hops`` (either direction), nearest first."""
        with self._lock.read():
            return self._graph_neighbors(memory_id, hops)

    def list_sessions(self) -> list[str]:
        """Every session id with at least one memory, sorted."""
        with self._lock.read():
            return sorted(self._index.sessions)

    def count(self, session_id: str | None = None) -> int:
        """How many memories there are (in one session when ``session_id`` is given)."""
        with self._lock.read():
            return len(self._index.owner) if session_id is None else self._index.size(session_id)

    # ------------------------------------------------------------------ persistence and lifecycle

    def save(self) -> None:
        """Checkpoint: snapshot the three stores under a new manifest and start an empty journal."""
        if self._directory is None:
            msg = "memory_service.save: this memory is not persistent; create it with path=<directory>"
            raise ValueError(msg)
        with self._lock.write():
            self._checkpoint()

    def close(self) -> None:
        """Checkpoint a persistent memory, then release every store (a second call does nothing)."""
        with self._lock.write():
            if self._closed:
                return
            self._closed = True
            try:
                if self._directory is not None:
                    self._checkpoint()
            finally:
                if self._journal is not None:
                    self._journal.close()
                if self._directory is not None:
                    self._directory.release()
                self.stores.close()

    def _open_directory(self, path: str) -> None:
        self._directory = MemoryDirectory(path)
        self._manifest = self._directory.read_manifest()
        self._directory.load(self._manifest, self.stores, self.config.sources())
        self._directory.remove_unreferenced(self._manifest)
        self._index.rebuild(self.stores)
        if self.config.durability != "none":
            self._journal = Journal(self._directory.journal_path(self._manifest), self.config.durability)
            for number, entry in enumerate(self._journal.replay(), start=1):
                try:
                    self._applier.apply(from_journal(entry))
                except Exception as exc:  # it failed live too; the undo entry that follows repairs it
                    logger.warning("memory journal %s entry %d (%s) failed on replay: %s", self._journal.path, number, entry.get("op"), exc)

    def _checkpoint(self) -> None:
        assert self._directory is not None
        self._manifest = self._directory.checkpoint(self._manifest, self.stores, self.config.sources())
        if self._journal is not None:
            self._journal.close()
            self._journal = Journal(self._directory.journal_path(self._manifest), self.config.durability)

    # ------------------------------------------------------------------ helpers

    def _write(self, operation: dict[str, Any], undo: dict[str, Any] | None = None) -> None:
        """Journal (when persistent), then apply to the stores. Caller holds the lock.

        When a store rejects the operation, ``undo`` restores the previous state and is journaled
        too, so a replay ends where the live memory did.
        """
        self._check_open()
        if self._journal is not None:
            self._journal.append(to_journal(operation))
        try:
            self._applier.apply(operation)
        except Exception:
            if undo is not None:
                if self._journal is not None:
                    self._journal.append(to_journal(undo))
                self._applier.apply(undo)
            raise
        if self.config.checkpoint_every and self._journal is not None and self._journal.appended >= self.config.checkpoint_every:
            self._checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            msg = "memory_service: the memory is closed; create a new MemoryService"
            raise RuntimeError(msg)

    def _embed(self, method: str, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.stores.embedder.embed(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            msg = f"memory_service.{method}: embedder {self.config.embedder.backend!r} returned shape {vectors.shape} for {len(texts)} texts"
            raise ValueError(msg)
        return vectors

    def _check_dim(self, method: str, vectors: np.ndarray) -> None:
        dim = self.stores.dim
        if dim is not None and vectors.shape[1] != dim:
            check_vectors(method, vectors, vectors.shape[0], dim)

    def _record(self, memory_id: str) -> MemoryRecord | None:
        value = self.stores.kv.get(KEY_PREFIX + memory_id) if isinstance(memory_id, str) else None
        return None if value is None else MemoryRecord.from_value(memory_id, value)

    def _vector_candidates(self, vector, session_id, top_k, memory_type, post_filtered, admit) -> dict[str, Candidate]:
        """Vector hits of the session passing every filter, fetching more while filters drop hits.

        A time window (``post_filtered``) or a recency weight fetch ``candidate_factor`` times ``top_k``
        hits, since post-filtering or re-ranking may promote hits beyond the first ``top_k``.
        """
        available = self._index.size(session_id)
        if available == 0:
            return {}
        settings = self.config.retrieval
        rerank = post_filtered or settings.recency_weight > 0
        fetch = top_k * settings.candidate_factor if rerank else top_k
        search_filter: dict[str, Any] = {"session_id": session_id}
        if memory_type is not None:
            search_filter["memory_type"] = memory_type if isinstance(memory_type, str) else list(memory_type)
        while True:
            fetch = min(fetch, available)
            hits = self.stores.vector.search(vector, top_k=fetch, filter=search_filter)
            candidates = {}
            for hit in hits:
                record = admit(hit.id)
                if record is not None:
                    candidates[hit.id] = Candidate(record, similarity=float(hit.score))
            if len(candidates) >= top_k or len(hits) < fetch or fetch >= available:
                return candidates
            fetch *= 2

    def _graph_neighbors(self, memory_id: str, hops: int) -> list[str]:
        if hops < 1 or not self.stores.graph.has_node(memory_id):
            return []
        return list(self.stores.graph.neighbors(memory_id, hops=hops))

    def __enter__(self) -> MemoryService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _validated(options: Mapping[str, Any]) -> MemoryConfig:
    """The options as a :class:`MemoryConfig`; a :class:`ConfigError` naming each bad key and the valid ones."""
    try:
        return MemoryConfig.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, MemoryConfig)) from None
