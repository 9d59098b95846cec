"""The job ``sage monitor`` shows when given no pipeline file: a small retrieval stream on CPU services.

An unbounded source of questions -> embed (``embedding`` service, hashing backend, batched) ->
search (``vdb`` service, numpy backend, two replicas, a numpy fallback that takes over when both
replicas are saturated) -> keep confident answers -> sink. It uses built-in backends only, so it runs
anywhere, and it exercises every panel of the dashboard: graph, throughput, batch sizes, replica load
and fallbacks.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Mapping

from sage_core import LocalEnvironment, MapFunction, SinkFunction, SourceFunction

__all__ = ["QuestionSource", "build_demo", "run_demo"]

TOPICS = ("gpu", "vector search", "batching", "fallback", "replicas", "throughput", "latency", "prometheus")
DIM = 64


class QuestionSource(SourceFunction):
    """Questions about :data:`TOPICS`, at most ``rate`` per second (0: as fast as possible)."""

    def __init__(self, rate: float = 400.0) -> None:
        self.rate = rate
        self._counter = itertools.count()
        self._next_at = 0.0

    def execute(self, data: Any = None) -> Any:
        """The next question, or ``None`` while the rate limit holds it back."""
        if self.rate > 0:
            now = time.monotonic()
            if now < self._next_at:
                time.sleep(min(self._next_at - now, 0.005))
                return None
            self._next_at = max(self._next_at, now) + 1.0 / self.rate
        n = next(self._counter)
        return {"id": n, "text": f"how does {TOPICS[n % len(TOPICS)]} work, question {n}"}


class Embed(MapFunction):
    """Embed the question through the ``embedder`` service (returns a future: calls overlap and batch)."""

    def execute(self, data: dict[str, Any]) -> Any:
        """Submit the embedding call."""
        future = self.call_service_async["embedder"].embed(texts=data["text"])
        return _then(future, lambda vector: {**data, "vector": vector})


class Search(MapFunction):
    """Search the ``docs`` vector store with the question's vector."""

    def execute(self, data: dict[str, Any]) -> Any:
        """Submit the search call."""
        future = self.call_service_async["docs"].search(query=data["vector"], top_k=3)
        return _then(
            future,
            lambda hits: {
                "id": data["id"],
                "best": hits[0].id if hits else None,
                "score": hits[0].score if hits else 0.0,
            },
        )


class CountAnswers(SinkFunction):
    """Counts what reaches the end."""

    count = 0

    def execute(self, data: Any) -> None:
        """Count one answer."""
        CountAnswers.count += 1


def build_demo(rate: float = 400.0, config: Mapping[str, Any] | None = None) -> LocalEnvironment:
    """The demo environment with its services registered and documents loaded (not yet submitted).

    ``config`` is the environment's (``{"monitor": {"enabled": True}}`` serves the dashboard).
    """
    env = LocalEnvironment("sage-monitor-demo", config=config)
    env.register_service("embedder", kind="embedding", backend="hashing", options={"dim": DIM}, device="cpu")
    env.register_service(
        "docs",
        kind="vdb",
        backend="numpy",
        options={"dim": DIM},
        device="cpu",
        replicas=2,
        max_queue_depth=2,
        fallback=["numpy"],
    )
    documents = [f"{topic} explained, part {part}" for topic in TOPICS for part in range(8)]
    vectors = env.services.sync["embedder"].embed(texts=documents)
    env.services.sync["docs"].add(vectors=vectors, ids=[f"doc-{i}" for i in range(len(documents))])
    (
        env.from_source(QuestionSource(rate), name="questions")
        .map(Embed, capacity=32, name="embed")
        .map(Search, capacity=16, parallelism=2, name="search")
        .filter(lambda answer: answer["score"] > 0.1, parallelism=2, name="confident")
        .sink(CountAnswers, name="answers")
    )
    return env


def run_demo(duration_s: float | None = None, rate: float = 400.0) -> None:
    """Run the demo job until ``duration_s`` passes (``None``: until Ctrl-C); ``sage monitor`` watches it."""
    env = build_demo(rate)
    try:
        job = env.submit(autostop=False)
        try:
            threading.Event().wait(duration_s)
        finally:
            job.stop()
    finally:
        env.close()


def _then(future: Any, convert: Any) -> Any:
    """A future of ``convert(result)``."""
    from concurrent.futures import Future

    out: Future = Future()

    def done(f: Any) -> None:
        try:
            out.set_result(convert(f.result()))
        except BaseException as exc:  # the record fails under the job's error policy
            out.set_exception(exc)

    future.add_done_callback(done)
    return out
