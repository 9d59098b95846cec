"""Services whose backends call other services: the table their factories receive, and who calls whom.

A backend factory that declares a keyword parameter ``services`` receives a :class:`BackendServices`:
``services["kv"]`` is the blocking proxy of the service named ``kv`` (batching, fallback, timeouts and
shards apply to those calls as to any flow's), ``services.kind("kv")`` its kind. Each lookup records
that the caller depends on that service: a cycle is a :class:`ConfigError` (two services whose
backends call each other could not start), and the registry closes a caller before the services it
calls. Where a backend cannot reach the job's services (a replica with ``isolation: process``, a
service on Ray), its factory receives :class:`NoServices`, which raises a :class:`ConfigError`
saying why at the first lookup, so a factory that never looks a name up runs anywhere.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Mapping

from sage_core.errors import ConfigError


class ServiceDependencies:
    """Which services' backends call which other services; refuses cycles and gives the close order."""

    def __init__(self) -> None:
        self._calls: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def add(self, caller: str, callee: str) -> None:
        """Record that ``caller``'s backends call ``callee``; a :class:`ConfigError` when that closes a cycle."""
        with self._lock:
            if callee in self._calls.get(caller, ()):
                return
            path = self._path(callee, caller)
            if path is not None:
                cycle = " -> ".join([caller, *path])
                msg = (
                    f"services.{caller}: its backend calls service {callee!r}, which calls it back ({cycle}); "
                    "services whose backends call each other cannot start, so remove one of the calls"
                )
                raise ConfigError(msg)
            self._calls.setdefault(caller, set()).add(callee)

    def close_order(self, names: list[str]) -> list[str]:
        """``names`` reordered so that each service comes after every service whose backends call it."""
        with self._lock:
            calls = {name: set(callees) for name, callees in self._calls.items()}
        order: list[str] = []
        remaining = list(names)
        while remaining:
            waiting = {callee for name in remaining for callee in calls.get(name, ())}
            ready = next(name for name in remaining if name not in waiting)
            order.append(ready)
            remaining.remove(ready)
        return order

    def _path(self, start: str, goal: str) -> list[str] | None:
        """Services from ``start`` to ``goal`` along recorded calls (both included), or ``None``."""
        stack, seen = [[start]], {start}
        while stack:
            path = stack.pop()
            if path[-1] == goal:
                return path
            for callee in self._calls.get(path[-1], ()):
                if callee not in seen:
                    seen.add(callee)
                    stack.append([*path, callee])
        return None


class BackendServices(Mapping[str, Any]):
    """The job's services as one service's backends see them: ``services[name]`` is a blocking proxy."""

    def __init__(
        self, caller: str, proxies: Mapping[str, Any], kinds: Callable[[str], str | None], dependencies: ServiceDependencies
    ) -> None:
        self.caller = caller
        self._proxies = proxies
        self._kinds = kinds
        self._dependencies = dependencies

    def __getitem__(self, name: str) -> Any:
        proxy = self._proxies[name]  # UnknownServiceError lists the registered services
        self._dependencies.add(self.caller, name)
        return proxy

    def __contains__(self, name: object) -> bool:
        return name in self._proxies

    def __iter__(self) -> Iterator[str]:
        return iter(self._proxies)

    def __len__(self) -> int:
        return len(self._proxies)

    def kind(self, name: str) -> str | None:
        """The kind of the service called ``name`` (``None`` for a bare factory)."""
        return self._kinds(name)


class NoServices(Mapping[str, Any]):
    """What a factory receives where its backend cannot call other services: every lookup raises ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getitem__(self, name: str) -> Any:
        raise self._error(name)

    def __contains__(self, name: object) -> bool:
        raise self._error(name)

    def __iter__(self) -> Iterator[str]:
        raise self._error(None)

    def __len__(self) -> int:
        raise self._error(None)

    def kind(self, name: str) -> str | None:
        """Raises, like every lookup."""
        raise self._error(name)

    def _error(self, name: object) -> ConfigError:
        asked = "" if name is None else f" (it asked for service {name!r})"
        return ConfigError(f"{self.reason}{asked}")


__all__ = ["BackendServices", "NoServices", "ServiceDependencies"]
