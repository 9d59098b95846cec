"""The plugin author's API: everything a package needs to offer SAGE a service kind or a backend.

::

    from sage_core.plugin import BackendSpec, ServiceKind, batchable, hookimpl

Hooks (:mod:`sage_core.plugins.hookspecs`), what to register (``ServiceKind``, ``BackendSpec``), how
concurrent calls coalesce (``batchable``), the contracts with their result types, the input
checks every store shares, and the errors a backend raises. Pipeline users need none of it:
their API is :mod:`sage_core`. Backends are tested against their contract with
:mod:`sage_core.testing`. Names load lazily, so importing this module is cheap.
"""

from __future__ import annotations

from sage_core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # registering
    "hookimpl": "sage_core.plugins.hookspecs",
    "ServiceKind": "sage_core.plugins.specs",
    "BackendSpec": "sage_core.plugins.specs",
    "get_plugin_manager": "sage_core.plugins.manager",
    "lazy_exports": "sage_core.lazy",
    # sharding: how a kind's methods spread over shards and merge
    "ShardRule": "sage_core.plugins.sharding",
    "by_key": "sage_core.plugins.sharding",
    "by_keys": "sage_core.plugins.sharding",
    "by_items": "sage_core.plugins.sharding",
    "fan_out": "sage_core.plugins.sharding",
    "broadcast": "sage_core.plugins.sharding",
    "shard_files": "sage_core.plugins.sharding",
    "first": "sage_core.plugins.sharding",
    "total": "sage_core.plugins.sharding",
    "concat": "sage_core.plugins.sharding",
    "concat_sorted": "sage_core.plugins.sharding",
    "top_k": "sage_core.plugins.sharding",
    # serving calls
    "batchable": "sage_core.services.batching",
    "ReadWriteLock": "sage_core.services.locks",
    # contracts and their types
    "VectorStore": "sage_core.services.contracts",
    "Embedder": "sage_core.services.contracts",
    "LLM": "sage_core.services.contracts",
    "KVStore": "sage_core.services.contracts",
    "GraphStore": "sage_core.services.contracts",
    "Memory": "sage_core.services.contracts",
    "MetadataFilter": "sage_core.services.contracts",
    "Hit": "sage_core.services.contracts",
    "Hits": "sage_core.services.hits",
    "HitBatch": "sage_core.services.hits",
    "Completion": "sage_core.services.contracts",
    "SamplingParams": "sage_core.services.contracts",
    # shared input checks
    "check_device": "sage_core.services.devices",
    "resolve_device": "sage_core.services.devices",
    "MetadataIndex": "sage_core.services.metadata_index",
    "as_matrix": "sage_core.services.vector_inputs",
    "as_top_k": "sage_core.services.vector_inputs",
    "copy_metadata": "sage_core.services.vector_inputs",
    "embed_texts": "sage_core.services.contracts",
    # options models: a pydantic ValidationError as lines naming each key path and the valid keys
    "describe_errors": "sage_core.services.key_paths",
    # errors
    "BackendUnavailable": "sage_core.errors",
    "ConfigError": "sage_core.errors",
    "ServiceError": "sage_core.errors",
    "ServiceTimeout": "sage_core.errors",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
