"""``POST /v1/embeddings``: the texts through an embedding service (model id = the service's name).

Concurrent requests meet in the service's request batching like any caller in a pipeline.
``usage`` counts words (the service does not report tokens).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from sage_core import ServiceError
from sage_serve.errors import APIError
from sage_serve.openai_models import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage


async def embed(services: Any, body: EmbeddingRequest, timeout_s: float) -> EmbeddingResponse:
    """Embed ``body.input`` with service ``body.model``."""
    texts = body.texts()
    future = services.async_[body.model].embed(texts=texts)
    try:
        rows = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except asyncio.TimeoutError:
        future.cancel()
        raise APIError(504, f"service {body.model!r} gave no vectors within {timeout_s:g} s", "timeout_error", "timeout") from None
    except (ValueError, ServiceError) as exc:
        if isinstance(exc, ValueError) or isinstance(exc.cause, ValueError):  # the backend refused the input
            raise APIError(400, f"service {body.model!r}: {exc}", "invalid_request_error", "invalid_value", "input") from None
        raise APIError(500, str(exc), "server_error", "service_error") from None
    vectors = np.asarray(rows, dtype=np.float32)
    data = [Embedding(index=i, embedding=_encoded(row, body.encoding_format)) for i, row in enumerate(vectors)]
    words = sum(len(text.split()) for text in texts)
    return EmbeddingResponse(data=data, model=body.model, usage=EmbeddingUsage(prompt_tokens=words, total_tokens=words))


def _encoded(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return row.tolist()


__all__ = ["embed"]
