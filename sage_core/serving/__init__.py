"""Serving a pipeline: requests in through a source, answers out through a sink, one running job.

The web front end is the ``sage-serve`` plugin (``sage serve FILE.py``); this package holds what a
pipeline file and any front end share, with no web dependency: :class:`ChatEndpoint` (request
source and response sink of one model, in this process or through a Ray job), the
:class:`ChatRequest` and :class:`Answer` records, :class:`Reply` (one request's answer as it
arrives), :class:`ServingError`, and the :class:`ServingPlan` that starts and drains the served job.
"""

from sage_core.serving.endpoint import ChatEndpoint
from sage_core.serving.local import RequestSource, ResponseSink
from sage_core.serving.plan import ServingPlan, serving_plan, when_started
from sage_core.serving.records import Answer, ChatRequest, default_request_id
from sage_core.serving.replies import (
    Event,
    Failed,
    Finished,
    Piece,
    Reply,
    ServingError,
    Started,
)

__all__ = [
    "Answer",
    "ChatEndpoint",
    "ChatRequest",
    "Event",
    "Failed",
    "Finished",
    "Piece",
    "Reply",
    "RequestSource",
    "ResponseSink",
    "ServingError",
    "ServingPlan",
    "Started",
    "default_request_id",
    "serving_plan",
    "when_started",
]
