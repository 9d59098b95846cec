"""Every error status, in the OpenAI error body, with the official client and httpx."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from sage_serve.testing import user


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    return body["error"]


@pytest.mark.timeout(60)
def test_a_body_that_is_not_json_gets_400(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b'{"model": "echo",', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "echo"}, "messages"),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "echo", "messages": user("x"), "temperature": 9}, "temperature"),
        ({"model": "echo", "messages": user("x"), "n": 2}, "n"),
        ({"model": "embedder", "input": []}, "input"),
    ],
)
def test_a_schema_error_gets_400_naming_the_field(http: httpx.Client, body: dict, param: str) -> None:
    route = "/v1/embeddings" if "input" in body else "/v1/chat/completions"
    response = http.post(route, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param and param in error["message"], error


@pytest.mark.timeout(60)
def test_an_unknown_model_gets_404_listing_the_served_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=user("hello"))
    assert caught.value.code == "model_not_found"
    assert "echo" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="echo", input="a pipeline is not an embedding service")


@pytest.mark.timeout(60)
def test_an_unknown_route_gets_404_in_the_openai_format(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert "/v1/nothing-here" in error_of(response)["message"]


@pytest.mark.timeout(60)
def test_a_failing_function_answers_500_naming_the_operator(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="echo", messages=user("fail: please"))
    assert "echo-respond" in caught.value.message and "ValueError" in caught.value.message
    assert client.chat.completions.create(model="echo", messages=user("still fine")).choices[0].message.content == "still fine"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("text", "operator"), [("drop: me", "echo-keep"), ("none: for me", "echo-expand")])
@pytest.mark.parametrize("stream", [False, True])
def test_a_record_dropped_in_the_pipeline_answers_422_naming_the_operator(
    client: openai.OpenAI, text: str, operator: str, stream: bool
) -> None:
    # model echo waits 60 s for an answer: the 422 comes from the drop, not from a timeout
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="echo", messages=user(text), stream=stream)
    assert caught.value.code == "filtered" and f"'{operator}' filtered out the request" in caught.value.message
    assert client.chat.completions.create(model="echo", messages=user("still fine")).choices[0].message.content == "still fine"


@pytest.mark.timeout(60)
def test_an_answer_slower_than_the_request_timeout_gets_504(client: openai.OpenAI) -> None:
    slow = "slow: " + " ".join(["word"] * 100)  # 5 s of words, the endpoint allows 1 s
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="echo-quick", messages=user(slow))
    assert caught.value.status_code == 504


@pytest.mark.timeout(60)
def test_a_stream_cut_by_the_request_timeout_ends_with_an_error_event(client: openai.OpenAI) -> None:
    slow = "slow: " + " ".join(["word"] * 100)
    stream = client.chat.completions.create(model="echo-quick", messages=user(slow), stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "request timeout" in caught.value.message


@pytest.mark.timeout(60)
def test_more_requests_than_max_pending_get_429(start_server: Any) -> None:
    server = start_server().wait_ready()  # its own: the one abort counted below is this test's
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    slow = "slow: " + " ".join(["word"] * 400)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json={"model": "echo-one", "messages": user(slow), "stream": True}) as held:
            assert held.status_code == 200
            lines = held.iter_lines()
            assert next(lines).startswith("data: ")  # the one pending request of echo-one is in flight
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="echo-one", messages=user("one more"))
            assert caught.value.code == "overloaded" and caught.value.response.headers["retry-after"] == "1"
    # closing the held stream cancels the request and aborts its generation: the slot is free again
    aborted = client.chat.completions.create(model="echo", messages=user("aborts 1")).choices[0].message.content
    assert aborted == "aborted 1"
    assert client.chat.completions.create(model="echo-one", messages=user("my turn")).choices[0].message.content == "my turn"
    assert server.terminate() == 0
