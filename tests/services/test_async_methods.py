"""Async backends: coroutines on the replica's event loop, streams as iterators or lists."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import wait
from typing import AsyncIterator, Iterator

import pytest

from sage_core.errors import ServiceError, ServiceTimeout
from sage_core.services.batching import batchable
from sage_core.services.registry import ServiceRegistry


class AsyncEngine:
    """An engine in the style of an async LLM server: awaits, streams, batches."""

    def __init__(self) -> None:
        self.loop_threads: set[str] = set()
        self.batches: list[int] = []
        self.arrived = 0
        self.all_arrived: asyncio.Event | None = None

    async def generate(self, prompt: str, together: int = 1) -> str:
        """The prompt reversed, once ``together`` calls of this engine are in flight at once."""
        self.loop_threads.add(threading.current_thread().name)
        if together > 1:
            await self._all_arrive(together)
        return prompt[::-1]

    async def _all_arrive(self, together: int) -> None:
        if self.all_arrived is None:
            self.all_arrived = asyncio.Event()
        self.arrived += 1
        if self.arrived == together:
            self.all_arrived.set()
        await asyncio.wait_for(self.all_arrived.wait(), 30)

    async def stream(self, prompt: str) -> AsyncIterator[str]:
        for word in prompt.split():
            await asyncio.sleep(0)
            yield word

    async def broken_stream(self) -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("engine died mid-stream")

    def count_up(self, n: int) -> Iterator[int]:
        yield from range(n)

    @batchable(arg="prompts", max_wait_ms=30)
    async def embed(self, prompts: list[str]) -> list[int]:
        self.batches.append(len(prompts))
        await asyncio.sleep(0.001)
        return [len(p) for p in prompts]

    def threads(self) -> list[str]:
        return sorted(self.loop_threads)


@pytest.fixture
def engine(manager: ServiceRegistry) -> ServiceRegistry:
    manager.register("llm", AsyncEngine, workers=2)
    manager.start()
    return manager


def test_thousand_async_calls_are_in_flight_without_a_thread_each(engine: ServiceRegistry) -> None:
    threads_before = threading.active_count()
    futures = [engine.async_["llm"].generate(f"p{i}", together=1000) for i in range(1000)]  # none answers before all are in
    assert threading.active_count() - threads_before < 5
    done, _ = wait(futures, timeout=60)
    assert len(done) == 1000 and [f.result() for f in futures] == [f"p{i}"[::-1] for i in range(1000)]
    loop_threads = engine.sync["llm"].threads()
    assert len(loop_threads) == 1 and loop_threads[0].endswith("-loop")


def test_sync_proxy_on_an_async_generator_returns_a_blocking_iterator(engine: ServiceRegistry) -> None:
    stream = engine.sync["llm"].stream("one two three")
    assert not isinstance(stream, list)
    assert list(stream) == ["one", "two", "three"]


def test_async_proxy_on_a_stream_gives_a_future_of_every_item(engine: ServiceRegistry) -> None:
    assert engine.async_["llm"].stream("a b").result(5) == ["a", "b"]
    assert engine.async_["llm"].count_up(3).result(5) == [0, 1, 2]


def test_sync_generator_methods_stream_too(engine: ServiceRegistry) -> None:
    assert list(engine.sync["llm"].count_up(4)) == [0, 1, 2, 3]


def test_a_stream_that_fails_raises_service_error_after_its_items(engine: ServiceRegistry) -> None:
    stream = engine.sync["llm"].broken_stream()
    assert next(stream) == "first"
    with pytest.raises(ServiceError, match="engine died mid-stream"):
        next(stream)


def test_async_batchable_method_is_batched_through_the_service(engine: ServiceRegistry) -> None:
    futures = [engine.async_["llm"].embed(prompts="x" * i) for i in range(40)]
    assert [f.result(5) for f in futures] == list(range(40))
    stats = engine.metrics()["llm"]["batch"]["embed"]
    assert stats["requests"] == 40 and stats["batches"] < 40


def test_async_call_timeout_frees_the_caller(engine: ServiceRegistry) -> None:
    with pytest.raises(ServiceTimeout):
        engine.sync["llm"].generate("waits for a second caller", together=2, timeout_s=0.1)
