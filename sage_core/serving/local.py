"""Serving within this process (``LocalEnvironment``): the pipeline's tasks are threads of the server.

The request source reads the endpoint's :class:`RequestBook` directly, the response sink answers
its replies directly, and the record watcher ends them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sage_core.api.functions import SinkFunction, SourceFunction
from sage_core.serving.book import RequestBook
from sage_core.serving.records import Answer
from sage_core.serving.replies import ServingError
from sage_core.serving.watching import RequestWatcher

if TYPE_CHECKING:
    from sage_core.serving.endpoint import ChatEndpoint
    from sage_core.serving.plan import ServingPlan


class LocalTransport:
    """Requests in and answers out of a job running in this process."""

    def __init__(self, plan: ServingPlan) -> None:
        self.plan = plan

    def source(self, endpoint: ChatEndpoint) -> RequestSource:
        """The request source of ``endpoint``."""
        return RequestSource(endpoint.book)

    def sink(self, endpoint: ChatEndpoint) -> ResponseSink:
        """The response sink of ``endpoint``."""
        return ResponseSink(endpoint.book)

    def watcher(self) -> RequestWatcher:
        """The job's record watcher: ends the requests of failed and dropped records."""
        return LocalWatcher(self.plan)

    def start(self) -> None:
        """Nothing to start: the books are shared with the tasks."""

    def request_ended(self, request_id: str) -> None:
        """Nothing to tell: a response sink sees that a request has ended in its book."""

    def close(self) -> None:
        """Nothing to release."""


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
        reply = self.book.reply(expect_answer(data, self.book.name).request_id)
        if reply is None:
            close = getattr(data.stream, "close", None)
            if close is not None:
                close()
            return
        reply.answer(data)

    def __deepcopy__(self, memo: dict) -> ResponseSink:
        return ResponseSink(self.book)  # parallel instances share the endpoint's book


class LocalWatcher(RequestWatcher):
    """Ends the requests of failed and dropped records in the plan's books."""

    def __init__(self, plan: ServingPlan) -> None:
        super().__init__(endpoint.request_id for endpoint in plan.endpoints.values())
        self.plan = plan

    def end(self, request_id: str, error: ServingError) -> None:
        """Fail the request's reply, if it still waits."""
        reply = self.plan.reply(request_id)
        if reply is not None:
            reply.fail(error)


def expect_answer(data: Any, model: str) -> Answer:
    """``data`` if it is an :class:`Answer`; else a TypeError saying what the last step must return."""
    if not isinstance(data, Answer):
        msg = (
            f"the response sink of model {model!r} got a {type(data).__name__}; "
            f"make the pipeline's last step return sage_core.serving.Answer(request_id=..., text=... or stream=...)"
        )
        raise TypeError(msg)
    return data


__all__ = ["LocalTransport", "LocalWatcher", "RequestSource", "ResponseSink", "expect_answer"]
