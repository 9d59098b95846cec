"""What ``sage serve`` serves of an environment, and the served job's life: start, then drain.

A :class:`ServingPlan` belongs to one environment (:func:`serving_plan`); endpoints add themselves
to it, and ``when_started`` steps (indexing a corpus, warming a cache) run once the services are
up and before the first request is accepted. A front end calls :meth:`ServingPlan.start` and,
on shutdown, :meth:`ServingPlan.drain`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sage_core.api.functions import SinkFunction, SourceFunction
from sage_core.serving.local import LocalTransport
from sage_core.serving.replies import Reply, ServingError

if TYPE_CHECKING:
    from sage_core.api.environment import BaseEnvironment
    from sage_core.runtime.errors import RecordWatcher
    from sage_core.runtime.job import JobHandle
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


class Transport(Protocol):
    """How requests reach a served job's tasks and how answers come back: in this process, or through Ray."""

    def source(self, endpoint: ChatEndpoint) -> SourceFunction:
        """The request source of ``endpoint``."""

    def sink(self, endpoint: ChatEndpoint) -> SinkFunction:
        """The response sink of ``endpoint``."""

    def watcher(self) -> RecordWatcher:
        """The job's record watcher: ends the requests of failed and dropped records."""

    def start(self) -> None:
        """Before the job is submitted: open the way between the front end and the tasks."""

    def request_ended(self, request_id: str) -> None:
        """A request ended in the front end (answered, failed, cancelled): its answer is no longer wanted."""

    def close(self) -> None:
        """After the job has ended: release what :meth:`start` made."""


class ServingPlan:
    """The endpoints and start-up steps of one environment, and its served job once started."""

    def __init__(self, env: BaseEnvironment) -> None:
        self.env = env
        self.endpoints: dict[str, ChatEndpoint] = {}
        self.setup_steps: list[Callable[[Any], None]] = []
        self.transport: Transport = _transport(self)
        self.job: JobHandle | None = None
        self._draining = False
        self._lock = threading.Lock()

    def add_endpoint(self, endpoint: ChatEndpoint) -> None:
        """Serve ``endpoint`` (its name must be unique in the environment)."""
        if endpoint.name in self.endpoints:
            msg = f"model {endpoint.name!r} is served twice in environment {self.env.name!r}; pick another name"
            raise ValueError(msg)
        self.endpoints[endpoint.name] = endpoint

    def reply(self, request_id: str) -> Reply | None:
        """The pending reply of ``request_id`` in any endpoint."""
        for endpoint in self.endpoints.values():
            reply = endpoint.book.reply(request_id)
            if reply is not None:
                return reply
        return None

    def start(self) -> JobHandle | None:
        """Start the services, run the start-up steps, submit the job, then accept requests.

        The job runs under the ``dead_letter`` error policy, and its record watcher ends the request
        of a record that fails (naming the operator) or that a filter drops, at once; the job goes
        on. Returns ``None`` (and submits nothing) when :meth:`drain` was called meanwhile.
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
        self.transport.start()
        env.set_record_watcher(self.transport.watcher())
        self.job = env.submit(autostop=False)
        threading.Thread(target=self._watch_job, args=(self.job,), name="sage-serve-job", daemon=True).start()
        for endpoint in self.endpoints.values():
            endpoint.book.open()
        return self.job

    def _watch_job(self, job: JobHandle) -> None:
        """When the job ends on its own (a task failed, someone cancelled it), refuse requests and end those pending."""
        try:
            job.wait()
        except Exception:  # the job's error, named below
            log.exception("served job %r ended with an error", self.env.name)
        with self._lock:
            if self._draining:
                return
            error = ServingError("unavailable", f"the served job has ended ({job.status}): {job.runtime.error() or 'no error'}")
            for endpoint in self.endpoints.values():
                endpoint.book.refuse(error)
        for endpoint in self.endpoints.values():
            endpoint.book.cancel_all(error)

    @property
    def ready(self) -> bool:
        """Whether the job runs and the endpoints accept requests."""
        return self.job is not None and self.job.running and all(
            e.book.accepting for e in self.endpoints.values()
        )

    def drain(self, timeout: float) -> int:
        """Refuse new requests, let those accepted finish within ``timeout`` seconds, cancel the rest.

        The job keeps serving the requests already accepted (queued ones included) until they end
        or the deadline passes; what is left then is cancelled, and the job is stopped (records of
        cancelled requests still in it are cancelled too). Returns how many requests were
        cancelled. Services stay open (``env.close()`` closes them).
        """
        deadline = time.monotonic() + timeout
        refusal = ServingError("unavailable", "the server is shutting down")
        with self._lock:
            self._draining = True
            for endpoint in self.endpoints.values():
                endpoint.book.refuse(refusal)
        error = ServingError("unavailable", f"the server shut down before the answer was complete ({timeout:g} s drain)")
        cancelled = 0
        if self.job is None or not self.job.running:  # nothing will answer what has no answer yet
            for endpoint in self.endpoints.values():
                cancelled += endpoint.book.cancel_all(error, unanswered_only=True)
        for endpoint in self.endpoints.values():
            if not endpoint.book.wait_idle(max(0.0, deadline - time.monotonic())):
                cancelled += endpoint.book.cancel_all(error)
        if self.job is not None:
            self.job.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.transport.close()
        return cancelled


def _transport(plan: ServingPlan) -> Transport:
    """Through Ray for a ``RemoteEnvironment``, else within this process."""
    remote = sys.modules.get("sage_core.api.remote_environment")  # imported whenever a RemoteEnvironment exists
    if remote is not None and isinstance(plan.env, remote.RemoteEnvironment):
        from sage_core.serving.ray_transport import RayTransport

        return RayTransport(plan)
    return LocalTransport(plan)


__all__ = ["ServingPlan", "Transport", "serving_plan", "when_started"]
