"""The built-in hashing embedder passes the embedder contract suite."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core.builtin.hashing_embedder import HashingEmbedder
from sage_core.services.batching import batch_spec
from sage_core.testing import EmbedderContract


class TestHashingEmbedder(EmbedderContract):
    atol = 0.0

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls):
        return HashingEmbedder(dim=64)


def test_vectors_are_identical_across_instances() -> None:
    a, b = HashingEmbedder(dim=32, seed=3), HashingEmbedder(dim=32, seed=3)
    np.testing.assert_array_equal(a.embed(["hello world"]), b.embed(["hello world"]))


def test_a_single_string_gives_one_vector() -> None:
    out = HashingEmbedder(dim=16).embed("hello")
    assert out.shape == (16,)


def test_text_without_words_maps_to_zero_vector() -> None:
    out = HashingEmbedder(dim=16).embed(["", "!!!"])
    assert not out.any()


def test_non_string_items_are_rejected() -> None:
    with pytest.raises(ValueError, match="item 1"):
        HashingEmbedder().embed(["ok", 3])


def test_embed_is_batchable_on_texts() -> None:
    assert batch_spec(HashingEmbedder.embed).arg == "texts"
