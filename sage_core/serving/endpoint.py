"""A pipeline served under a model id: a request source at its head, a response sink at its end.

::

    env = LocalEnvironment("chat")   # or RemoteEnvironment: the same pipeline as a Ray job
    env.register_service("llm", kind="llm", backend="vllm", options={...})
    chat = ChatEndpoint(env, "chat")
    chat.requests().map(Generate, capacity=64).sink(chat.replies())
    env.submit()                     # `sage serve FILE.py` serves it; see sage-serve

The functions in between are the batch job's: only the source and the sink differ. Records must
keep the request's id (:attr:`ChatRequest.id`) so that the last step can build an
:class:`Answer` for it; ``request_id`` tells the endpoint where the id sits in the records of the
middle steps, so that a record failing or filtered out there answers its request with the error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sage_core.api.functions import SinkFunction
from sage_core.serving.book import RequestBook
from sage_core.serving.plan import serving_plan
from sage_core.serving.records import ChatRequest
from sage_core.serving.replies import Reply

if TYPE_CHECKING:
    from sage_core.api.datastream import DataStream
    from sage_core.api.environment import BaseEnvironment

DEFAULT_MAX_PENDING = 1024
DEFAULT_TIMEOUT_S = 300.0


class ChatEndpoint:
    """Chat requests for model ``name`` in, answers out, through one long-running job of ``env``.

    ``max_pending`` bounds the requests accepted and not answered (more get ``overloaded``);
    ``timeout_s`` is how long a front end waits for a request's answer to complete;
    ``request_id(record)`` finds the request id in a middle step's record (default:
    ``record.request_id``, else ``record.id``, else ``record["request_id"]``).
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
        self.env = env
        self.name = name
        self.timeout_s = timeout_s
        self.request_id = request_id
        """Where the request id sits in a middle step's record (``None``: the default places)."""
        self.plan = serving_plan(env)
        self.book = RequestBook(name, max_pending, on_end=self.plan.transport.request_ended)
        self.plan.add_endpoint(self)

    # ------------------------------------------------------------------ building the pipeline

    def requests(self, *, name: str | None = None) -> DataStream:
        """The stream of :class:`ChatRequest` records sent to this model (an unbounded source)."""
        return self.env.from_source(self.plan.transport.source(self), name=name or f"{self.name}-requests")

    def replies(self) -> SinkFunction:
        """The sink that answers each request with the :class:`Answer` record reaching it."""
        return self.plan.transport.sink(self)

    # ------------------------------------------------------------------ the front end's side

    def submit(self, request: ChatRequest) -> Reply:
        """Queue ``request`` for the pipeline; its :class:`Reply`. Raises :class:`ServingError` when refused."""
        return self.book.admit(request.id, request)

    @staticmethod
    def new_request_id() -> str:
        """A fresh correlation id (OpenAI's ``chatcmpl-`` form)."""
        return f"chatcmpl-{uuid.uuid4().hex}"


__all__ = ["ChatEndpoint"]
