"""A kind defined only here (contract, backend, sharding rules) shards and replicates like the built-in stores.

The kind registers through the plugin manager's public path (a plugin object with ``@hookimpl``
functions), is configured with ``shards: 3, replicas: 2``, and answers every call exactly as one
unsharded backend does: reads merged across shards, writes routed by key or broadcast.
"""

from __future__ import annotations

import operator
import uuid
from typing import Any, Iterator, Mapping, Protocol, Sequence

import pytest

from sage_core import LocalEnvironment, MapFunction
from sage_core.plugin import (
    BackendSpec,
    ServiceError,
    ServiceKind,
    get_plugin_manager,
    hookimpl,
)
from sage_core.plugins.sharding import (
    ShardRule,
    broadcast,
    by_items,
    by_key,
    by_keys,
    concat,
    concat_sorted,
    fan_out,
    top_k,
    total,
)
from sage_core.services.registry import ServiceRegistry

SHARDED = {"kind": "docs", "backend": "words", "shards": 3, "replicas": 2}
DOCS = {f"doc-{i:03d}": " ".join(["apple"] * (i % 4) + ["pear"] * (i % 3) + [f"w{i % 5}"]) for i in range(60)}
WORDS = ["apple", "pear", "w0", "w3", "plum"]


class Match:
    """One search hit: a document id and its score."""

    def __init__(self, id: str, score: float) -> None:
        self.id, self.score = id, score

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and (self.id, self.score) == (other.id, other.score)

    def __repr__(self) -> str:
        return f"Match({self.id!r}, {self.score})"


rank = operator.attrgetter("score", "id")
"""Best first: the highest score, then the highest id (a total order, so ties never depend on shards)."""


class DocIndex(Protocol):
    """The contract of kind ``docs``: texts by id, searched by word."""

    def put(self, doc_id: str, text: str) -> None: ...
    def put_many(self, docs: Mapping[str, str]) -> int: ...
    def add(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None) -> list[str]: ...
    def get_many(self, doc_ids: Sequence[str]) -> list[str | None]: ...
    def drop(self, doc_ids: Sequence[str]) -> int: ...
    def boost(self, word: str, factor: float) -> None: ...
    def search(self, words: str | Sequence[str], limit: int = 3) -> list[Match] | list[list[Match]]: ...
    def count(self) -> int: ...
    def ids(self, prefix: str = "") -> list[str]: ...
    def containing(self, word: str) -> list[str]: ...
    def stats(self) -> dict[str, int]: ...


class WordIndex:
    """A backend of kind ``docs``: a dict of texts; a word's score is its count in a text times its boost."""

    def __init__(self, device: str = "cpu") -> None:
        self.docs: dict[str, str] = {}
        self.boosts: dict[str, float] = {}

    def put(self, doc_id: str, text: str) -> None:
        self.docs[doc_id] = text

    def put_many(self, docs: Mapping[str, str]) -> int:
        self.docs.update(docs)
        return len(docs)

    def add(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None) -> list[str]:
        ids = list(doc_ids) if doc_ids is not None else [uuid.uuid4().hex for _ in texts]
        self.docs.update(zip(ids, texts))
        return ids

    def get_many(self, doc_ids: Sequence[str]) -> list[str | None]:
        return [self.docs.get(doc_id) for doc_id in doc_ids]

    def drop(self, doc_ids: Sequence[str]) -> int:
        return sum(self.docs.pop(doc_id, None) is not None for doc_id in doc_ids)

    def boost(self, word: str, factor: float) -> None:
        self.boosts[word] = factor

    def search(self, words: str | Sequence[str], limit: int = 3) -> list[Match] | list[list[Match]]:
        if not isinstance(words, str):
            return [self.search(word, limit) for word in words]
        factor = self.boosts.get(words, 1.0)
        matches = [Match(i, text.split().count(words) * factor) for i, text in self.docs.items() if words in text.split()]
        return sorted(matches, key=rank, reverse=True)[:limit]

    def count(self) -> int:
        return len(self.docs)

    def ids(self, prefix: str = "") -> list[str]:
        return sorted(i for i in self.docs if i.startswith(prefix))

    def containing(self, word: str) -> list[str]:
        return [doc_id for doc_id, text in self.docs.items() if word in text.split()]

    def stats(self) -> dict[str, int]:
        return {"docs": len(self.docs)}

    def close(self) -> None:
        pass


SHARDING: dict[str, ShardRule] = {
    "put": by_key("doc_id"),
    "put_many": by_items("docs", merge=total),
    "add": by_keys("doc_ids", aligned=("texts",), new_keys_for="texts", row_ndim=0),
    "get_many": by_keys("doc_ids"),
    "drop": by_keys("doc_ids", merge=total),
    "boost": broadcast(),
    "search": fan_out(top_k("limit", score=rank, queries="words", query_ndim=0)),
    "count": fan_out(total),
    "ids": fan_out(concat_sorted),
    "containing": fan_out(concat),
}


class DocsPlugin:
    """A third-party plugin as the README describes one: a kind with its sharding, and a backend."""

    @hookimpl
    def sage_services(self, register) -> None:
        register(ServiceKind("docs", DocIndex, "texts searched by word", ("put", "put_many", "add", "drop", "boost"), SHARDING))

    @hookimpl
    def sage_backends(self, register) -> None:
        register(BackendSpec(kind="docs", name="words", factory=WordIndex))


@pytest.fixture
def docs_plugin() -> Iterator[None]:
    """The ``docs`` kind and its ``words`` backend registered in-process, unregistered afterwards."""
    plugins = get_plugin_manager()
    plugins.register(DocsPlugin(), name="test-docs-kind")
    yield
    plugins.unregister("test-docs-kind")


@pytest.fixture
def sharded(docs_plugin: None, manager: ServiceRegistry) -> Any:
    """The blocking proxy of a ``docs`` service with 3 shards of 2 replicas, registered from config."""
    manager.register_config({"docs": SHARDED})
    return manager.sync["docs"]


def shard_contents(manager: ServiceRegistry, name: str = "docs") -> list[list[WordIndex]]:
    """Each shard's replica backends."""
    return [[replica.backend for replica in shard.replicas] for shard in manager.service(name).tiers[0].shards]


@pytest.mark.timeout(60)
def test_a_plugins_own_kind_sharded_and_replicated_answers_like_one_backend(sharded: Any, manager: ServiceRegistry) -> None:
    single = WordIndex()
    items = list(DOCS.items())
    for doc_id, text in items[:20]:
        assert sharded.put(doc_id, text) == single.put(doc_id, text)
    assert sharded.put_many(dict(items[20:])) == single.put_many(dict(items[20:])) == 40
    assert sharded.boost("pear", 2.5) == single.boost("pear", 2.5)
    assert sharded.drop(["doc-004", "doc-033", "nope"]) == single.drop(["doc-004", "doc-033", "nope"]) == 2

    assert sharded.count() == single.count() == 58
    assert sharded.ids("doc-01") == single.ids("doc-01")
    assert sorted(sharded.containing("w3")) == sorted(single.containing("w3"))
    asked = ["doc-059", "nope", "doc-004", "doc-010", "doc-001"]
    assert sharded.get_many(asked) == single.get_many(asked)
    for word in WORDS:
        assert sharded.search(word, limit=7) == single.search(word, limit=7)
    assert sharded.search(WORDS, limit=4) == single.search(WORDS, limit=4)

    shards = shard_contents(manager)
    assert [len(replicas) for replicas in shards] == [2, 2, 2]
    assert all(a.docs == b.docs and a.docs for a, b in shards), "replicas of a shard hold the same documents"
    assert sum(len(a.docs) for a, _ in shards) == 58, "each document lives on exactly one shard"
    assert all(backend.boosts == {"pear": 2.5} for replicas in shards for backend in replicas), "broadcast reaches all"


@pytest.mark.timeout(60)
def test_keys_left_out_are_assigned_once_so_every_copy_stores_the_same(sharded: Any, manager: ServiceRegistry) -> None:
    texts = ["plum tart", "pear tart", "apple pie", "plum jam"]
    ids = sharded.add(texts)
    assert len(set(ids)) == 4 and sharded.get_many(ids) == texts
    shards = shard_contents(manager)
    assert all(a.docs == b.docs for a, b in shards)
    assert sorted(i for a, _ in shards for i in a.docs) == sorted(ids)


@pytest.mark.timeout(60)
def test_a_method_without_a_rule_names_the_kind_and_the_methods_that_shard(sharded: Any) -> None:
    with pytest.raises(ServiceError, match=r"kind 'docs' has no sharding rule for stats\(\).*methods that shard: add, boost, containing, count, drop"):
        sharded.stats()


@pytest.mark.timeout(60)
def test_a_sharding_entry_that_is_not_a_rule_is_refused() -> None:
    with pytest.raises(TypeError, match=r"sharding\['count'\] is a function, not a ShardRule"):
        ServiceKind("docs", DocIndex, sharding={"count": total})  # type: ignore[dict-item]


class Put(MapFunction):
    """Stores one ``(doc_id, text)`` record through the service."""

    def execute(self, record: tuple[str, str]) -> str:
        doc_id, text = record
        self.call_service["docs"].put(doc_id, text)
        return doc_id


class Search(MapFunction):
    """Searches one word through the service."""

    def execute(self, word: str) -> list[Match]:
        return self.call_service["docs"].search(word, limit=5)


@pytest.mark.timeout(120)
def test_a_pipeline_writes_and_searches_a_sharded_plugin_kind(docs_plugin: None) -> None:
    single = WordIndex()
    single.put_many(DOCS)
    with LocalEnvironment("docs", config={"services": {"docs": SHARDED}}) as env:
        stored = env.from_batch(list(DOCS.items())).map(Put, parallelism=2).collect()
        env.submit(autostop=True)
        assert sorted(stored.records) == sorted(DOCS)
        found = env.from_batch(WORDS).map(Search).collect()
        env.submit(autostop=True)
        assert found.records == [single.search(word, limit=5) for word in WORDS]
        assert env.services.sync["docs"].count() == len(DOCS)
