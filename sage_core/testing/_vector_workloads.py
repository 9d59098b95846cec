"""The vector-store suite's multi-step workloads: concurrent writers and readers, and two snapshots."""

from __future__ import annotations

import json
from typing import Any, Callable, Hashable

import numpy as np

from sage_core.testing._calls import call
from sage_core.testing._vectors import unit_vectors

WRITERS, BATCHES, BATCH = 4, 15, 20
SHARED, VERSIONS = 8, 150


class ConcurrentWrites:
    """Writers add batches of their own ids and delete every fourth; upserters rewrite shared ids
    with numbered versions (vector and metadata change together); readers check every answer."""

    def __init__(self, store: Any, dim: int) -> None:
        self.store = store
        self.batches = {(t, b): unit_vectors(BATCH, dim, seed=1000 + 100 * t + b) for t in range(WRITERS) for b in range(BATCHES)}
        self.shared = [f"shared{j}" for j in range(SHARED)]
        self.versions = unit_vectors((VERSIONS + 1) * SHARED, dim, seed=7).reshape(VERSIONS + 1, SHARED, dim)
        call(store.upsert, self.versions[0], ids=self.shared, metadata=[{"id": s, "version": 0} for s in self.shared])

    def writer(self, t: int) -> Callable[[], None]:
        """Writer ``t``: add each batch, then delete every fourth id of it."""

        def work() -> None:
            for b in range(BATCHES):
                ids = _batch_ids(t, b)
                call(self.store.add, self.batches[t, b], ids=ids, metadata=[{"id": i, "writer": t} for i in ids])
                call(self.store.delete, ids[::4])

        return work

    def upserter(self, u: int) -> Callable[[], None]:
        """Upserter ``u``: every version of every other shared id, one upsert at a time."""

        def work() -> None:
            for version in range(1, VERSIONS + 1):
                for j in range(u, SHARED, 2):
                    meta = {"id": self.shared[j], "version": version}
                    call(self.store.upsert, self.versions[version, j][None], ids=[self.shared[j]], metadata=[meta])

        return work

    def searcher(self) -> None:
        """A search must never show an id twice, another item's metadata, or a worse hit first."""
        for where in (None, {"writer": 1}):
            hits = call(self.store.search, self.versions[0, 0], top_k=10, filter=where)
            ids = [h.id for h in hits]
            assert len(set(ids)) == len(ids), f"an id appears twice in one result during concurrent writes: {ids}"
            torn = [h.id for h in hits if h.metadata.get("id") != h.id]
            assert not torn, f"hits carry another item's metadata during concurrent writes (torn read): {torn}"
            assert where is None or all(h.metadata.get("writer") == 1 for h in hits), "filter ignored during writes"
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True), "hits not best first during concurrent writes"

    def getter(self) -> None:
        """A shared id's vector must be the version its metadata names (never half an upsert)."""
        for j, entry in enumerate(call(self.store.get, self.shared)):
            assert entry is not None, f"{self.shared[j]} vanished while being upserted"
            version = entry["metadata"]["version"]
            assert np.allclose(entry["vector"], self.versions[version, j], atol=1e-5), (
                f"{self.shared[j]}: the vector is not version {version}, which its metadata names (torn read)"
            )

    def assert_nothing_lost(self) -> None:
        """Every write is there once the threads are done, searchable, and nothing deleted came back."""
        kept = [(t, b, j) for t, b in self.batches for j in range(BATCH) if j % 4]
        assert call(self.store.count) == len(kept) + SHARED, "count after concurrent writes is wrong (lost or extra writes)"
        ids = [_batch_ids(t, b)[j] for t, b, j in kept]
        vectors = np.stack([self.batches[t, b][j] for t, b, j in kept])
        entries = call(self.store.get, ids)
        lost = [i for i, entry in zip(ids, entries) if entry is None]
        assert not lost, f"{len(lost)} ids added by concurrent writers are missing, e.g. {lost[:5]}"
        for item, entry, vector in zip(ids, entries, vectors):
            assert np.allclose(entry["vector"], vector, atol=1e-5), f"{item} holds another vector after concurrent writes"
        deleted = [_batch_ids(t, b)[j] for t, b in self.batches for j in range(0, BATCH, 4)]
        assert call(self.store.get, deleted) == [None] * len(deleted), "ids deleted by concurrent writers came back"
        for j, entry in enumerate(call(self.store.get, self.shared)):
            assert entry["metadata"]["version"] == VERSIONS, f"{self.shared[j]}: a later upsert was lost"
            assert np.allclose(entry["vector"], self.versions[VERSIONS, j], atol=1e-5)
        results = call(self.store.search, vectors, top_k=10)
        unreachable = [item for item, hits in zip(ids, results) if item not in {h.id for h in hits}]
        assert not unreachable, f"ids written concurrently are not found by their own vector: {unreachable[:5]}"


class Snapshots:
    """An old store of 150 vectors, and a new one: 30 deleted, 30 upserted, 30 added."""

    def __init__(self, make_store: Callable[[], Any], dim: int) -> None:
        self.make_store = make_store
        self.old_vectors = unit_vectors(150, dim, seed=21)
        self.changes = unit_vectors(60, dim, seed=22)
        self.old_ids = [f"s{i}" for i in range(150)]
        self.added_ids = [f"n{i}" for i in range(30)]
        self.known = np.concatenate([self.old_vectors, self.changes])
        store = self.changed()
        self.new = self.summary(store)
        call(store.close)

    def saved(self, path: str) -> Hashable:
        """Save the old store to ``path``; returns its summary."""
        store = self._old()
        try:
            call(store.save, path)
            return self.summary(store)
        finally:
            call(store.close)

    def changed(self) -> Any:
        """A store holding the new contents."""
        store = self._old()
        call(store.delete, self.old_ids[120:])
        call(store.upsert, self.changes[:30], ids=self.old_ids[:30], metadata=[{"i": i, "v": 2} for i in range(30)])
        call(store.add, self.changes[30:], ids=self.added_ids, metadata=[{"i": 150 + i} for i in range(30)])
        return store

    def read_back(self, path: str) -> Hashable:
        """Load ``path`` into a fresh store and summarise it."""
        store = self.make_store()
        try:
            call(store.load, path)
            return self.summary(store)
        finally:
            call(store.close)

    def summary(self, store: Any) -> Hashable:
        """The count, then per known id its metadata and which known vector it holds (or ``None``)."""
        entries = call(store.get, self.old_ids + self.added_ids)
        return (call(store.count),) + tuple(
            None if e is None else (json.dumps(e["metadata"], sort_keys=True), int(np.argmax(self.known @ e["vector"])))
            for e in entries
        )

    def _old(self) -> Any:
        store = self.make_store()
        call(store.add, self.old_vectors, ids=self.old_ids, metadata=[{"i": i} for i in range(150)])
        return store


def _batch_ids(t: int, b: int) -> list[str]:
    return [f"w{t}-{b}-{j}" for j in range(BATCH)]


__all__ = ["ConcurrentWrites", "Snapshots"]
