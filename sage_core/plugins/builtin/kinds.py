"""Built-in plugin: the service kinds SAGE knows (each one a contract from ``sage_core``)."""

from __future__ import annotations

from typing import Callable

from sage_core import LLM, Embedder, GraphStore, KVStore, Memory, ServiceKind, VectorStore, hookimpl

KINDS: tuple[ServiceKind, ...] = (
    ServiceKind(
        "vdb",
        VectorStore,
        "vector search over ids, vectors and metadata",
        write_methods=("add", "upsert", "delete", "load"),
    ),
    ServiceKind("embedding", Embedder, "texts to float32 vectors"),
    ServiceKind("llm", LLM, "text generation: generate, chat, stream"),
    ServiceKind("kv", KVStore, "key-value storage of JSON values", write_methods=("put", "put_many", "delete", "load")),
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
