"""The contract kit fails backends with subtle, realistic defects, and passes the same backends without them.

Each defective backend below is a built-in backend with one bug planted, of the kind real indexes
and stores have shipped with. The kit runs on it as a plugin author runs it (a subclass of the
suite in a test file, collected by pytest through ``pytester``), and the named check must fail;
the same checks on the built-in backend itself must pass, so a failure is the defect's doing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pytest

from sage_core.builtin.graph_store import NetworkxGraphStore
from sage_core.builtin.hashing_embedder import HashingEmbedder
from sage_core.builtin.kv_stores import MemoryKVStore, SQLiteKVStore
from sage_core.builtin.numpy_vdb import NumpyVectorStore
from sage_core.services.contracts import Hit

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------------- defective vector stores


class _FilteredSearch(NumpyVectorStore):
    """A numpy store whose search passes each row of hits through :meth:`_row`."""

    def search(self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None) -> Any:
        found = super().search(query, top_k=top_k + self._spare(), filter=filter)
        single = np.asarray(query).ndim == 1
        rows = [list(row) for row in ([found] if single else found)]
        kept = [self._row(row)[:top_k] for row in rows]
        return kept[0] if single else kept

    def _spare(self) -> int:
        return 0

    def _row(self, hits: list[Hit]) -> list[Hit]:
        return hits


class DropsItemsPast3000(_FilteredSearch):
    """Like an HNSW graph that fails to link one new node in a thousand once it holds 3,000:
    the item is counted and ``get`` finds it, but no search ever returns it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.unlinked: set[str] = set()

    def add(self, vectors: np.ndarray, ids: Sequence[str] | None = None, metadata: Any = None) -> list[str]:
        before = self.count()
        added = super().add(vectors, ids=ids, metadata=metadata)
        self.unlinked |= {item for position, item in enumerate(added, start=before) if position >= 3000 and position % 1000 == 0}
        return added

    def _spare(self) -> int:
        return len(self.unlinked)

    def _row(self, hits: list[Hit]) -> list[Hit]:
        return [h for h in hits if h.id not in self.unlinked]


class AscendingScores(_FilteredSearch):
    """The right top k, returned worst first (a heap popped in the wrong order)."""

    def _row(self, hits: list[Hit]) -> list[Hit]:
        return hits[::-1]


class OneOfIgnoresLastValue(NumpyVectorStore):
    """A filter list loses its last value (an off-by-one building the ``IN (...)`` clause)."""

    def search(self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None) -> Any:
        if filter:
            filter = {k: v[:-1] if isinstance(v, list) and len(v) > 1 else v for k, v in filter.items()}
        return super().search(query, top_k=top_k, filter=filter)


class DeleteLeavesTombstoneSearchable(_FilteredSearch):
    """Deletes mark a tombstone that ``get`` and ``count`` honour but search forgets to check."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tombstones: set[str] = set()

    def add(self, vectors: np.ndarray, ids: Sequence[str] | None = None, metadata: Any = None) -> list[str]:
        self._bury(ids)
        return super().add(vectors, ids=ids, metadata=metadata)

    def upsert(self, vectors: np.ndarray, ids: Sequence[str], metadata: Any = None) -> list[str]:
        self._bury(ids)
        return super().upsert(vectors, ids=ids, metadata=metadata)

    def delete(self, ids: Sequence[str]) -> int:
        live = [i for i, entry in zip(ids, self.get(ids)) if entry is not None]
        self.tombstones |= set(live)
        return len(live)

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [None if i in self.tombstones else entry for i, entry in zip(ids, super().get(ids))]

    def count(self) -> int:
        return super().count() - len(self.tombstones)

    def _bury(self, ids: Sequence[str] | None) -> None:
        reused = [i for i in ids or () if i in self.tombstones]
        super().delete(reused)
        self.tombstones -= set(reused)


class UpsertKeepsOldMetadata(NumpyVectorStore):
    """Upsert replaces a stored id's vector but keeps its metadata (a partial update)."""

    def upsert(self, vectors: np.ndarray, ids: Sequence[str], metadata: Any = None) -> list[str]:
        given = list(metadata) if metadata is not None else [None] * len(ids)
        stored = {i: entry["metadata"] for i, entry in zip(ids, self.get(ids)) if entry is not None}
        return super().upsert(vectors, ids=ids, metadata=[stored.get(i, m) for i, m in zip(ids, given)])


class UpsertDeletesThenAdds(NumpyVectorStore):
    """Upsert is a delete, then an add, each under the lock but not together: a reader between
    the two finds the id gone."""

    def upsert(self, vectors: np.ndarray, ids: Sequence[str], metadata: Any = None) -> list[str]:
        self.delete(ids)
        return self.add(vectors, ids=ids, metadata=metadata)


class FilteredScoresFromUnfilteredRanks(NumpyVectorStore):
    """A filtered search gives each hit the score of the unfiltered result at the same rank (a
    pre-filter's row mapping applied to the ids but not to the scores)."""

    def search(self, query: np.ndarray, top_k: int = 10, filter: Mapping[str, Any] | None = None) -> Any:
        found = super().search(query, top_k=top_k, filter=filter)
        if not filter:
            return found
        single = np.asarray(query).ndim == 1
        unfiltered = super().search(query, top_k=top_k)
        rows = zip([found] if single else found, [unfiltered] if single else unfiltered)
        fixed = [[Hit(h.id, u.score, h.metadata) for h, u in zip(hits, ranks)] for hits, ranks in rows]
        return fixed[0] if single else fixed


class LoadKeepsEarlierItems(NumpyVectorStore):
    """Load adds the snapshot to what is stored instead of replacing it."""

    def load(self, path: str) -> None:
        snapshot = NumpyVectorStore(metric=self.metric)
        snapshot.load(path)
        entries = snapshot.get(snapshot._ids[: snapshot._n])
        if entries:
            vectors = np.stack([e["vector"] for e in entries])
            self.upsert(vectors, ids=[e["id"] for e in entries], metadata=[e["metadata"] for e in entries])


# ---------------------------------------------------------------------- defective KV stores


class CopyOnWriteKV(MemoryKVStore):
    """Writes copy the dict, change the copy and swap it in, without a lock: two writers at once
    each swap in a copy that lacks the other's write."""

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, allow_nan=False)
        data = dict(self._data)
        data[key] = text
        self._data = data


class PutKeepsFirstValueKV(MemoryKVStore):
    """``put`` of a stored key is ignored (an ``INSERT OR IGNORE`` where a replace was meant)."""

    def put(self, key: str, value: Any) -> None:
        if self.get(key, default=_ABSENT) is _ABSENT:
            super().put(key, value)


class PrefixByLikeKV(SQLiteKVStore):
    """``keys(prefix)`` by ``LIKE prefix%``: ``_`` and ``%`` in the prefix act as wildcards."""

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM kv WHERE key LIKE ? ORDER BY key", (f"{prefix}%",)).fetchall()
        return [row[0] for row in rows]


_ABSENT = object()


class SavesInPlaceKV(MemoryKVStore):
    """Saves by truncating the file and writing it in pieces: a crash mid-save loses the snapshot."""

    def save(self, path: str) -> None:
        payload = json.dumps({"format": "sage-kv/1", "items": dict(self._data)}).encode()
        with open(path, "wb") as handle:
            for start in range(0, len(payload), 256):  # noqa: FURB122 - written piecewise on purpose
                handle.write(payload[start : start + 256])


# ---------------------------------------------------------------------- defective graph and embedder


class RelationOnlyOnOutEdges(NetworkxGraphStore):
    """A relation filter applied to outgoing edges only: incoming edges of any relation are followed."""

    def neighbors(self, node: str, hops: int = 1, relation: str | None = None) -> list[str]:
        if relation is None:
            return super().neighbors(node, hops=hops)
        with self._lock:
            graph = self._graph
            if node not in graph:
                return []
            seen, frontier, found = {node}, [node], []
            for _ in range(hops):
                reached = {o for c in frontier for _, o, k in graph.out_edges(c, keys=True) if k == relation}
                reached |= {o for c in frontier for o, _, _ in graph.in_edges(c, keys=True)}
                frontier = sorted(reached - seen)
                seen.update(frontier)
                found.extend(frontier)
            return found


class NeighborsSortedByName(NetworkxGraphStore):
    """``neighbors`` sorted by node id for a stable answer, losing the nearest-first order."""

    def neighbors(self, node: str, hops: int = 1, relation: str | None = None) -> list[str]:
        return sorted(super().neighbors(node, hops=hops, relation=relation))


class UnsortsLargeBatchesWrongly(HashingEmbedder):
    """Sorts a large batch by length (less padding) and restores the order with the sorting
    permutation instead of its inverse, so rows of batches over 1,024 texts go to the wrong text."""

    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        if isinstance(texts, str) or len(texts) <= 1024:
            return super().embed(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        return super().embed([texts[i] for i in order])[order]


# ---------------------------------------------------------------------- running the kit


SUITES = {
    "vdb": ("VectorStoreContract", "make_store", "return backend"),
    "kv": ("KVStoreContract", "make_kv", "return backend"),
    "graph": ("GraphStoreContract", "make_graph", "return backend"),
    "embedding": ("EmbedderContract", "embedder", "return backend()"),
}


@dataclass(frozen=True)
class Defect:
    """A defective backend, the kit checks that must catch it, and the sound backend it came from."""

    kind: str
    defective: Callable[[], Any]
    sound: Callable[[], Any]
    checks: str
    """A ``-k`` expression naming the kit's tests that must fail."""
    reason: str
    """Words of the failure message that say what the kit found."""
    declared: dict[str, Any] = field(default_factory=dict)
    """Suite attributes the backend declares (``exact``, ``min_recall``)."""


DEFECTS = {
    "vdb drops 0.1% of items past 3,000": Defect(
        "vdb", lambda: DropsItemsPast3000(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_search_at_scale_matches_brute_force_and_reaches_every_vector", "(unreachable)",
        {"exact": False, "min_recall": 0.95},
    ),
    "vdb returns ascending scores": Defect(
        "vdb", lambda: AscendingScores(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_results_come_best_first_on_the_documented_score_scale", "hits are not best first",
    ),
    "vdb one-of filter ignores its last value": Defect(
        "vdb", lambda: OneOfIgnoresLastValue(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_every_filter_operator_matches_brute_force_at_scale", "filter one of",
    ),
    "vdb delete leaves the item searchable": Defect(
        "vdb", lambda: DeleteLeavesTombstoneSearchable(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_deletes_and_upserts_at_scale_reach_search_get_and_filters", "deleted ids still found",
    ),
    "vdb upsert keeps the old metadata": Defect(
        "vdb", lambda: UpsertKeepsOldMetadata(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_upsert_replaces_vector_and_metadata_and_inserts_new_ids", "upsert kept the old metadata",
    ),
    "vdb upsert is a delete then an add": Defect(
        "vdb", lambda: UpsertDeletesThenAdds(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_concurrent_writers_and_readers_lose_nothing_and_never_tear", "vanished while being upserted",
    ),
    "vdb filtered hits carry unfiltered scores": Defect(
        "vdb", lambda: FilteredScoresFromUnfilteredRanks(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_every_filter_operator_matches_brute_force_at_scale", "scores are neither the similarity",
    ),
    "vdb load keeps earlier items": Defect(
        "vdb", lambda: LoadKeepsEarlierItems(dim=16), lambda: NumpyVectorStore(dim=16),
        "test_save_and_load_round_trip_at_scale", "load must replace the contents",
    ),
    "kv put keeps the first value": Defect(
        "kv", PutKeepsFirstValueKV, MemoryKVStore, "test_overwrites_and_deletes_at_scale", "still give their old value",
    ),
    "kv prefix taken as a LIKE pattern": Defect(
        "kv", PrefixByLikeKV, SQLiteKVStore, "test_get_keys_and_count_agree_with_a_dict_at_scale",
        "differs from the sorted keys with that prefix",
    ),
    "kv loses writes under concurrency": Defect(
        "kv", CopyOnWriteKV, MemoryKVStore, "test_concurrent_writers_and_readers_lose_nothing_and_never_tear",
        "concurrent",
    ),
    "kv saves in place": Defect(
        "kv", SavesInPlaceKV, MemoryKVStore, "test_crash_mid_save_leaves_the_previous_snapshot_loadable",
        "left a snapshot that does not load",
    ),
    "graph relation filter ignores incoming edges": Defect(
        "graph", RelationOnlyOnOutEdges, NetworkxGraphStore, "test_neighbors_match_breadth_first_search_at_scale",
        "relation='a'): missing",
    ),
    "graph neighbors sorted by name, not nearest first": Defect(
        "graph", NeighborsSortedByName, NetworkxGraphStore, "test_neighbors_match_breadth_first_search_at_scale",
        "is not nearest first",
    ),
    "embedder misorders rows of large batches": Defect(
        "embedding", lambda: UnsortsLargeBatchesWrongly(dim=64), lambda: HashingEmbedder(dim=64),
        "test_a_large_batch_matches_small_batches_row_for_row", "differ from small batches",
    ),
}


class _Backend:
    """A pytest plugin giving the inner run's suite its backend factory."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    @pytest.fixture
    def backend(self) -> Callable[[], Any]:
        return self.factory


def run_kit(pytester: pytest.Pytester, defect: Defect, factory: Callable[[], Any]) -> tuple[list[str], list[str]]:
    """Run the kit's ``defect.checks`` on ``factory``'s backends; the passed tests' names and the
    failed tests' failure texts."""
    suite, fixture, body = SUITES[defect.kind]
    declared = "".join(f"    {name} = {value!r}\n" for name, value in defect.declared.items())
    pytester.makepyfile(
        test_backend=f"import pytest\nfrom sage_core.testing import {suite}\n\n\n"
        f"class TestBackend({suite}):\n{declared}"
        f"    @pytest.fixture\n    def {fixture}(self, backend):\n        {body}\n"
    )
    result = pytester.inline_run("-k", defect.checks, "-p", "no:timeout", "-W", "ignore::pytest.PytestUnknownMarkWarning", plugins=[_Backend(factory)])
    passed, _, failed = result.listoutcomes()
    not_in_call = [r.nodeid for r in failed if r.when != "call"]
    assert not not_in_call, f"the kit errored outside the checks themselves: {not_in_call}"
    return [r.nodeid.split("::")[-1] for r in passed], [r.longreprtext for r in failed]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list(DEFECTS))
def test_the_kit_fails_the_defective_backend_and_passes_the_sound_one(pytester: pytest.Pytester, name: str) -> None:
    defect = DEFECTS[name]
    passed, failed = run_kit(pytester, defect, defect.sound)
    assert passed and not failed, f"the kit's checks fail the sound backend: {failed}"
    passed, failed = run_kit(pytester, defect, defect.defective)
    assert failed and not passed, f"the kit's checks {defect.checks} passed a backend where {name}"
    assert all(defect.reason in text for text in failed), f"the kit failed for another reason than {name}: {failed}"
