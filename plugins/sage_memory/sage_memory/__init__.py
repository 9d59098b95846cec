"""sage-memory: long-term memory for SAGE pipelines over KV, vector and graph stores.

``env.register_service("memory_service", lambda: MemoryService())`` gives a working memory with the
built-in CPU backends; config picks any installed backend for each store (see :mod:`sage_memory.config`).
"""

from sage_memory.config import MemoryConfig, RetrievalConfig, StoreConfig
from sage_memory.service import MemoryService
from sage_memory.stores import MemoryStores

__all__ = ["MemoryConfig", "MemoryService", "MemoryStores", "RetrievalConfig", "StoreConfig"]
