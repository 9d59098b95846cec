"""Every error the server sends, in the OpenAI error body, and the handlers that produce them.

=======================================  ======  =========================  =====================
case                                     status  type                       code
=======================================  ======  =========================  =====================
body is not JSON                         400     invalid_request_error      invalid_json
a field is missing or wrong              400     invalid_request_error      invalid_value (param)
wrong or missing API key                 401     invalid_request_error      invalid_api_key
unknown model / route                    404     invalid_request_error      model_not_found
the pipeline filtered the request out    422     invalid_request_error      filtered
too many requests pending                429     rate_limit_error           overloaded
a function or service failed             500     server_error               pipeline_error
not ready, shutting down                 503     service_unavailable_error  unavailable
no answer within the request timeout     504     timeout_error              timeout
=======================================  ======  =========================  =====================
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sage_core.serving import ServingError
from sage_serve.openai_models import ErrorBody, ErrorDetail

_SERVING_STATUS = {
    "overloaded": (429, "rate_limit_error"),
    "unavailable": (503, "service_unavailable_error"),
    "timeout": (504, "timeout_error"),
    "failed": (500, "server_error"),
    "filtered": (422, "invalid_request_error"),
    "cancelled": (503, "service_unavailable_error"),
}
_SERVING_CODE = {"failed": "pipeline_error"}
RETRY_AFTER_S = "1"
"""Seconds a client refused with 429 or 503 is asked to wait (the ``openai`` client honours it)."""


class APIError(Exception):
    """An error answered with ``status`` and the OpenAI error body."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type_, param=param, code=code)

    @classmethod
    def from_serving(cls, error: ServingError) -> APIError:
        """The HTTP error for a request the pipeline side ended with ``error``."""
        status, type_ = _SERVING_STATUS[error.reason]
        return cls(status, error.message, type_, _SERVING_CODE.get(error.reason, error.reason))

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}`` as a dict (also what a stream sends as its last event)."""
        return ErrorBody(error=self.detail).model_dump()

    def response(self) -> JSONResponse:
        """The JSON response (401 says how to authenticate; 429 and 503 say when to retry)."""
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        if self.status in (429, 503):
            headers["Retry-After"] = RETRY_AFTER_S
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def unknown_model(model: str, known: list[str]) -> APIError:
    """404 for a model id nothing serves."""
    message = f"The model {model!r} does not exist; served models: {', '.join(known) or 'none'} (GET /v1/models)"
    return APIError(404, message, "invalid_request_error", "model_not_found", "model")


def install_handlers(app: FastAPI) -> None:
    """Answer every error raised by a route, a validation or the router in the OpenAI format."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "model_not_found" if exc.status_code == 404 else None
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return APIError(exc.status_code, message, "invalid_request_error", code).response()


def validation_error(exc: RequestValidationError) -> APIError:
    """400 naming the first wrong field (``param``), or saying the body is not JSON."""
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return APIError(400, f"The body is not valid JSON: {first.get('msg')}", "invalid_request_error", "invalid_json")
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "model_attributes_type" or param is None:
        message = f"The body must be a JSON object: {first.get('msg')}"
    else:
        message = f"Invalid value for {param!r}: {first.get('msg')}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return APIError(400, message + more, "invalid_request_error", "invalid_value", param)


__all__ = ["APIError", "install_handlers", "unknown_model", "validation_error"]
