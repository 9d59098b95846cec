"""Auth, readiness, client disconnects and SIGTERM, each against a real ``sage serve`` process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sage_serve.testing import ServerProcess, user

SLOW_WORDS = 1000
"""A ``slow:`` answer of this many words takes 50 s: far beyond any deadline in these tests."""


def slow(words: int = SLOW_WORDS) -> list[dict[str, str]]:
    return user("slow: " + " ".join(f"w{i}" for i in range(words)))


@pytest.mark.timeout(60)
def test_api_key_is_required_on_v1_but_not_on_probes(start_server: Any) -> None:
    server = start_server("--api-key", "s3cret").wait_ready()
    for key in ("wrong", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "echo", "messages": user("hi")}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key="s3cret", max_retries=0)
    assert good.chat.completions.create(model="echo", messages=user("let me in")).choices[0].message.content == "let me in"
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert server.terminate() == 0


@pytest.mark.timeout(60)
def test_the_api_key_can_come_from_sage_api_key(start_server: Any) -> None:
    server = start_server(env={"SAGE_API_KEY": "from-env"}).wait_ready()
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer from-env"}).status_code == 200
    assert server.terminate() == 0


@pytest.mark.timeout(60)
def test_readyz_is_503_until_every_service_has_started(start_server: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = start_server(env={"ECHO_START_GATE": str(gate)})  # the LLM service waits at the gate
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 503 and "starting" in response.json()["error"]["message"]
    early = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "echo", "messages": user("too early")})
    assert early.status_code == 503 and early.json()["error"]["code"] == "unavailable"
    with gate.open("w") as fifo:
        fifo.write("go\n")
    server.wait_ready()
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert server.terminate() == 0


@pytest.mark.timeout(60)
def test_sigterm_while_services_start_exits_0_without_running_the_job(start_server: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = start_server("--drain-timeout", "1", env={"ECHO_START_GATE": str(gate)})
    server.process.terminate()
    server.wait_for_line("services still starting")
    with gate.open("w") as fifo:  # the LLM service finishes starting: the server closes it and exits
        fifo.write("go\n")
    assert server.process.wait(30) == 0
    assert "sage serve: ready" not in server.output


@pytest.mark.timeout(60)
def test_a_pipeline_that_fails_to_start_exits_1_naming_the_cause(start_server: Any) -> None:
    server = start_server(env={"ECHO_START_FAIL": "1"})
    assert "told to fail at start" in server.wait_for_line("the pipeline failed to start")
    assert server.process.wait(60) == 1


@pytest.mark.timeout(60)
def test_a_client_leaving_mid_stream_aborts_the_generation(
    server: ServerProcess, client: openai.OpenAI, aborted_streams: Any
) -> None:
    before = aborted_streams(0)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        body = {"model": "echo", "messages": slow(), "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert '"content":"w0 "' in next(line for line in lines if "w0" in line)
    # the response is closed: the server cancels the request and closes the LLM's stream
    assert aborted_streams(before + 1) == before + 1
    assert client.chat.completions.create(model="echo", messages=user("still serving")).choices[0].message.content == "still serving"


@pytest.mark.timeout(60)
def test_a_client_timing_out_cancels_its_request(server: ServerProcess, aborted_streams: Any) -> None:
    before = aborted_streams(0)
    impatient = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="echo", messages=slow())
    assert aborted_streams(before + 1) == before + 1


@pytest.mark.timeout(90)
def test_sigterm_finishes_requests_in_flight_cancels_the_rest_and_exits_0(start_server: Any) -> None:
    server = start_server("--drain-timeout", "2").wait_ready()
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    in_flight = 0
    all_started = asyncio.Event()

    async def stream(words: int) -> tuple[str, str | None]:
        nonlocal in_flight
        text, error = "", None
        try:
            chunks = await client.chat.completions.create(model="echo", messages=slow(words), stream=True)
            async for chunk in chunks:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece and not text:
                    in_flight += 1
                    if in_flight == 6:
                        all_started.set()
                text += piece or ""
        except openai.APIError as exc:
            error = exc.message
        return text, error

    async def scenario() -> list[tuple[str, str | None]]:
        short = [asyncio.ensure_future(stream(20)) for _ in range(3)]  # 1 s each: done within the drain
        long = [asyncio.ensure_future(stream(SLOW_WORDS)) for _ in range(3)]  # 50 s each: cancelled
        await all_started.wait()
        server.process.terminate()
        return await asyncio.gather(*short, *long)

    results = asyncio.run(scenario())
    assert server.process.wait(60) == 0, server.output
    for text, error in results[:3]:
        assert error is None and text.split() == [f"w{i}" for i in range(20)]
    for text, error in results[3:]:
        assert error is not None and "shut down" in error, (text[-40:], error)
        assert 0 < len(text.split()) < SLOW_WORDS
    assert "stopped" in server.output
