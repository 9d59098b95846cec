"""The built-in kinds and backends register through hooks, like third-party plugins."""

from __future__ import annotations

from sage_core.plugin import GraphStore, KVStore, VectorStore
from sage_core.plugins.manager import DEFAULT_PLUGINS, PluginManager


def test_every_builtin_plugin_loads_without_errors() -> None:
    plugins = {p.name: p for p in PluginManager(load_entry_points=False).plugins()}
    for module in DEFAULT_PLUGINS:
        assert plugins[module].error is None, plugins[module].error
        assert plugins[module].hooks


def test_six_kinds_with_write_methods_for_stateful_ones() -> None:
    kinds = PluginManager(load_entry_points=False).kinds()
    assert set(kinds) == {"vdb", "embedding", "llm", "kv", "graph", "memory"}
    assert {"add", "upsert", "delete"} <= set(kinds["vdb"].write_methods)
    assert {"put", "delete"} <= set(kinds["kv"].write_methods)
    assert {"add_node", "add_edge", "remove_node"} <= set(kinds["graph"].write_methods)
    assert kinds["memory"].write_methods and not kinds["llm"].write_methods and not kinds["embedding"].write_methods
    assert kinds["vdb"].contract is VectorStore and kinds["kv"].contract is KVStore and kinds["graph"].contract is GraphStore


def test_builtin_backends_are_offered_by_name_and_kind() -> None:
    offered = {(b.kind, b.name) for b in PluginManager(load_entry_points=False).backends()}
    assert {("vdb", "numpy"), ("kv", "memory"), ("kv", "sqlite"), ("graph", "networkx"), ("embedding", "hashing")} <= offered


def test_builtin_backends_satisfy_their_protocols() -> None:
    from sage_core.builtin.graph_store import NetworkxGraphStore
    from sage_core.builtin.kv_stores import MemoryKVStore, SQLiteKVStore
    from sage_core.builtin.numpy_vdb import NumpyVectorStore

    assert isinstance(NumpyVectorStore(dim=4), VectorStore)
    assert isinstance(MemoryKVStore(), KVStore) and isinstance(SQLiteKVStore(), KVStore)
    assert isinstance(NetworkxGraphStore(), GraphStore)
