"""What ``sage serve`` serves of an environment, and the served job's life: start, then drain.

A :class:`ServingPlan` belongs to one environment (:func:`serving_plan`); endpoints add themselves
to it, and ``when_started`` steps (indexing a corpus, warming a cache) run once the services are
up and before the first request is accepted. A front end calls :meth:`ServingPlan.start` and,
on shutdown, :meth:`ServingPlan.drain`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sage_core.serving.replies import ServingError

if TYPE_CHECKING:
    from sage_core.api.environment import BaseEnvironment
    from sage_core.runtime.job import JobHandle
    from sage_core.runtime.records import DeadLetter
    from sage_core.serving.endpoint import ChatEndpoint

log = logging.getLogger("sage.serving")

_PLANS: weakref.WeakKeyDictionary[Any, ServingPlan] = weakref.WeakKeyDictionary()


def serving_plan(env: BaseEnvironment) -> ServingPlan:
    """The serving plan of ``env`` (created on first use)."""
    plan = _PLANS.get(env)
    if plan is None:
        plan = _PLANS[env] = ServingPlan(env)
    return plan


def when_started(env: BaseEnvironment, step: Callable[[Any], None]) -> None:
    """Run ``step(env.services)`` once the services of the served ``env`` have started, before requests."""
    serving_plan(env).setup_steps.append(step)


class ServingPlan:
    """The endpoints and start-up steps of one environment, and its served job once started."""

    def __init__(self, env: BaseEnvironment) -> None:
        self.env = env
        self.endpoints: dict[str, ChatEndpoint] = {}
        self.setup_steps: list[Callable[[Any], None]] = []
        self.job: JobHandle | None = None
        self._draining = False
        self._lock = threading.Lock()

    def add_endpoint(self, endpoint: ChatEndpoint) -> None:
        """Serve ``endpoint`` (its name must be unique in the environment)."""
        if endpoint.name in self.endpoints:
            msg = f"model {endpoint.name!r} is served twice in environment {self.env.name!r}; pick another name"
            raise ValueError(msg)
        self.endpoints[endpoint.name] = endpoint

    def start(self) -> JobHandle | None:
        """Start the services, run the start-up steps, submit the job, then accept requests.

        The job runs under the ``dead_letter`` error policy: a record that fails answers its request
        with the error (naming the operator) and the job goes on. Returns ``None`` (and submits
        nothing) when :meth:`drain` was called meanwhile.
        """
        env = self.env
        env.services.start()
        for step in self.setup_steps:
            step(env.services)
        with self._lock:
            if self._draining:
                return None
            return self._submit()

    def _submit(self) -> JobHandle:
        env = self.env
        if env.config.job.error_policy != "dead_letter":
            log.info("served job %r: error_policy %r -> dead_letter (a failed record answers its request)",
                     env.name, env.config.job.error_policy)
            env.config.job.error_policy = "dead_letter"
        env.set_dead_letter_sink(_DeadLetterRouter(self, env.dead_letter_sink))
        self.job = env.submit(autostop=False)
        for endpoint in self.endpoints.values():
            endpoint.book.open()
        return self.job

    @property
    def ready(self) -> bool:
        """Whether the job runs and the endpoints accept requests."""
        return self.job is not None and self.job.running and all(
            e.book.accepting for e in self.endpoints.values()
        )

    def drain(self, timeout: float) -> int:
        """Refuse new requests, let those in flight finish within ``timeout`` seconds, cancel the rest.

        Stops the job (its sources stop, its records drain, the rest is cancelled at the deadline),
        then waits for answers still streaming; returns how many requests were cancelled. Services
        stay open (``env.close()`` closes them).
        """
        deadline = time.monotonic() + timeout
        refusal = ServingError("unavailable", "the server is shutting down")
        with self._lock:
            self._draining = True
            for endpoint in self.endpoints.values():
                endpoint.book.refuse(refusal)
        error = ServingError("unavailable", f"the server shut down before the answer was complete ({timeout:g} s drain)")
        cancelled = 0
        if self.job is not None:
            self.job.stop(timeout=max(0.0, deadline - time.monotonic()))  # drained, or cancelled at the deadline
            for endpoint in self.endpoints.values():  # the job has ended: what has no answer now never will
                cancelled += endpoint.book.cancel_all(error, unanswered_only=True)
        for endpoint in self.endpoints.values():  # answers still streaming get the rest of the deadline
            if not endpoint.book.wait_idle(max(0.0, deadline - time.monotonic())):
                cancelled += endpoint.book.cancel_all(error)
        return cancelled


class _DeadLetterRouter:
    """The environment's dead-letter sink while serving: a failed record fails its request."""

    def __init__(self, plan: ServingPlan, previous: Callable[[DeadLetter], None] | None) -> None:
        self.plan = plan
        self.previous = previous

    def __call__(self, letter: DeadLetter) -> None:
        for endpoint in self.plan.endpoints.values():
            reply = endpoint.reply_of(letter.record)
            if reply is not None:
                reply.fail(ServingError("failed", f"operator {letter.operator!r} failed on the request: {letter.error}"))
                break
        if self.previous is not None:
            self.previous(letter)


__all__ = ["ServingPlan", "serving_plan", "when_started"]
