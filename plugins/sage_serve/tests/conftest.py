"""Fixtures: a real ``sage serve`` of the echo pipeline (shared per module, or one's own) and clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sage_serve.testing import ServerProcess

ECHO_PIPELINE = Path(__file__).with_name("echo_pipeline.py")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The echo pipeline served, ready (shared by a module's tests); it must exit 0 on SIGTERM."""
    process = ServerProcess(ECHO_PIPELINE).wait_ready()
    yield process
    try:
        assert process.terminate() == 0, process.output
    finally:
        process.kill()


@pytest.fixture
def start_server() -> Iterator[Any]:
    """``start_server(*args, env=...)``: a server of the echo pipeline of one's own (killed after the test)."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(ECHO_PIPELINE, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    """The official client on the shared server (no retries: each status is seen as sent)."""
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture
def async_client(server: ServerProcess) -> openai.AsyncOpenAI:
    """The official async client on the shared server."""
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture
def aborted_streams(client: openai.OpenAI) -> Any:
    """``aborted_streams(n)``: how many LLM streams the shared server's echo service saw aborted, once there are ``n``."""

    def wait(at_least: int) -> int:
        messages = [{"role": "user", "content": f"aborts {at_least}"}]
        answer = client.chat.completions.create(model="echo", messages=messages).choices[0].message.content
        return int(answer.split()[1])  # type: ignore[union-attr]

    return wait


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client on the shared server."""
    with httpx.Client(base_url=server.url, timeout=60) as session:
        yield session
