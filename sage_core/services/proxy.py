"""What a flow holds: ``services.sync[name]`` and ``services.async_[name]`` proxies.

``proxy.method(*args, **kwargs)`` calls the backend's method through the service layer. One
keyword is reserved: ``timeout_s=`` overrides the service's ``timeout_s`` for this call (how long
one backend may take before the next in the chain is tried; ``None`` for no limit).

* sync proxies block and return the result (or raise :class:`ServiceError`);
  on a streaming method (generator / async generator) they return a blocking iterator of items;
* async proxies return a ``concurrent.futures.Future`` of the result; on a streaming method
  the Future's result is the list of every item (use the sync proxy to consume items as they come).
"""

from __future__ import annotations

import difflib
from concurrent.futures import Future
from typing import Any, Callable, Iterator, Mapping

from sage_core.errors import ServiceError, UnknownMethodError, UnknownServiceError
from sage_core.services.replica import RESERVED_METHODS
from sage_core.services.service import DEFAULT, Service


class ServiceProxy:
    """Calls one service's methods; blocking or returning Futures (see the module docstring)."""

    def __init__(self, service: Service, blocking: bool) -> None:
        self._service = service
        self._blocking = blocking

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        service = self._service
        service.ensure_started()
        if method not in service.methods:
            raise _unknown_method(service, method)
        call = _blocking_call(service, method) if self._blocking else _async_call(service, method)
        self.__dict__[method] = call
        return call

    def __dir__(self) -> list[str]:
        self._service.ensure_started()
        return sorted(self._service.methods)

    def __repr__(self) -> str:
        mode = "sync" if self._blocking else "async"
        return f"<{mode} proxy of service {self._service.name!r}>"


class ServiceTable(Mapping[str, ServiceProxy]):
    """Proxies by service name (``manager.sync`` / ``manager.async_``)."""

    def __init__(self, manager: "ServiceDirectory", blocking: bool) -> None:
        self._manager = manager
        self._blocking = blocking
        self._proxies: dict[str, ServiceProxy] = {}

    def __getitem__(self, name: str) -> ServiceProxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            service = self._manager.service(name)
            proxy = self._proxies[name] = ServiceProxy(service, self._blocking)
        return proxy

    def __contains__(self, name: object) -> bool:
        return name in self._manager.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._manager.names())

    def __len__(self) -> int:
        return len(self._manager.names())


class ServiceDirectory:
    """Services by name and their proxy tables: what a flow's functions see as ``ctx.services``.

    The local :class:`~sage_core.services.manager.ServiceManager` and the Ray runtime's table in
    task actors both fill ``_services``.
    """

    def __init__(self) -> None:
        self._services: dict[str, Any] = {}
        self._sync = ServiceTable(self, blocking=True)
        self._async = ServiceTable(self, blocking=False)

    @property
    def sync(self) -> ServiceTable:
        """Blocking proxies: ``sync["vdb"].search(query=v, top_k=10)`` returns the hits."""
        return self._sync

    @property
    def async_(self) -> ServiceTable:
        """Future proxies: ``async_["vdb"].search(query=v)`` returns a ``concurrent.futures.Future``."""
        return self._async

    def service(self, name: str) -> Any:
        """The service called ``name``; :class:`UnknownServiceError` lists the registered ones."""
        service = self._services.get(name)
        if service is None:
            raise self._missing(name)
        return service

    def names(self) -> list[str]:
        """Registered service names, in registration order."""
        return list(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def _missing(self, name: str) -> ServiceError:
        known = ", ".join(sorted(self._services)) or "none"
        msg = f"no service named {name!r}; registered services: {known} (register it with env.register_service)"
        return UnknownServiceError(msg, service=name)


def _blocking_call(service: Service, method: str) -> Callable[..., Any]:
    if service.is_stream(method):

        def stream(*args: Any, timeout_s: Any = DEFAULT, **kwargs: Any) -> Iterator[Any]:
            return service.open_stream(method, args, kwargs, timeout_s)

        return stream

    def call(*args: Any, timeout_s: Any = DEFAULT, **kwargs: Any) -> Any:
        return service.call(method, args, kwargs, timeout_s).result()

    call.__name__ = call.__qualname__ = method
    return call


def _async_call(service: Service, method: str) -> Callable[..., Future]:
    def call(*args: Any, timeout_s: Any = DEFAULT, **kwargs: Any) -> Future:
        return service.call(method, args, kwargs, timeout_s)

    call.__name__ = call.__qualname__ = method
    return call


def _unknown_method(service: Service, method: str) -> UnknownMethodError:
    methods = sorted(service.methods)
    if method in RESERVED_METHODS:
        msg = f"service {service.name!r}: {method}() is managed by SAGE (env.close() closes services)"
        return UnknownMethodError(msg, service=service.name, method=method)
    close = difflib.get_close_matches(method, methods, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    msg = f"service {service.name!r} has no method {method!r}{hint}; its public methods: {', '.join(methods)}"
    return UnknownMethodError(msg, service=service.name, method=method)


__all__ = ["ServiceDirectory", "ServiceProxy", "ServiceTable"]
