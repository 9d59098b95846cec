"""The RAG demo's flow served over HTTP: model ``rag`` (answers with their sources) and ``embedder``.

    sage serve examples/rag_serve.py                                      # CPU defaults
    SAGE_RAG_CONFIG=examples/rag_gpu.yaml sage serve examples/rag_serve.py  # the same flow on a GPU

Once ``/readyz`` answers 200 (services started, the 367 passages indexed), any OpenAI client works:
``POST /v1/chat/completions`` with ``model: rag`` answers the last user message from the corpus
(``stream: true`` sends the tokens as vLLM produces them; the response's ``sources`` lists the
passages retrieved), ``POST /v1/embeddings`` with ``model: embedder`` returns MiniLM vectors.

The steps are the batch demo's (``examples/rag/pipeline.py``): embed the question, retrieve the top
passages, remember the exchange. Only the ends differ: requests come from the endpoint's source,
and the last step asks the LLM for a token stream (the same chat, rendered with the model's chat
template, so the answer is the batch job's) that the response sink carries back to the client.
Closing the client's connection closes that stream, which aborts the request in vLLM.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the rag package beside this script

from sage_core import Answer, ChatEndpoint, ChatRequest, LocalEnvironment, MapFunction, when_started  # noqa: E402

from chat_serve import ChatTemplate, llm_model_dir  # noqa: E402
from rag.corpus import Question, load_passages  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import EmbedQuestion, Exchange, Remember, Retrieve, chat_messages  # noqa: E402
from rag.settings import DEFAULT_CONFIG, read_config, resolve_models  # noqa: E402

TOP_K = 5
CONTEXT_K = 3
MAX_TOKENS = 48
CONCURRENCY = 64


@dataclasses.dataclass(frozen=True)
class ServedQuestion(Question):
    """A question that came as a request: its id is the request's, and it keeps the sampling asked for."""

    sampling: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def as_question(request: ChatRequest) -> ServedQuestion:
    """ChatRequest → the demo's Question (the last user message), keeping the request id."""
    return ServedQuestion(
        id=request.id, question=request.question, answer="", evidence="", passages=(), sampling=request.sampling
    )


def request_id(record: Any) -> str | None:
    """The request id in any step's record: a ChatRequest or Question (``id``), an Exchange (``question.id``)."""
    if isinstance(record, Exchange):
        return record.question.id
    return getattr(record, "id", None)


class StreamAnswer(MapFunction):
    """Exchange → Answer: the demo's chat (best ``context_k`` passages as context) as a token stream.

    The chat is rendered with the model's own chat template (:class:`ChatTemplate`), so the tokens
    are those ``llm.chat`` would generate.
    """

    def __init__(self, model_dir: str | None, max_tokens: int = MAX_TOKENS, context_k: int = CONTEXT_K) -> None:
        self.model_dir = model_dir
        self.defaults = {"max_tokens": max_tokens, "temperature": 0.0}
        self.context_k = context_k
        self.template: ChatTemplate | None = None

    def open(self) -> None:
        """Load the model's chat template."""
        self.template = ChatTemplate(self.model_dir)

    def execute(self, exchange: Exchange) -> Answer:
        """Start the LLM's stream for this exchange; the response sink reads it."""
        assert self.template is not None
        question = exchange.question
        prompt, prompt_tokens = self.template.render(chat_messages(question.question, exchange.hits[: self.context_k]))
        sampling = {**self.defaults, **getattr(question, "sampling", {})}
        stream = self.call_service["llm"].stream(prompt=prompt, sampling=sampling)
        sources = [
            {"id": hit.id, "score": round(float(hit.score), 6), "title": hit.metadata.get("title", ""), "text": hit.metadata.get("text", "")}
            for hit in exchange.hits
        ]
        return Answer(question.id, stream=stream, sources=sources, prompt_tokens=prompt_tokens)


def build_serving(env: LocalEnvironment, model_dir: str | None) -> ChatEndpoint:
    """Add the served RAG flow to ``env`` as model ``rag``; index the corpus once the services start."""
    rag = ChatEndpoint(env, "rag", request_id=request_id)
    (
        rag.requests()
        .map(as_question, name="question")
        .map(EmbedQuestion, capacity=CONCURRENCY, ordered=False, name="embed")
        .map(Retrieve(top_k=TOP_K), capacity=CONCURRENCY, ordered=False, name="retrieve")
        .map(Remember, capacity=CONCURRENCY, ordered=False, name="remember")
        .map(StreamAnswer(model_dir), name="generate")
        .sink(rag.replies(), name="replies")
    )
    when_started(env, lambda services: ingest(services, load_passages()))
    return rag


if __name__ == "__main__":  # `sage serve` runs the file as __main__; vLLM's child processes skip this
    config = resolve_models(read_config(os.environ.get("SAGE_RAG_CONFIG", DEFAULT_CONFIG)))
    env = LocalEnvironment("rag-serve", config=config)
    build_serving(env, llm_model_dir(config))
    env.submit()  # `sage serve` takes the job from here and submits it itself, unbounded
