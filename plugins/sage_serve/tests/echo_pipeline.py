"""A small served pipeline for the tests: an echo "LLM" service that streams the user's words back.

Commands in the user's message steer it (the words after the command are the prompt):

* ``fail: ...``  the map raises (the request gets 500 naming the operator);
* ``drop: ...``  a filter drops the record (the request gets 422, code ``filtered``);
* ``none: ...``  a flatmap gives nothing for the record (422 as well);
* ``slow: ...``  the words come one per ``SLOW_S`` seconds (a long stream to cut or drain);
* ``aborts N``   answers once the LLM service has seen ``N`` streams aborted (closed before their end).

Model ``echo`` has the default request timeout; ``echo-quick`` is the same pipeline with a 1 s one,
``echo-one`` with room for one pending request. The embedding service ``embedder`` is the built-in
hashing embedder. With ``ECHO_START_GATE`` set to a FIFO's path, the LLM service does not finish
starting until a line is written to it (the tests hold the server not ready that way); with
``ECHO_START_FAIL`` set, it fails to start. With ``ECHO_RAY`` set, the same pipeline runs as a Ray
job (``RemoteEnvironment`` on a local Ray instance).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

from sage_core import Answer, ChatEndpoint, ChatRequest, LocalEnvironment, MapFunction

SLOW_S = 0.05


class EchoLLM:
    """An LLM backend whose answer is its prompt: ``stream`` yields it word by word (async, like vLLM)."""

    def __init__(self) -> None:
        if os.environ.get("ECHO_START_FAIL"):
            raise RuntimeError("the echo LLM was told to fail at start")
        gate = os.environ.get("ECHO_START_GATE")
        if gate:
            with open(gate, encoding="utf-8") as fifo:
                fifo.readline()
        self.aborted = 0
        self._changed: asyncio.Condition | None = None

    async def chat(self, messages: list[dict[str, str]], sampling: Any = None) -> str:
        """The last message's content."""
        return messages[-1]["content"]

    async def stream(self, prompt: str, sampling: Any = None) -> AsyncIterator[str]:
        """The prompt's words; ``slow:`` paces them, ``max_tokens`` cuts them."""
        delay = SLOW_S if prompt.startswith("slow:") else 0.0
        words = prompt.removeprefix("slow:").split()[: (sampling or {}).get("max_tokens", 10_000)]
        try:
            for word in words:
                if delay:
                    await asyncio.sleep(delay)
                yield word + " "
        except (asyncio.CancelledError, GeneratorExit):
            await self._count_abort()
            raise

    async def wait_aborted(self, count: int) -> int:
        """Wait until ``count`` streams were aborted; how many were."""
        async with self._condition():
            await self._condition().wait_for(lambda: self.aborted >= count)
            return self.aborted

    async def _count_abort(self) -> None:
        async with self._condition():
            self.aborted += 1
            self._condition().notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed


class Respond(MapFunction):
    """ChatRequest → Answer: streamed when the client streams, whole otherwise; runs the test commands."""

    def execute(self, request: ChatRequest) -> Answer | Future:
        text = request.question
        if text.startswith("fail:"):
            raise ValueError(f"asked to fail: {text}")
        if text.startswith("aborts "):
            future = self.call_service_async["llm"].wait_aborted(count=int(text.split()[1]))
            return _then(future, lambda n: Answer(request.id, text=f"aborted {n}"))
        llm = self.call_service["llm"]
        if request.stream or text.startswith("slow:"):
            return Answer(request.id, stream=llm.stream(prompt=text, sampling=dict(request.sampling)), prompt_tokens=len(text.split()))
        future = self.call_service_async["llm"].chat(messages=list(request.messages), sampling=dict(request.sampling))
        return _then(future, lambda content: Answer(request.id, text=content, completion_tokens=len(content.split())))


def _then(future: Future, step: Any) -> Future:
    out: Future = Future()
    future.add_done_callback(lambda done: out.set_exception(done.exception()) if done.exception() else out.set_result(step(done.result())))
    return out


if os.environ.get("ECHO_RAY"):
    from sage_core import RemoteEnvironment

    env = RemoteEnvironment("echo")
else:
    env = LocalEnvironment("echo")
env.register_service("llm", EchoLLM)
env.register_service("embedder", kind="embedding", backend="hashing", options={"dim": 16})
for name, timeout_s, max_pending in (("echo", 60.0, 256), ("echo-quick", 1.0, 256), ("echo-one", 60.0, 1)):
    chat = ChatEndpoint(env, name, timeout_s=timeout_s, max_pending=max_pending)
    (
        chat.requests()
        .filter(lambda request: not request.question.startswith("drop:"), name=f"{name}-keep")
        .flatmap(lambda request: [] if request.question.startswith("none:") else [request], name=f"{name}-expand")
        .map(Respond, capacity=256, ordered=False, name=f"{name}-respond")
        .sink(chat.replies(), name=f"{name}-replies")
    )
env.submit()
