"""Contract suite for :class:`sage_core.Embedder` backends (kind ``embedding``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sage_core.testing._calls import call

TEXTS = ["the cat sat on the mat", "stock markets fell sharply today", "a recipe for tomato soup"]


class EmbedderContract:
    """Subclass and define an ``embedder`` fixture returning a ready embedder.

    The fixture may have any scope (``scope="class"`` for a model that is slow to load); the suite
    does not close it. ``atol`` bounds how far a row may move between a batch and a single call
    (batch padding changes GPU numerics slightly).
    """

    atol: float = 1e-3

    @pytest.fixture
    def embedder(self) -> Any:
        """Override: ``return MyEmbedder()``."""
        pytest.fail(f"{type(self).__name__} must define an embedder fixture")

    def test_embed_returns_float32_matrix_with_one_row_per_text(self, embedder: Any) -> None:
        out = np.asarray(call(embedder.embed, TEXTS))
        assert out.dtype == np.float32
        assert out.shape == (len(TEXTS), embedder.dim)

    def test_rows_are_l2_normalised(self, embedder: Any) -> None:
        out = np.asarray(call(embedder.embed, TEXTS))
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)

    def test_same_text_gives_same_vector(self, embedder: Any) -> None:
        first = np.asarray(call(embedder.embed, [TEXTS[0]]))
        again = np.asarray(call(embedder.embed, [TEXTS[0]]))
        np.testing.assert_allclose(first, again, atol=self.atol)

    def test_different_texts_give_different_vectors(self, embedder: Any) -> None:
        out = np.asarray(call(embedder.embed, TEXTS))
        assert float(out[0] @ out[1]) < 0.99

    def test_batch_rows_match_single_calls_in_order(self, embedder: Any) -> None:
        batch = np.asarray(call(embedder.embed, TEXTS))
        singles = np.concatenate([np.asarray(call(embedder.embed, [t])) for t in TEXTS])
        np.testing.assert_allclose(batch, singles, atol=self.atol)

    def test_similar_texts_score_higher_than_unrelated_ones(self, embedder: Any) -> None:
        out = np.asarray(call(embedder.embed, ["the cat sat on the mat", "a cat sat on a mat", TEXTS[1]]))
        assert float(out[0] @ out[1]) > float(out[0] @ out[2])

    def test_empty_batch_returns_zero_rows(self, embedder: Any) -> None:
        out = np.asarray(call(embedder.embed, []))
        assert out.shape == (0, embedder.dim)

    def test_dim_is_a_positive_int(self, embedder: Any) -> None:
        assert isinstance(embedder.dim, int) and embedder.dim > 0


__all__ = ["EmbedderContract"]
