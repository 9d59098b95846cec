"""Errors raised by the service layer; each names the service, the method and the cause."""

from __future__ import annotations


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


__all__ = ["ServiceClosed", "ServiceError", "ServiceTimeout", "UnknownMethodError", "UnknownServiceError"]
