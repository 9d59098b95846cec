"""Contract suite for :class:`sage_core.plugin.Embedder` backends (kind ``embedding``).

Besides the basics on three texts, it checks that one batch of 5,000 texts (``large_batch``) gives,
row for row, what small batches give (batch splitting, padding and reordering bugs show only in large batches),
that eight threads embedding at once each get their own rows, and that non-string input raises
``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sage_core.testing._calls import call
from sage_core.testing._threads import THREADS, run_concurrently

TEXTS = ["the cat sat on the mat", "stock markets fell sharply today", "a recipe for tomato soup"]
SCALE = 5_000
SMALL_BATCH = 37
WORDS = ("river", "stone", "cloud", "market", "engine", "garden", "violin", "harbor", "pepper", "lantern", "falcon")


def scale_texts(count: int = SCALE) -> list[str]:
    """``count`` distinct texts of 2 to 21 words (varied lengths, as real batches have)."""
    rng = np.random.default_rng(0)
    return [f"item {i} " + " ".join(rng.choice(WORDS, size=int(rng.integers(0, 20)))) for i in range(count)]


@pytest.mark.timeout(300)
class EmbedderContract:
    """Subclass and define an ``embedder`` fixture returning a ready embedder.

    The fixture may have any scope (``scope="class"`` for a model that is slow to load); the suite
    does not close it. ``atol`` bounds how far a row may move between a batch and a single call
    (batch padding changes GPU numerics slightly). ``large_batch`` is the size of the one large
    batch checked against small ones: keep it above the backend's internal batch size (a neural
    model on a CPU may lower it to keep the suite quick).
    """

    atol: float = 1e-3
    large_batch: int = SCALE

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

    def test_a_large_batch_matches_small_batches_row_for_row(self, embedder: Any) -> None:
        count = self.large_batch
        texts = scale_texts(count)
        whole = np.asarray(call(embedder.embed, texts))
        assert whole.shape == (count, embedder.dim) and whole.dtype == np.float32
        assert np.isfinite(whole).all(), "a large batch gave NaN or infinite values"
        np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-3)
        starts = range(0, count, 5 * SMALL_BATCH)  # every fifth small batch, spread over the large one
        rows = np.concatenate([np.arange(i, min(i + SMALL_BATCH, count)) for i in starts])
        parts = np.concatenate([np.asarray(call(embedder.embed, texts[i : i + SMALL_BATCH])) for i in starts])
        far = rows[np.abs(whole[rows] - parts).max(axis=1) > self.atol]
        assert not len(far), f"{len(far)} of {len(rows)} rows of one large batch differ from small batches, e.g. rows {far[:5].tolist()}"

    def test_concurrent_callers_each_get_their_own_rows(self, embedder: Any) -> None:
        each = 20
        texts = scale_texts(THREADS * each)
        expected = np.asarray(call(embedder.embed, texts))
        got: dict[int, np.ndarray] = {}

        def caller(t: int) -> Any:
            def work() -> None:
                mine = range(t * each, (t + 1) * each, 5)
                got[t] = np.concatenate([np.asarray(call(embedder.embed, texts[i : i + 5])) for i in mine])

            return work

        run_concurrently([caller(t) for t in range(THREADS)])
        for t in range(THREADS):
            np.testing.assert_allclose(got[t], expected[t * each : (t + 1) * each], atol=self.atol, err_msg=f"thread {t} got other rows")

    @pytest.mark.parametrize("bad", [[1], ["ok", None], ["ok", b"bytes"]], ids=repr)
    def test_non_string_texts_raise_value_error(self, embedder: Any, bad: list[Any]) -> None:
        with pytest.raises(ValueError):
            call(embedder.embed, bad)


__all__ = ["EmbedderContract", "scale_texts"]
