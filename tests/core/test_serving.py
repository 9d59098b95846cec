"""sage_core.serving in-process: requests through a running job, answers routed back, failures,
cancellation, the pending bound and the drain (the HTTP side is tested in plugins/sage_serve)."""

from __future__ import annotations

import pickle
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sage_core import LocalEnvironment, MapFunction
from sage_core.serving import (
    Answer,
    ChatEndpoint,
    ChatRequest,
    Failed,
    Finished,
    Piece,
    Reply,
    ServingError,
    Started,
    serving_plan,
)


class Shout(MapFunction):
    """The answer is the question in capitals; ``fail`` raises."""

    def execute(self, request: ChatRequest) -> Answer:
        if request.question == "fail":
            raise ValueError("asked to fail")
        return Answer(request.id, text=request.question.upper())


class Gate:
    """A stream that yields one piece, then waits for ``release`` (or ``close``)."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self._ended = threading.Event()
        self._sent = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self._sent:
            self._sent = True
            return "first "
        self._ended.wait(30)
        raise StopIteration

    def release(self) -> None:
        """End the stream after its first piece."""
        self._ended.set()

    def close(self) -> None:
        """What the server calls when it gives up on the stream."""
        self.closed.set()
        self._ended.set()


def ask(endpoint: ChatEndpoint, text: str) -> tuple[Reply, queue.SimpleQueue[Any]]:
    request = ChatRequest(id=ChatEndpoint.new_request_id(), model=endpoint.name, messages=({"role": "user", "content": text},))
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reply = endpoint.submit(request)
    reply.listen(events.put)
    return reply, events


def outcome(events: queue.SimpleQueue[Any]) -> tuple[str, Any]:
    """The text and the last event of a reply (waits for its end)."""
    text = ""
    while True:
        event = events.get(timeout=30)
        if isinstance(event, Piece):
            text += event.text
        elif isinstance(event, (Finished, Failed)):
            return text, event


@pytest.fixture
def served(env: LocalEnvironment) -> Iterator[ChatEndpoint]:
    endpoint = ChatEndpoint(env, "shout", max_pending=64)
    endpoint.requests().map(Shout, name="shout").sink(endpoint.replies(), name="replies")
    serving_plan(env).start()
    yield endpoint
    serving_plan(env).drain(5.0)


@pytest.mark.timeout(60)
def test_each_request_gets_the_answer_of_its_own_record(served: ChatEndpoint) -> None:
    asked = [ask(served, f"question {i}") for i in range(50)]
    for i, (_, events) in enumerate(asked):
        text, end = outcome(events)
        assert text == f"QUESTION {i}" and isinstance(end, Finished) and end.completion_tokens == 1


@pytest.mark.timeout(60)
def test_the_same_operator_runs_as_a_batch_job(env: LocalEnvironment, collected: list) -> None:
    requests = [ChatRequest(id=str(i), model="m", messages=({"role": "user", "content": f"q{i}"},)) for i in range(5)]
    env.from_batch(requests).map(Shout).sink(collected.append)
    env.submit()
    assert sorted(a.text for a in collected) == ["Q0", "Q1", "Q2", "Q3", "Q4"]


@pytest.mark.timeout(60)
def test_a_failing_record_fails_its_request_naming_the_operator(env: LocalEnvironment, served: ChatEndpoint) -> None:
    _, events = ask(served, "fail")
    _text, end = outcome(events)
    assert isinstance(end, Failed) and end.error.reason == "failed"
    assert "'shout'" in end.error.message and "asked to fail" in end.error.message
    assert outcome(ask(served, "fine")[1])[0] == "FINE"
    operators = serving_plan(env).job.summary()["operators"]  # type: ignore[union-attr]
    assert operators["shout"]["failed"] == 1 and operators["shout"]["in"] == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parallelism", [1, 2])  # the filter chained behind the source, or a task of its own
def test_a_filtered_record_ends_its_request_at_once_naming_the_operator(env: LocalEnvironment, parallelism: int) -> None:
    endpoint = ChatEndpoint(env, "picky", timeout_s=3600)
    (
        endpoint.requests()
        .filter(lambda r: r.question != "skip", name="keep", parallelism=parallelism)
        .flatmap(lambda r: [] if r.question == "nothing" else [r], name="expand", parallelism=parallelism)
        .map(Shout, name="shout", parallelism=parallelism)
        .sink(endpoint.replies(), parallelism=parallelism)
    )
    plan = serving_plan(env)
    plan.start()
    for text, operator in (("skip", "keep"), ("nothing", "expand")):
        _, end = outcome(ask(endpoint, text)[1])
        assert isinstance(end, Failed) and end.error.reason == "filtered"
        assert f"operator {operator!r} filtered out the request" in end.error.message
    assert outcome(ask(endpoint, "kept")[1])[0] == "KEPT"
    operators = plan.job.summary()["operators"]  # type: ignore[union-attr]
    assert operators["keep"]["filtered"] == 1 and operators["expand"]["filtered"] == 1
    plan.drain(5.0)


@pytest.mark.timeout(60)
def test_the_pending_bound_refuses_requests_past_it(env: LocalEnvironment) -> None:
    endpoint = ChatEndpoint(env, "tiny", max_pending=1)
    endpoint.book.open()
    ask(endpoint, "one")
    with pytest.raises(ServingError) as caught:
        ask(endpoint, "two")
    assert caught.value.reason == "overloaded"


@pytest.mark.timeout(60)
def test_cancelling_a_streamed_answer_closes_its_stream() -> None:
    gate = Gate()
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reply = Reply("r1")
    reply.listen(events.put)
    reply.answer(Answer("r1", stream=gate))
    assert isinstance(events.get(timeout=10), Started) and events.get(timeout=10) == Piece("first ")
    reply.cancel(ServingError("cancelled", "client gone"))
    assert gate.closed.wait(10)
    assert isinstance(events.get(timeout=10), Failed)


@pytest.mark.timeout(60)
def test_drain_finishes_what_ends_in_time_and_cancels_the_rest(env: LocalEnvironment) -> None:
    gates = {"quick": Gate(), "stuck": Gate()}
    endpoint = ChatEndpoint(env, "gated")
    endpoint.requests().map(lambda r: Answer(r.id, stream=gates[r.question])).sink(endpoint.replies())
    plan = serving_plan(env)
    plan.start()
    asked = {name: ask(endpoint, name) for name in gates}
    for _, events in asked.values():
        assert isinstance(events.get(timeout=10), Started) and isinstance(events.get(timeout=10), Piece)
    gates["quick"].release()
    assert plan.drain(0.5) == 1
    assert isinstance(outcome(asked["quick"][1])[1], Finished)
    stuck = outcome(asked["stuck"][1])[1]
    assert isinstance(stuck, Failed) and stuck.error.reason == "unavailable" and gates["stuck"].closed.is_set()
    with pytest.raises(ServingError) as caught:
        ask(endpoint, "late")
    assert caught.value.reason == "unavailable"


@pytest.mark.timeout(60)
def test_parallel_steps_and_replies_share_the_endpoint(env: LocalEnvironment) -> None:
    endpoint = ChatEndpoint(env, "wide")
    endpoint.requests().map(Shout, parallelism=2).sink(endpoint.replies(), parallelism=2)
    serving_plan(env).start()
    asked = [ask(endpoint, f"q{i}") for i in range(20)]
    assert [outcome(events)[0] for _, events in asked] == [f"Q{i}" for i in range(20)]
    serving_plan(env).drain(5.0)


@pytest.mark.timeout(60)
def test_a_request_cancelled_while_queued_never_enters_the_pipeline(env: LocalEnvironment) -> None:
    endpoint = ChatEndpoint(env, "queued")
    endpoint.requests(name="requests").map(Shout, name="shout").sink(endpoint.replies())
    endpoint.book.open()  # accept before the job runs: the requests wait in the queue
    gone, gone_events = ask(endpoint, "gone")
    _, kept_events = ask(endpoint, "kept")
    gone.cancel(ServingError("cancelled", "client left"))
    plan = serving_plan(env)
    plan.start()
    assert outcome(kept_events)[0] == "KEPT"
    assert isinstance(outcome(gone_events)[1], Failed)
    assert plan.job.summary()["operators"]["shout"]["in"] == 1  # type: ignore[union-attr]
    plan.drain(5.0)


@pytest.mark.timeout(60)
def test_a_job_ending_on_its_own_ends_its_pending_requests(env: LocalEnvironment) -> None:
    gate = Gate()
    endpoint = ChatEndpoint(env, "doomed")
    endpoint.requests().map(lambda r: Answer(r.id, stream=gate)).sink(endpoint.replies())
    plan = serving_plan(env)
    plan.start()
    _, events = ask(endpoint, "streaming")
    assert isinstance(events.get(timeout=10), Started) and isinstance(events.get(timeout=10), Piece)
    plan.job.cancel()  # type: ignore[union-attr]
    _, end = outcome(events)
    assert isinstance(end, Failed) and end.error.reason == "unavailable" and "cancelled" in end.error.message
    assert gate.closed.wait(10)
    with pytest.raises(ServingError) as caught:
        ask(endpoint, "too late")
    assert caught.value.reason == "unavailable" and not plan.ready
    plan.drain(5.0)


@pytest.mark.timeout(60)
def test_an_answer_travels_between_processes_whole_but_never_with_its_stream() -> None:
    answer = Answer("r1", text="whole", sources=({"id": "p1"},), prompt_tokens=3, completion_tokens=1)
    assert pickle.loads(pickle.dumps(answer)) == answer
    with pytest.raises(TypeError) as caught:
        pickle.dumps(Answer("r2", stream=iter(["piece"])))
    assert "'r2'" in str(caught.value) and "response sink's parallelism" in str(caught.value)
