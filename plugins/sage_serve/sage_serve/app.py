"""The FastAPI application: OpenAI-compatible routes over one served environment.

``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (behind the API key
when one is set), ``GET /healthz`` (the process answers) and ``GET /readyz`` (200 once every
service has started and the job runs; 503 before, after a failed start and while shutting down).
"""

from __future__ import annotations

import hmac
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sage_serve.chat import chat_completion
from sage_serve.embeddings import embed
from sage_serve.errors import APIError, install_handlers, unknown_model
from sage_serve.openai_models import ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse, ModelCard, ModelList
from sage_serve.served import ServedEnvironment

EMBEDDING_TIMEOUT_S = 60.0


def create_app(served: ServedEnvironment, api_key: str | None = None) -> FastAPI:
    """The application serving ``served``; ``api_key`` requires ``Authorization: Bearer <key>`` on ``/v1``."""
    app = FastAPI(title="SAGE serve", description="SAGE pipelines behind the OpenAI API", docs_url=None, redoc_url=None)
    install_handlers(app)
    created = int(time.time())
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 when requests are answered, 503 with the reason otherwise."""
        if served.ready:
            return JSONResponse({"status": "ready", "models": [name for name, _ in served.models()]})
        reason = {"starting": "services are starting", "stopping": "the server is shutting down"}.get(served.state)
        if served.state == "failed":
            reason = f"the pipeline failed to start: {served.error}"
        reason = reason or "the served job is not running"
        return APIError(503, reason, "service_unavailable_error", served.state).response()

    @app.get("/v1/models")
    async def models() -> ModelList:
        """The served pipelines and embedding services."""
        return ModelList(data=[ModelCard(id=name, created=created, owned_by=owner) for name, owner in served.models()])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        """A chat completion through the pipeline named by ``model`` (streamed with ``stream: true``)."""
        endpoint = served.endpoint(body.model)
        if endpoint is None:
            raise unknown_model(body.model, list(served.plan.endpoints))
        return await chat_completion(endpoint, body, request, served.request_timeout(endpoint))

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> EmbeddingResponse:
        """Vectors from the embedding service named by ``model``."""
        names = served.embedding_services()
        if body.model not in names:
            raise unknown_model(body.model, names)
        if not served.ready:
            raise APIError(503, f"model {body.model!r} is not ready yet: services are starting", "service_unavailable_error", "unavailable")
        return await embed(served.env.services, body, served.timeout_s or EMBEDDING_TIMEOUT_S)

    return app


class BearerAuth:
    """ASGI middleware: ``/v1`` routes need ``Authorization: Bearer <api_key>``, else 401 (before the body is read)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._expected):
                message = "Incorrect or missing API key: send the header 'Authorization: Bearer <key>' (sage serve --api-key)"
                response = APIError(401, message, "invalid_request_error", "invalid_api_key").response()
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


__all__ = ["BearerAuth", "create_app"]
