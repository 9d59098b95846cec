"""A pipeline served under a model id: a request source at its head, a response sink at its end.

::

    env = LocalEnvironment("chat")
    env.register_service("llm", kind="llm", backend="vllm", options={...})
    chat = ChatEndpoint(env, "chat")
    chat.requests().map(Generate, capacity=64).sink(chat.replies())
    env.submit()                     # `sage serve FILE.py` serves it; see sage-serve

The functions in between are the batch job's: only the source and the sink differ. Records must
keep the request's id (:attr:`ChatRequest.id`) so that the last step can build an
:class:`Answer` for it; ``request_id`` tells the endpoint where the id sits in the records of the
middle steps, so that a record failing there answers its request with the error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sage_core.api.functions import SinkFunction, SourceFunction
from sage_core.serving.book import RequestBook
from sage_core.serving.plan import serving_plan
from sage_core.serving.records import Answer, ChatRequest
from sage_core.serving.replies import Reply, ServingError

if TYPE_CHECKING:
    from sage_core.api.datastream import DataStream
    from sage_core.api.environment import BaseEnvironment

DEFAULT_MAX_PENDING = 1024
DEFAULT_TIMEOUT_S = 300.0


class ChatEndpoint:
    """Chat requests for model ``name`` in, answers out, through one long-running job of ``env``.

    ``max_pending`` bounds the requests accepted and not answered (more get ``overloaded``);
    ``timeout_s`` is how long a front end waits for a request's answer to complete (a record that a
    filter dropped ends this way); ``request_id(record)`` finds the request id in a middle step's
    record (default: ``record.request_id``, else ``record.id``, else ``record["request_id"]``).
    """

    def __init__(
        self,
        env: BaseEnvironment,
        name: str,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        request_id: Callable[[Any], Any] | None = None,
    ) -> None:
        if type(env).__name__ == "RemoteEnvironment":
            msg = f"ChatEndpoint {name!r}: serving on Ray is not supported yet; use a LocalEnvironment"
            raise TypeError(msg)
        self.env = env
        self.name = name
        self.timeout_s = timeout_s
        self.book = RequestBook(name, max_pending)
        self._request_id = request_id
        serving_plan(env).add_endpoint(self)

    # ------------------------------------------------------------------ building the pipeline

    def requests(self, *, name: str | None = None) -> DataStream:
        """The stream of :class:`ChatRequest` records sent to this model (an unbounded source)."""
        return self.env.from_source(RequestSource(self.book), name=name or f"{self.name}-requests")

    def replies(self) -> ResponseSink:
        """The sink that answers each request with the :class:`Answer` record reaching it."""
        return ResponseSink(self.book)

    # ------------------------------------------------------------------ the front end's side

    def submit(self, request: ChatRequest) -> Reply:
        """Queue ``request`` for the pipeline; its :class:`Reply`. Raises :class:`ServingError` when refused."""
        return self.book.admit(request.id, request)

    @staticmethod
    def new_request_id() -> str:
        """A fresh correlation id (OpenAI's ``chatcmpl-`` form)."""
        return f"chatcmpl-{uuid.uuid4().hex}"

    # ------------------------------------------------------------------ the pipeline's side

    def reply_of(self, record: Any) -> Reply | None:
        """The pending reply a record (of any step) belongs to, if any."""
        request_id = None
        if self._request_id is not None:
            try:
                request_id = self._request_id(record)
            except Exception:  # a record of another shape: try the usual places
                request_id = None
        if request_id is None:
            request_id = default_request_id(record)
        return self.book.reply(request_id) if isinstance(request_id, str) else None


class RequestSource(SourceFunction):
    """The head of a served pipeline: the next queued request's record, ``None`` when none waits."""

    def __init__(self, book: RequestBook) -> None:
        self.book = book

    def execute(self, data: Any = None) -> Any:
        """The next request record."""
        return self.book.next_record()

    def __deepcopy__(self, memo: dict) -> RequestSource:
        return RequestSource(self.book)  # parallel instances share the endpoint's book


class ResponseSink(SinkFunction):
    """The end of a served pipeline: hands each :class:`Answer` to the request waiting for it.

    An answer whose request already ended (cancelled, timed out) is dropped, its stream closed.
    """

    def __init__(self, book: RequestBook) -> None:
        self.book = book

    def execute(self, data: Any) -> None:
        """Answer the request of ``data``."""
        if not isinstance(data, Answer):
            msg = (
                f"the response sink of model {self.book.name!r} got a {type(data).__name__}; "
                f"make the pipeline's last step return sage_core.serving.Answer(request_id=..., text=... or stream=...)"
            )
            raise TypeError(msg)
        reply = self.book.reply(data.request_id)
        if reply is None:
            close = getattr(data.stream, "close", None)
            if close is not None:
                close()
            return
        reply.answer(data)

    def __deepcopy__(self, memo: dict) -> ResponseSink:
        return ResponseSink(self.book)  # parallel instances share the endpoint's book


def default_request_id(record: Any) -> Any:
    """``record.request_id``, else ``record.id``, else ``record["request_id"]`` (``None`` if absent)."""
    for attribute in ("request_id", "id"):
        value = getattr(record, attribute, None)
        if value is not None:
            return value
    if isinstance(record, dict):
        return record.get("request_id")
    return None


__all__ = ["ChatEndpoint", "RequestSource", "ResponseSink", "ServingError", "default_request_id"]
