"""What a served request is inside a pipeline, and what the pipeline answers with.

A front end (``sage serve``) turns an HTTP request into a :class:`ChatRequest` record; the
pipeline's last step turns its record into an :class:`Answer` for the response sink. Both are plain
data: no web types reach the core or the pipeline's functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    """One chat request as a record: its correlation ``id``, the conversation and the sampling asked for.

    ``sampling`` holds the :class:`sage_core.SamplingParams` fields the client set (``max_tokens``,
    ``temperature``, ``top_p``, ``stop``, ``seed``); pass it to an LLM service as it is.
    """

    id: str
    model: str
    messages: tuple[Mapping[str, str], ...]
    sampling: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False

    @property
    def question(self) -> str:
        """The content of the last user message (what a RAG pipeline retrieves for)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""


@dataclass(frozen=True)
class Answer:
    """What a served pipeline produces for request ``request_id``: the whole ``text``, or a ``stream``.

    ``stream`` is an iterator of text pieces as they are produced (a streaming service call, e.g.
    ``self.call_service["llm"].stream(...)``); it is read after the record reaches the response
    sink and closed if the client goes away, which aborts the generation. ``sources`` are the
    passages a RAG pipeline used (dicts with at least an ``id``). Token counts the pipeline does not
    know stay ``None``; the response sink then counts streamed pieces as completion tokens.
    """

    request_id: str
    text: str = ""
    stream: Iterator[str] | None = field(default=None, repr=False, compare=False)
    sources: Sequence[Mapping[str, Any]] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"

    def __reduce__(self) -> tuple[type[Answer], tuple[Any, ...]]:
        if self.stream is not None:
            msg = (
                f"Answer of request {self.request_id!r}: its stream cannot leave the process that started it (a Ray "
                "task actor); give the step that starts the stream the response sink's parallelism, with no keyby "
                "or rebalance in between, so that both run chained in one task"
            )
            raise TypeError(msg)
        fields = (self.request_id, self.text, None, self.sources, self.prompt_tokens, self.completion_tokens, self.finish_reason)
        return Answer, fields


def default_request_id(record: Any) -> Any:
    """``record.request_id``, else ``record.id``, else ``record["request_id"]`` (``None`` if absent)."""
    for attribute in ("request_id", "id"):
        value = getattr(record, attribute, None)
        if value is not None:
            return value
    if isinstance(record, dict):
        return record.get("request_id")
    return None


def request_id_of(record: Any, find: Callable[[Any], Any] | None = None) -> str | None:
    """The request id in a record of any step: ``find(record)`` if given and it finds one, else the default places."""
    request_id = None
    if find is not None:
        try:
            request_id = find(record)
        except Exception:  # a record of another shape: try the usual places
            request_id = None
    if request_id is None:
        request_id = default_request_id(record)
    return request_id if isinstance(request_id, str) else None


__all__ = ["Answer", "ChatRequest", "default_request_id", "request_id_of"]
