"""Built-in plugin: the service kinds SAGE knows (each one a contract from ``sage_core``).

They register through the same hook as a plugin's kinds. The stores declare their sharding with
:mod:`sage_core.plugins.sharding`: the vector store by the hash of each id (``search`` keeps the
exact top-k of every shard's hits), the KV store by key; both save one file per shard. The graph
store and memory do not shard (an edge or a link may join two shards), nor do the stateless llm and
embedding kinds: ``replicas`` share their load.
"""

from __future__ import annotations

from typing import Callable

from sage_core.plugin import (
    LLM,
    Embedder,
    GraphStore,
    KVStore,
    Memory,
    ServiceKind,
    VectorStore,
    by_items,
    by_key,
    by_keys,
    concat_sorted,
    fan_out,
    hookimpl,
    shard_files,
    top_k,
    total,
)

VECTOR_ROWS = ("vectors", "metadata")
"""The vector store's arguments with one row per id."""

KINDS: tuple[ServiceKind, ...] = (
    ServiceKind(
        "vdb",
        VectorStore,
        "vector search over ids, vectors and metadata",
        write_methods=("add", "upsert", "delete", "load"),
        sharding={
            "add": by_keys("ids", aligned=VECTOR_ROWS, new_keys_for="vectors"),
            "upsert": by_keys("ids", aligned=VECTOR_ROWS),
            "get": by_keys("ids"),
            "delete": by_keys("ids", merge=total),
            "search": fan_out(top_k("top_k", queries="query")),
            "count": fan_out(total),
            "save": shard_files("path"),
            "load": shard_files("path"),
        },
    ),
    ServiceKind("embedding", Embedder, "texts to float32 vectors"),
    ServiceKind("llm", LLM, "text generation: generate, chat, stream"),
    ServiceKind(
        "kv",
        KVStore,
        "key-value storage of JSON values",
        write_methods=("put", "put_many", "delete", "load"),
        sharding={
            "put": by_key("key"),
            "put_many": by_items("items"),
            "get": by_key("key"),
            "delete": by_key("key"),
            "keys": fan_out(concat_sorted),
            "count": fan_out(total),
            "save": shard_files("path"),
            "load": shard_files("path"),
        },
    ),
    ServiceKind(
        "graph",
        GraphStore,
        "directed graph of string nodes with labelled edges",
        write_methods=("add_node", "add_edge", "remove_node", "load"),
    ),
    ServiceKind(
        "memory",
        Memory,
        "long-term memory over KV, vector and graph stores",
        write_methods=("store_memory", "store_memories", "update", "delete", "link", "clear_session"),
    ),
)


@hookimpl
def sage_services(register: Callable[[ServiceKind], None]) -> None:
    """Offer the six built-in service kinds."""
    for kind in KINDS:
        register(kind)


__all__ = ["KINDS", "sage_services"]
