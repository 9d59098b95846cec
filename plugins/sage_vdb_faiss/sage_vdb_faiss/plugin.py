"""The ``faiss`` backend of kind ``vdb``, offered to SAGE through the ``sage`` entry point group."""

from __future__ import annotations

from typing import Any, Callable

from sage_core.plugin import BackendSpec, hookimpl

from sage_vdb_faiss.config import FaissOptions
from sage_vdb_faiss.service import VDBService


def create_backend(device: str = "auto", **options: Any) -> VDBService:
    """Backend factory: ``factory(device="auto" | "cpu" | "cuda" | "cuda:N", **options)``, options as :class:`FaissOptions` validates them.

    Raises :class:`sage_core.plugin.BackendUnavailable` when ``device`` names a GPU this machine lacks,
    so the service layer can move to the configured fallback.
    """
    return VDBService(device=device, **options)


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the FAISS vector store."""
    register(
        BackendSpec(
            kind="vdb",
            name="faiss",
            factory=create_backend,
            devices=("cpu", "cuda"),
            description="FAISS vector search (Flat, IVF, HNSW, IVF-PQ); GPU with fp16, shards or replicas",
            options=FaissOptions,
        )
    )
