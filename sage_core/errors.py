"""Every error SAGE raises, in one hierarchy (this module imports nothing of SAGE).

- Configuration and pipeline mistakes: :class:`ConfigError` (names the key and the valid choices),
  :class:`PipelineError` (names the operator and the fix).
- Services: :class:`ServiceError` and its kinds (timeout, unknown service or method, closed);
  :class:`BackendUnavailable`, raised by a backend factory that cannot run here.
- Jobs: :class:`JobFailed` (a record failed under the ``fail`` policy), :class:`OpenFailed`,
  :class:`CloseFailed` (an ``ExceptionGroup`` of every ``close()`` that raised).
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration names something that does not exist; the message lists the valid choices."""


class PipelineError(ValueError):
    """The pipeline cannot run as written; the message names the operator and the fix."""


class BackendUnavailable(RuntimeError):
    """Raised by a backend factory that cannot run here (no GPU, missing package).

    The service layer then moves to the next backend of the service's ``fallback`` chain; without
    one, the message reaches the user, so say what is missing and how to get it.
    """


class ServiceError(RuntimeError):
    """A service call failed: ``service``, ``method`` and the original exception as ``cause``.

    The backend's exception is also chained (``raise ... from exc``), so tracebacks show both.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        method: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.method = method
        self.cause = cause


class ServiceTimeout(ServiceError, TimeoutError):
    """A call took longer than its timeout (the service's ``timeout_s`` or the call's ``timeout_s=``)."""


class UnknownServiceError(ServiceError, LookupError):
    """A flow asked for a service name that was never registered; the message lists the names."""


class UnknownMethodError(ServiceError, AttributeError):
    """A flow called a method the backend does not have; the message lists its public methods."""


class ServiceClosed(ServiceError):
    """The service (or its manager) was closed; calls are refused."""


class JobFailed(RuntimeError):
    """A record failed under the ``fail`` policy; carries the operator, the record and the cause.

    ``operator`` is the operator id; the message names the user's function (``map parse (parse)``).
    """

    def __init__(self, operator: str, record: Any, cause: BaseException, label: str = "") -> None:
        self.operator = operator
        self.record = record
        self.cause = cause
        shown = repr(record)
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        super().__init__(
            f"{label or repr(operator)} failed on record {shown}: {type(cause).__name__}: {cause}. "
            f"Fix the function, or set the job's error_policy to 'skip' or 'dead_letter' to keep going."
        )


class OpenFailed(RuntimeError):
    """A function's ``open()`` raised, so the job failed; the message names the operator, the cause is chained."""


class CloseFailed(ExceptionGroup):
    """One or more functions' ``close()`` raised; every other function was still closed.

    Each member error names its operator (``map parse (parse): close() raised ...``) and chains the cause.
    """

    def __new__(cls, errors: list[Exception]) -> "CloseFailed":
        noun = "function" if len(errors) == 1 else "functions"
        return super().__new__(cls, f"close() raised in {len(errors)} {noun}", errors)

    def derive(self, excs: Any) -> "CloseFailed":
        return CloseFailed(list(excs))

    def __reduce__(self) -> tuple:
        return (type(self), (list(self.exceptions),))


__all__ = ["BackendUnavailable", "CloseFailed", "ConfigError", "JobFailed", "OpenFailed", "PipelineError", "ServiceClosed", "ServiceError", "ServiceTimeout", "UnknownMethodError", "UnknownServiceError"]
