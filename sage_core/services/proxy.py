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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from sage_core.errors import UnknownMethodError
from sage_core.services.replica import RESERVED_METHODS
from sage_core.services.service import DEFAULT, Service

if TYPE_CHECKING:
    from sage_core.services.registry import ServiceRegistry


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


class ProxyTable(Mapping[str, ServiceProxy]):
    """Proxies by service name: a registry's ``sync`` or ``async_`` view."""

    def __init__(self, registry: "ServiceRegistry", blocking: bool) -> None:
        self._registry = registry
        self._blocking = blocking
        self._proxies: dict[str, ServiceProxy] = {}

    def __getitem__(self, name: str) -> ServiceProxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            service = self._registry.service(name)
            proxy = self._proxies[name] = ServiceProxy(service, self._blocking)
        return proxy

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __len__(self) -> int:
        return len(self._registry.names())


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


__all__ = ["ProxyTable", "ServiceProxy"]
