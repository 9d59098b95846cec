"""The ``sage`` entry point of sage-memory: offers the ``sage_memory`` backend of kind ``memory``.

Config: ``{kind: memory, backend: sage_memory, options: {kv: ..., vector: ..., graph: ...,
embedder: ..., retrieval: ..., path: ...}}``, validated by :class:`sage_memory.config.MemoryConfig`.
A part given as ``{service: name}`` is that registered service, reached through the ``services``
table SAGE gives this factory.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from sage_core.plugin import BackendSpec, hookimpl
from sage_memory.config import MemoryConfig
from sage_memory.service import MemoryService


def create_memory_service(device: str = "cpu", services: Mapping[str, Any] | None = None, **options: Any) -> MemoryService:
    """The backend factory: a :class:`MemoryService` whose own stores inherit ``device``, its service parts found in ``services``."""
    return MemoryService(device=device, services=services, **options)


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the memory backend."""
    register(
        BackendSpec(
            kind="memory",
            name="sage_memory",
            factory=create_memory_service,
            devices=("cpu", "cuda"),
            description="long-term memory over KV, vector and graph stores, its own or registered services (hybrid retrieval, journaled persistence)",
            options=MemoryConfig,
        )
    )
