"""The served environment's life inside the server: start in the background, readiness, drain, close."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sage_core.serving import ChatEndpoint, ServingPlan

log = logging.getLogger("sage.serve")


class ServedEnvironment:
    """One environment's endpoints and embedding services behind the server.

    :meth:`start` brings the services and the job up on a thread of its own, so the server answers
    ``/healthz`` (and ``/readyz`` with 503) meanwhile; :meth:`drain` ends the job on shutdown.
    ``timeout_s``, when set, replaces every endpoint's request timeout.
    """

    def __init__(self, env: Any, plan: ServingPlan, *, drain_s: float = 30.0, timeout_s: float | None = None) -> None:
        self.env = env
        self.plan = plan
        self.drain_s = drain_s
        self.timeout_s = timeout_s
        self.state = "starting"
        self.error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._drain_once = threading.Lock()

    # ------------------------------------------------------------------ what is served

    def endpoint(self, model: str) -> ChatEndpoint | None:
        """The endpoint serving ``model``."""
        return self.plan.endpoints.get(model)

    def request_timeout(self, endpoint: ChatEndpoint) -> float:
        """How long a request of ``endpoint`` may take."""
        return self.timeout_s if self.timeout_s is not None else endpoint.timeout_s

    def embedding_services(self) -> list[str]:
        """Services of kind ``embedding``: each is served on ``/v1/embeddings`` under its name."""
        services = self.env.services
        return [name for name in services.names() if getattr(services.service(name).config, "kind", None) == "embedding"]

    def models(self) -> list[tuple[str, str]]:
        """``(id, owned_by)`` of every served model: pipelines, then embedding services."""
        return [(name, "sage-pipeline") for name in self.plan.endpoints] + [
            (name, "sage-service") for name in self.embedding_services()
        ]

    @property
    def ready(self) -> bool:
        """Whether requests are answered now."""
        return self.state == "ready" and self.plan.ready

    # ------------------------------------------------------------------ life

    def start(self, on_failure: Callable[[], None]) -> None:
        """Start services, start-up steps and the job on a thread; ``on_failure()`` if that fails."""

        def run() -> None:
            try:
                self.plan.start()
            except BaseException as exc:  # reported, and the server exits with status 1
                self.error = exc
                self.state = "failed"
                log.error("sage serve: the pipeline failed to start: %s: %s", type(exc).__name__, exc)
                on_failure()
                return
            if self.state == "starting":
                self.state = "ready"
                log.warning("sage serve: ready (models: %s)", ", ".join(name for name, _ in self.models()))

        self._spawn(run, "sage-serve-start")

    def drain(self) -> None:
        """Stop accepting, finish requests in flight within ``drain_s``, cancel the rest (once, on a thread)."""
        if not self._drain_once.acquire(blocking=False):
            return
        if self.state != "failed":
            self.state = "stopping"

        def run() -> None:
            cancelled = self.plan.drain(self.drain_s)
            if cancelled:
                log.warning("sage serve: %d request(s) cancelled at the %g s drain deadline", cancelled, self.drain_s)

        self._spawn(run, "sage-serve-drain")

    def close(self) -> None:
        """Wait for the drain (and start-up, at most ``drain_s``), then stop the job and close the services."""
        self.drain()
        for thread in self._threads:
            thread.join(None if thread.name == "sage-serve-drain" else self.drain_s)
            if thread.is_alive():
                log.warning("sage serve: services still starting after %g s; they close once started", self.drain_s)
        self.env.close()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()


__all__ = ["ServedEnvironment"]
