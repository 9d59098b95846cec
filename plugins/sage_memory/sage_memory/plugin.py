"""The ``sage`` entry point of sage-memory: offers the ``sage_memory`` backend of kind ``memory``.

Config: ``{kind: memory, backend: sage_memory, options: {kv: ..., vector: ..., graph: ...,
embedder: ..., retrieval: ..., path: ...}}`` (see :mod:`sage_memory.config`).
"""

from __future__ import annotations

from typing import Any, Callable

from sage_core.plugin import BackendSpec, hookimpl

from sage_memory.service import MemoryService


def create_memory_service(device: str = "cpu", **options: Any) -> MemoryService:
    """The backend factory: a :class:`MemoryService` whose vector store and embedder inherit ``device``."""
    return MemoryService(device=device, **options)


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the memory backend."""
    register(
        BackendSpec(
            kind="memory",
            name="sage_memory",
            factory=create_memory_service,
            devices=("cpu", "cuda"),
            description="long-term memory over configurable KV, vector and graph stores (hybrid retrieval, journaled persistence)",
        )
    )
