"""``POST /v1/chat/completions``: one request through the model's pipeline, answered whole or streamed.

The request is admitted (or refused: 429/503) and waits for its first event before any byte is
sent, so a request that fails, times out or is refused before its answer starts gets a proper
status. Once the answer starts, a stream sends ``chat.completion.chunk`` events as the pieces come
and ends with ``data: [DONE]``; an error after that point is sent as a last ``{"error": ...}``
event. A client that disconnects cancels its request (the generation's stream is closed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import Request

from sage_core.serving import ChatEndpoint, ChatRequest, Failed, Finished, Piece, ServingError, Started
from sage_serve.errors import APIError
from sage_serve.openai_models import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)
from sage_serve.replies import ClientGone, ReplyEvents, disconnected

CLIENT_CLOSED = 499
"""The status logged for a request whose client went away (nginx's convention; nobody receives it)."""


async def chat_completion(endpoint: ChatEndpoint, body: ChatCompletionRequest, request: Request, timeout_s: float) -> Response:
    """Answer ``body`` through ``endpoint``'s pipeline."""
    chat = ChatRequest(
        id=ChatEndpoint.new_request_id(),
        model=body.model,
        messages=tuple({"role": m.role, "content": m.text()} for m in body.messages),
        sampling=body.sampling(),
        stream=body.stream,
    )
    try:
        reply = endpoint.submit(chat)
    except ServingError as exc:
        raise APIError.from_serving(exc) from None
    events = ReplyEvents(reply, timeout_s)
    client = asyncio.ensure_future(disconnected(request))
    streaming = False
    try:
        first = await events.next(client)
        if isinstance(first, Failed):
            raise APIError.from_serving(first.error)
        assert isinstance(first, Started)
        if body.stream:
            streaming = True
            return StreamingResponse(_chunks(events, first, body, chat), media_type="text/event-stream")
        return await _whole(events, first, client, chat)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    finally:
        client.cancel()
        if not streaming:
            events.cancel("the request ended before its answer")


async def _whole(events: ReplyEvents, started: Started, client: asyncio.Task[None], chat: ChatRequest) -> JSONResponse:
    pieces: list[str] = []
    while True:
        event = await events.next(client)
        if isinstance(event, Piece):
            pieces.append(event.text)
        elif isinstance(event, Failed):
            raise APIError.from_serving(event.error)
        elif isinstance(event, Finished):
            completion = ChatCompletion(
                id=chat.id,
                model=chat.model,
                choices=[Choice(message=AssistantMessage(content="".join(pieces)), finish_reason=event.finish_reason)],
                usage=usage(event, chat),
                sources=_sources(started),
            )
            return JSONResponse(completion.model_dump(exclude_none=True))


async def _chunks(events: ReplyEvents, started: Started, body: ChatCompletionRequest, chat: ChatRequest) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: Delta | None, finish_reason: str | None = None, **extra: object) -> str:
        choices = [ChunkChoice(delta=delta, finish_reason=finish_reason)] if delta is not None else []
        data = ChatCompletionChunk(id=chat.id, created=created, model=chat.model, choices=choices, **extra)  # type: ignore[arg-type]
        return f"data: {data.model_dump_json(exclude_none=True)}\n\n"

    try:
        yield chunk(Delta(role="assistant", content=""), sources=_sources(started))
        while True:
            event = await events.next()
            if isinstance(event, Piece):
                yield chunk(Delta(content=event.text))
            elif isinstance(event, Failed):
                yield f"data: {json.dumps(APIError.from_serving(event.error).body())}\n\n"
                break
            elif isinstance(event, Finished):
                yield chunk(Delta(), event.finish_reason)
                if body.stream_options is not None and body.stream_options.include_usage:
                    yield chunk(None, usage=usage(event, chat))
                break
        yield "data: [DONE]\n\n"
    finally:  # also when the client disconnects: the server cancels this generator
        events.cancel("the client closed the stream")


def usage(finished: Finished, chat: ChatRequest) -> Usage:
    """Token counts; a prompt count the pipeline did not give is estimated (words of the messages)."""
    prompt = finished.prompt_tokens
    if prompt is None:
        prompt = sum(len(str(m.get("content", "")).split()) for m in chat.messages)
    return Usage(prompt_tokens=prompt, completion_tokens=finished.completion_tokens, total_tokens=prompt + finished.completion_tokens)


def _sources(started: Started) -> list[dict[str, object]] | None:
    sources = started.answer.sources
    return [dict(source) for source in sources] if sources else None


__all__ = ["chat_completion", "usage"]
