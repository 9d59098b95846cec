"""``sage serve`` of a Ray job: the echo pipeline in a ``RemoteEnvironment``, the HTTP front end in the driver.

Starts a local Ray instance in the server process (about 20 s on two cores), so it is marked ``ray``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sage_serve.testing import ServerProcess, user

ECHO_PIPELINE = Path(__file__).with_name("echo_pipeline.py")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_server() -> Iterator[ServerProcess]:
    """The echo pipeline served as a Ray job, ready; it must exit 0 on SIGTERM."""
    pytest.importorskip("ray")
    process = ServerProcess(ECHO_PIPELINE, env={"ECHO_RAY": "1"}).wait_ready()
    yield process
    try:
        assert process.terminate() == 0, process.output[-3000:]
    finally:
        process.kill()


@pytest.fixture
def client(ray_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{ray_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.timeout(300)
def test_a_ray_job_answers_whole_and_streamed(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=user("answered by a ray job"))
    assert completion.choices[0].message.content == "answered by a ray job"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    stream = client.chat.completions.create(model="echo", messages=user("one two three"), stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == ["one ", "two ", "three "]


@pytest.mark.timeout(300)
def test_concurrent_requests_on_ray_each_get_their_own_answer(ray_server: ServerProcess) -> None:
    async_client = openai.AsyncOpenAI(base_url=f"{ray_server.url}/v1", api_key="unused", max_retries=0, timeout=120)

    async def ask(i: int) -> tuple[int, str]:
        words = f"request {i} asks {i * 7}"
        if i % 2:
            stream = await async_client.chat.completions.create(model="echo", messages=user(words), stream=True)
            return i, "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]).strip()
        completion = await async_client.chat.completions.create(model="echo", messages=user(words))
        return i, completion.choices[0].message.content or ""

    async def ask_all() -> list[tuple[int, str]]:
        return await asyncio.gather(*(ask(i) for i in range(64)))

    assert asyncio.run(ask_all()) == [(i, f"request {i} asks {i * 7}") for i in range(64)]


@pytest.mark.timeout(300)
def test_a_failing_record_on_ray_answers_500_naming_the_operator(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="echo", messages=user("fail: on ray"))
    assert "echo-respond" in caught.value.message and "ValueError" in caught.value.message


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("text", "operator"), [("drop: me", "echo-keep"), ("none: for me", "echo-expand")])
def test_a_dropped_record_on_ray_answers_422_naming_the_operator(client: openai.OpenAI, text: str, operator: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="echo", messages=user(text))
    assert caught.value.code == "filtered" and f"'{operator}'" in caught.value.message


@pytest.mark.timeout(300)
def test_a_client_leaving_mid_stream_aborts_the_generation_in_the_ray_job(ray_server: ServerProcess, client: openai.OpenAI) -> None:
    def aborted(at_least: int) -> int:
        answer = client.chat.completions.create(model="echo", messages=user(f"aborts {at_least}")).choices[0].message.content
        return int(answer.split()[1])  # type: ignore[union-attr]

    before = aborted(0)
    body = {"model": "echo", "stream": True, "messages": user("slow: " + " ".join(f"w{i}" for i in range(1000)))}
    with httpx.Client(base_url=ray_server.url, timeout=60) as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        next(line for line in response.iter_lines() if "w0" in line)
    # the driver tells the relay; the response sink's actor closes the LLM's stream, which aborts it
    assert aborted(before + 1) == before + 1


@pytest.mark.timeout(300)
def test_sigterm_on_ray_finishes_short_answers_cancels_long_ones_and_exits_0() -> None:
    pytest.importorskip("ray")
    server = ServerProcess(ECHO_PIPELINE, "--drain-timeout", "2", env={"ECHO_RAY": "1"}).wait_ready()
    try:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
        started = asyncio.Event()
        first_pieces = 0

        async def stream(words: int) -> tuple[str, str | None]:
            nonlocal first_pieces
            text, error = "", None
            try:
                prompt = "slow: " + " ".join(f"w{i}" for i in range(words))
                chunks = await client.chat.completions.create(model="echo", messages=user(prompt), stream=True)
                async for chunk in chunks:
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if piece and not text:
                        first_pieces += 1
                        if first_pieces == 2:
                            started.set()
                    text += piece or ""
            except openai.APIError as exc:
                error = exc.message
            return text, error

        async def scenario() -> list[tuple[str, str | None]]:
            short, long = asyncio.ensure_future(stream(20)), asyncio.ensure_future(stream(1000))  # 1 s and 50 s
            await started.wait()
            server.process.terminate()
            return await asyncio.gather(short, long)

        (short_text, short_error), (long_text, long_error) = asyncio.run(scenario())
        assert server.process.wait(60) == 0, server.output[-3000:]
        assert short_error is None and short_text.split() == [f"w{i}" for i in range(20)]
        assert long_error is not None and "shut down" in long_error and 0 < len(long_text.split()) < 1000
    finally:
        server.kill()
