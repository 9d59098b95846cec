"""Built-in plugin: an embedder that needs no model (backend ``hashing`` of kind ``embedding``).

Feature hashing of word n-grams: each lower-cased word n-gram (``ngram_range``, default 1 and 2)
is hashed with CRC-32 (seeded by ``seed``) to a column and a sign; rows are L2-normalised float32
(options: :class:`HashingEmbedderOptions`).
Deterministic across processes and machines. Texts sharing words get similar vectors, which is
what tests, demos and CPU-only pipelines need; it knows nothing of meaning. A text without any
word maps to the zero vector.
"""

from __future__ import annotations

import re
import zlib
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sage_core.plugin import BackendSpec, BackendUnavailable, batchable, embed_texts, hookimpl

_WORD = re.compile(r"\w+")


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the hashing embedder."""
    register(
        BackendSpec(
            kind="embedding",
            name="hashing",
            factory=HashingEmbedder,
            description="feature hashing of word n-grams; no model, deterministic",
            options=HashingEmbedderOptions,
        )
    )


class HashingEmbedderOptions(BaseModel):
    """Options of the ``hashing`` embedder (``services.<name>.options``); its constructor takes the same names."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    dim: int = Field(384, ge=1)
    """Columns of each vector."""
    ngram_range: tuple[int, int] = (1, 2)
    """Shortest and longest word n-grams hashed, ``(low, high)`` with ``1 <= low <= high``."""
    seed: int = 0
    """Seed of the CRC-32 hash: another seed gives other (equally good) vectors."""

    @field_validator("ngram_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 1 <= low <= high:
            msg = f"ngram_range must be (low, high) with 1 <= low <= high, got {value!r}"
            raise ValueError(msg)
        return value


class HashingEmbedder:
    """Texts to L2-normalised float32 vectors of ``dim`` columns by hashing word n-grams (options: :class:`HashingEmbedderOptions`)."""

    def __init__(
        self, dim: int = 384, ngram_range: Sequence[int] = (1, 2), seed: int = 0, device: str = "cpu"
    ) -> None:
        if not str(device).startswith(("cpu", "auto")):
            msg = f"the hashing embedder runs on cpu only, not {device!r}; set device: cpu (or auto)"
            raise BackendUnavailable(msg)
        options = HashingEmbedderOptions(dim=dim, ngram_range=tuple(ngram_range), seed=seed)
        self.dim = options.dim
        self.ngram_range = options.ngram_range
        self.seed = options.seed & 0xFFFFFFFF

    @batchable(arg="texts", max_size=512)
    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """One row per text (a ``str`` alone gives one 1-D vector)."""
        single, items = embed_texts(texts)
        columns: list[int] = []
        weights: list[float] = []
        for row, text in enumerate(items):
            for feature in self._features(text):
                code = zlib.crc32(feature.encode(), self.seed)
                columns.append(row * self.dim + code % self.dim)
                weights.append(1.0 if code & 0x80000000 else -1.0)
        flat = np.bincount(columns, weights=weights, minlength=len(items) * self.dim) if columns else None
        out = (
            flat.reshape(len(items), self.dim).astype(np.float32)
            if flat is not None
            else np.zeros((len(items), self.dim), dtype=np.float32)
        )
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out[0] if single else out

    def close(self) -> None:
        """Nothing to release."""

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        low, high = self.ngram_range
        return [" ".join(words[i : i + n]) for n in range(low, high + 1) for i in range(len(words) - n + 1)]


__all__ = ["HashingEmbedder", "HashingEmbedderOptions", "sage_backends"]
