"""``sage serve examples/rag_serve.py`` on the CPU defaults: the RAG demo's flow answered over HTTP.

Starts vLLM on the CPU and indexes the corpus (about a minute on two cores), so it is marked slow.
vLLM logs its requests here (``enable_log_requests``), so the test sees the engine abort the
generation of a client that left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from sage_serve.testing import ServerProcess, user

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rag_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = yaml.safe_load((EXAMPLES / "rag_cpu.yaml").read_text())
    config["services"]["llm"]["options"]["engine_args"] = {"enable_log_requests": True}
    path = tmp_path_factory.mktemp("rag") / "rag_cpu_logged.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"SAGE_RAG_CONFIG": str(path), "VLLM_LOGGING_STREAM": "ext://sys.stderr", "VLLM_LOGGING_LEVEL": "INFO"}
    server = ServerProcess(EXAMPLES / "rag_serve.py", env=env).wait_ready()
    yield server
    try:
        assert server.terminate() == 0, server.output[-3000:]
    finally:
        server.kill()


@pytest.mark.timeout(900)
def test_rag_answers_from_the_corpus_with_its_sources(rag_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{rag_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    assert {m.id for m in client.models.list()} == {"rag", "embedder"}
    completion = client.chat.completions.create(model="rag", messages=user("What is the capital of Kenya?"))
    assert "Nairobi" in (completion.choices[0].message.content or "")
    sources = completion.model_extra["sources"]
    assert len(sources) == 5 and "ke-names" in [s["id"] for s in sources] and sources[0]["text"]
    assert completion.usage is not None and completion.usage.prompt_tokens > 100 and completion.usage.completion_tokens > 0
    stream = client.chat.completions.create(model="rag", messages=user("What is the capital of Kenya?"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == completion.choices[0].message.content
    vectors = client.embeddings.create(model="embedder", input=["Nairobi", "Accra"], encoding_format="float")
    assert [len(row.embedding) for row in vectors.data] == [384, 384]


@pytest.mark.timeout(900)
def test_a_client_leaving_aborts_the_request_in_vllm(rag_server: ServerProcess) -> None:
    body = {"model": "rag", "stream": True, "max_tokens": 1000, "messages": user("Tell me everything about the history of Ghana.")}
    with httpx.Client(base_url=rag_server.url, timeout=300) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            next(line for line in lines if '"content":"' in line and '"content":""' not in line)
    rag_server.wait_for_line(" aborted", timeout=120)
    health = httpx.get(f"{rag_server.url}/readyz")
    assert health.status_code == 200
