"""Backends that could not start: each failure logged, kept for the metrics, and named when none can serve.

Whatever a backend's creation raises (``BackendUnavailable``, a ``RuntimeError`` from a library
finding no GPU, an ``ImportError``, a ``MemoryError``), only that replica is out: routing skips a
backend until each of its shards has a ready replica, so the next tier (the ``fallback`` list)
serves. A ``ConfigError`` (or a pydantic ``ValidationError``) raised by a factory is a mistake to
fix, not a condition to route around: it is logged as an error naming the options' key path while
the fallback (if any) serves, and when nothing serves the service fails with a ``ConfigError``
naming the service and that key path rather than a ``ServiceError``.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, wait
from dataclasses import dataclass

from pydantic import ValidationError

from sage_core.errors import ConfigError, ServiceError
from sage_core.services.key_paths import describe_errors
from sage_core.services.tiers import Tier

log = logging.getLogger("sage.services")


@dataclass(frozen=True)
class StartFailure:
    """One replica of one backend that did not start, and why."""

    backend: str
    replica: str
    error: BaseException
    config_key: str | None = None
    """For a factory's ``ConfigError`` or ``ValidationError``: where that backend's options are (``services.vdb.options``)."""

    @property
    def reason(self) -> str:
        """The exception in words, with the key path to fix for a configuration error."""
        text = f"{type(self.error).__name__}: {self.error}"
        return text if self.config_key is None else f"{text} (fix {self.config_key})"

    def as_dict(self) -> dict[str, str]:
        """The failure as the service's metrics show it."""
        return {"backend": self.backend, "replica": self.replica, "reason": self.reason}


def collect_start_failures(service: str, tiers: list[Tier], futures: list[Future]) -> list[StartFailure]:
    """Wait for ``futures`` (one per replica, in tier order) and log each replica that did not start."""
    wait(futures)  # every replica settled, so that what serves instead is known
    failures = []
    replicas = [(position, group, replica) for position, group in enumerate(tiers) for replica in group.replicas]
    for (position, group, replica), future in zip(replicas, futures):
        error = future.exception() or (replica.error if replica.state in ("unavailable", "failed") else None)
        if error is None:
            continue
        key = _options_key(service, position) if isinstance(error, (ConfigError, ValidationError)) else None
        failure = StartFailure(group.label, replica.label, error, key)
        level = logging.ERROR if key is not None else logging.WARNING
        log.log(level, "service %r: backend %r, replica %s, failed to start: %s; %s",
                service, group.label, replica.label, failure.reason, _outcome(tiers, position))
        failures.append(failure)
    return failures


def no_backend_error(service: str, failures: list[StartFailure]) -> ServiceError | ConfigError:
    """The error of a service none of whose backends started.

    A :class:`ConfigError` naming the service and the key path when a factory found its options
    wrong (the first such); otherwise a :class:`ServiceError` naming every backend tried and why,
    the first cause chained.
    """
    wrong = next((f for f in failures if f.config_key is not None), None)
    if wrong is not None:
        error = wrong.error
        detail = describe_errors(error, None, wrong.config_key) if isinstance(error, ValidationError) else f"{wrong.config_key}: {error}"
        return ConfigError(f"service {service!r}: {detail}")
    tried = "; ".join(f"{f.backend} ({f.replica}): {f.reason}" for f in failures) or "none reported an error"
    cause = failures[0].error if failures else None
    msg = f"service {service!r} failed to start: no backend available; tried {tried}"
    service_error = ServiceError(msg, service=service, cause=cause)
    service_error.__cause__ = cause
    return service_error


def _outcome(tiers: list[Tier], position: int) -> str:
    """What serves instead, in words."""
    if tiers[position].usable:
        return "its other replicas serve"
    serving = next((index for index, group in enumerate(tiers) if group.usable), None)
    if serving is None:
        return "no backend can serve"
    label = tiers[serving].label
    return f"falling back to {label!r}" if serving > position else f"{label!r} serves"


def _options_key(service: str, position: int) -> str:
    where = f"services.{service}"
    return f"{where}.options" if position == 0 else f"{where}.fallback[{position - 1}].options"


__all__ = ["StartFailure", "collect_start_failures", "no_backend_error"]
