"""The ``faiss`` backend of kind ``vdb``, offered to SAGE through the ``sage`` entry point group."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

from sage_core.plugin import BackendSpec, hookimpl

from sage_vdb_faiss.config import FaissConfig
from sage_vdb_faiss.service import VDBService


def create_backend(device: str = "auto", **options: Any) -> VDBService:
    """Backend factory: ``factory(device="auto" | "cpu" | "cuda" | "cuda:N", **options)``.

    Raises :class:`sage_core.plugin.BackendUnavailable` when ``device`` names a GPU this machine lacks,
    so the service layer can move to the configured fallback.
    """
    return VDBService(device=device, **options)


def _options_signature() -> inspect.Signature:
    """``create_backend``'s signature spelled out from :class:`FaissConfig`, so the service layer's
    config check names every valid option and a fallback receives only options it accepts."""
    parameters = [inspect.Parameter("device", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="auto")]
    for field in dataclasses.fields(FaissConfig):
        if field.name != "device":
            parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default))
    return inspect.Signature(parameters, return_annotation=VDBService)


create_backend.__signature__ = _options_signature()  # type: ignore[attr-defined]


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
        )
    )
