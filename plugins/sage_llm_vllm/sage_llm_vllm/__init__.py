"""SAGE services on vLLM: an LLM on vLLM's async engine, and embedders (vLLM pooling,
sentence-transformers, model2vec), registered through the ``sage`` entry point group.

Configure them by name (``{kind: llm, backend: vllm, options: {model: /path}}``) or use the
classes directly. Heavy packages load only when a backend starts.
"""

from __future__ import annotations

from sage_core.plugin import lazy_exports

_EXPORTS = {
    "VLLMService": "sage_llm_vllm.llm",
    "LLMService": "sage_llm_vllm.llm",
    "VLLMEmbedder": "sage_llm_vllm.vllm_embedding",
    "SentenceTransformersEmbedder": "sage_llm_vllm.embedders",
    "EmbeddingService": "sage_llm_vllm.embedders",
    "Model2VecEmbedder": "sage_llm_vllm.embedders",
    "build_random_llama": "sage_llm_vllm.models",
    "convert_smollm2": "sage_llm_vllm.models",
    "smollm2_path": "sage_llm_vllm.models",
    "TINY_LLAMA": "sage_llm_vllm.models",
    "LLAMA_1B": "sage_llm_vllm.models",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
