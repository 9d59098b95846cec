"""The answering pipeline: question → embed → retrieve → remember → generate → sink.

Every step calls a service asynchronously and returns a ``Future`` of the next record, so each map
keeps up to ``capacity`` questions in flight: the LLM sees many requests at once and its continuous
batching fills. The functions name services only (``embedder``, ``vdb``, ``memory``, ``llm``); which
backend and device serve them is the config's business, so the same flow runs on CPU and GPU.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TypeVar

import numpy as np

from sage_core import Completion, Hit, MapFunction, SinkFunction

from rag.corpus import Question

if TYPE_CHECKING:
    from sage_core import LocalEnvironment

T = TypeVar("T")

SYSTEM_PROMPT = "Use these facts to answer the user's question in one sentence."
"""Followed by the passages; the question is the user's turn (what SmolLM2-135M answered best)."""
MEMORY_SESSION = "rag-demo"


@dataclass(frozen=True)
class Exchange:
    """One question on its way through the pipeline; each step fills one more field."""

    question: Question
    started: float = field(default_factory=time.perf_counter)
    vector: np.ndarray | None = field(default=None, repr=False)
    hits: tuple[Hit, ...] = ()
    memory_id: str | None = None
    completion: Completion | None = None
    latency_s: float | None = None

    @property
    def source_ids(self) -> list[str]:
        """Ids of the retrieved passages, best first."""
        return [hit.id for hit in self.hits]

    @property
    def answer(self) -> str:
        """The generated answer, stripped (empty before generation)."""
        return self.completion.text.strip() if self.completion else ""


def then(future: "Future[Any]", step: Callable[[Any], T]) -> "Future[T]":
    """A Future of ``step(result)``: how a map turns a service's answer into its next record."""
    out: Future[T] = Future()

    def done(finished: "Future[Any]") -> None:
        try:
            out.set_result(step(finished.result()))
        except BaseException as exc:  # the runtime's error policy handles the failed record
            out.set_exception(exc)

    future.add_done_callback(done)
    return out


class EmbedQuestion(MapFunction):
    """Question → Exchange with the question's vector (embedding service, batched by the service layer)."""

    def execute(self, question: Question) -> "Future[Exchange]":
        """Ask the embedder for the question's vector."""
        exchange = Exchange(question=question)
        future = self.call_service_async["embedder"].embed(texts=[question.question])
        return then(future, lambda rows: dataclasses.replace(exchange, vector=np.asarray(rows, dtype=np.float32)[0]))


class Retrieve(MapFunction):
    """Exchange → Exchange with the ``top_k`` nearest passages (vdb service; the hits carry the text)."""

    def __init__(self, top_k: int = 5) -> None:
        self.top_k = top_k

    def execute(self, exchange: Exchange) -> "Future[Exchange]":
        """Search the vector store with the question's vector."""
        future = self.call_service_async["vdb"].search(query=exchange.vector, top_k=self.top_k)
        return then(future, lambda hits: dataclasses.replace(exchange, hits=tuple(hits)))


class Remember(MapFunction):
    """Exchange → Exchange with a memory id: the question and its sources stored in the memory service."""

    def execute(self, exchange: Exchange) -> "Future[Exchange]":
        """Store the exchange (its vector is reused; the memory does not embed it again)."""
        future = self.call_service_async["memory"].store_memory(
            content=exchange.question.question,
            vector=exchange.vector,
            session_id=MEMORY_SESSION,
            memory_type="exchange",
            metadata={"question_id": exchange.question.id, "sources": exchange.source_ids},
        )
        return then(future, lambda memory_id: dataclasses.replace(exchange, memory_id=memory_id))


class Generate(MapFunction):
    """Exchange → Exchange with the LLM's answer, the best ``context_k`` retrieved passages as context.

    A 135M-parameter model answers better from the best three passages than from five (and a CPU
    spends most of its time reading the prompt), so by default the context stops at three.
    """

    def __init__(self, max_tokens: int = 48, context_k: int = 3) -> None:
        self.sampling = {"max_tokens": max_tokens, "temperature": 0.0}
        self.context_k = context_k

    def execute(self, exchange: Exchange) -> "Future[Exchange]":
        """Ask the LLM service (chat template applied by the backend)."""
        messages = chat_messages(exchange.question.question, exchange.hits[: self.context_k])
        future = self.call_service_async["llm"].chat(messages=messages, sampling=self.sampling)
        return then(future, lambda completion: _answered(exchange, completion))


class AnswerListener(Protocol):
    """Receives each finished exchange (the demo's console reporter; a list in tests)."""

    def answered(self, exchange: Exchange) -> None:
        """Called once per answered question, on the sink's thread."""


class AnswerSink(SinkFunction):
    """Adds the answer to the stored exchange in memory, then hands the exchange to the listener."""

    def __init__(self, listener: AnswerListener) -> None:
        self.listener = listener

    def execute(self, exchange: Exchange) -> None:
        """Complete the memory record and report the answer."""
        if exchange.memory_id is not None:
            metadata = {"question_id": exchange.question.id, "sources": exchange.source_ids, "answer": exchange.answer}
            self.call_service["memory"].update(exchange.memory_id, metadata=metadata)
        self.listener.answered(exchange)


def chat_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The chat sent to the LLM: the instruction and the passages as the system turn, the question as the user's."""
    passages = "\n\n".join(f"{hit.metadata.get('title', hit.id)}: {hit.metadata.get('text', '')}" for hit in hits)
    return [{"role": "system", "content": f"{SYSTEM_PROMPT}\n\n{passages}"}, {"role": "user", "content": question}]


def build_answering(
    env: "LocalEnvironment",
    questions: Sequence[Question],
    listener: AnswerListener,
    *,
    top_k: int = 5,
    context_k: int = 3,
    max_tokens: int = 48,
    concurrency: int = 64,
) -> None:
    """Add the answering pipeline to ``env``: one source, four asynchronous maps, one sink."""
    (
        env.from_batch(list(questions), name="questions")
        .map(EmbedQuestion, capacity=concurrency, ordered=False, name="embed")
        .map(Retrieve(top_k=top_k), capacity=concurrency, ordered=False, name="retrieve")
        .map(Remember, capacity=concurrency, ordered=False, name="remember")
        .map(Generate(max_tokens=max_tokens, context_k=context_k), capacity=concurrency, ordered=False, name="generate")
        .sink(AnswerSink(listener), name="answers")
    )


def _answered(exchange: Exchange, completion: Completion) -> Exchange:
    return dataclasses.replace(exchange, completion=completion, latency_s=time.perf_counter() - exchange.started)
