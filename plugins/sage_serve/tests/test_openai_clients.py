"""The official ``openai`` client (sync, async, streaming) against ``sage serve`` of the echo pipeline."""

from __future__ import annotations

import asyncio

import numpy as np
import openai
import pytest
from sage_serve.testing import user

from sage_core.builtin.hashing_embedder import HashingEmbedder


@pytest.mark.timeout(60)
def test_models_lists_the_served_pipelines_and_embedding_services(client: openai.OpenAI) -> None:
    models = {model.id: model.owned_by for model in client.models.list()}
    assert models == {"echo": "sage-pipeline", "echo-quick": "sage-pipeline", "echo-one": "sage-pipeline", "embedder": "sage-service"}


@pytest.mark.timeout(60)
def test_chat_completion_answers_through_the_pipeline_with_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=user("the quick brown fox"))
    assert completion.object == "chat.completion" and completion.model == "echo"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.content == "the quick brown fox"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (4, 4, 8)


@pytest.mark.timeout(60)
def test_streamed_chat_sends_pieces_as_produced_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo", messages=user("one two three four"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == ["one ", "two ", "three ", "four "]
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 4
    assert len({c.id for c in chunks}) == 1


@pytest.mark.timeout(60)
def test_max_tokens_reaches_the_service(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="echo", messages=user("a b c d e f"), stream=True, max_tokens=2)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b "


@pytest.mark.timeout(120)
def test_64_concurrent_requests_each_get_their_own_answer(async_client: openai.AsyncOpenAI) -> None:
    async def ask(i: int) -> tuple[int, str]:
        words = f"request {i} asks {i * 7}"
        if i % 2:
            stream = await async_client.chat.completions.create(model="echo", messages=user(words), stream=True)
            return i, "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]).strip()
        completion = await async_client.chat.completions.create(model="echo", messages=user(words))
        return i, completion.choices[0].message.content or ""

    async def ask_all() -> list[tuple[int, str]]:
        return await asyncio.gather(*(ask(i) for i in range(64)))

    answers = asyncio.run(ask_all())
    assert answers == [(i, f"request {i} asks {i * 7}") for i in range(64)]


@pytest.mark.timeout(60)
def test_embeddings_come_from_the_embedding_service(client: openai.OpenAI) -> None:
    texts = ["a passage about rivers", "another about mountains"]
    response = client.embeddings.create(model="embedder", input=texts)
    got = np.array([row.embedding for row in response.data], dtype=np.float32)
    expected = HashingEmbedder(dim=16).embed(texts)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert [row.index for row in response.data] == [0, 1] and response.model == "embedder"
    assert response.usage.prompt_tokens == 7
    # the client asks for base64 by default when numpy is around; float lists on request
    floats = client.embeddings.create(model="embedder", input="a passage about rivers", encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, expected[0], rtol=1e-6, atol=1e-6)
