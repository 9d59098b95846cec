"""A backend factory that declares ``services`` calls the job's other services by name, through the service layer."""

from __future__ import annotations

from typing import Any, Mapping

import pytest

from sage_core.builtin.kv_stores import MemoryKVStore
from sage_core.errors import ConfigError, ServiceError
from sage_core.services.config import parse_service
from sage_core.services.registry import ServiceRegistry
from sage_core.services.tiers import build_tiers, local_replica


class Counter:
    """Keeps its count in the KV service named ``store``, which it calls from its constructor, its methods and close."""

    def __init__(self, services: Mapping[str, Any], store: str = "kv", closed: list[str] | None = None) -> None:
        self._kv = services[store]
        self._kv.put("count", 0)
        self._closed = closed

    def bump(self) -> int:
        value = self._kv.get("count") + 1
        self._kv.put("count", value)
        return value

    def close(self) -> None:
        self._kv.put("closed", True)  # raises ServiceClosed if the KV service closed first
        if self._closed is not None:
            self._closed.append("counter")


class ClosingKV(MemoryKVStore):
    """The built-in dict KV store, noting when it closes."""

    def __init__(self, closed: list[str]) -> None:
        super().__init__()
        self._closed = closed

    def close(self) -> None:
        self._closed.append("kv")
        super().close()


class Caller:
    """Looks up the service named ``target`` when created."""

    def __init__(self, services: Mapping[str, Any], target: str) -> None:
        services[target].get("x")

    def get(self, key: str) -> None:
        return None


def test_a_factory_declaring_services_calls_another_service_through_its_proxy(manager: ServiceRegistry) -> None:
    manager.register("kv", kind="kv", backend="memory")
    manager.register("counter", Counter)
    assert [manager.sync["counter"].bump() for _ in range(3)] == [1, 2, 3]
    metrics = manager.metrics()["kv"]
    assert metrics["calls"] == 1 + 3 * 2  # the constructor's put, then a get and a put per bump
    assert metrics["served_by"] == {"memory": 7}


def test_starting_every_service_at_once_starts_the_called_one_first(manager: ServiceRegistry) -> None:
    manager.register("counter", Counter, options={"store": "kv"})  # registered before the service it calls
    manager.register("kv", kind="kv", backend="sqlite")
    manager.start()
    assert manager.metrics()["counter"]["state"] == manager.metrics()["kv"]["state"] == "started"
    assert manager.sync["counter"].bump() == 1


def test_a_caller_closes_before_the_services_it_calls() -> None:
    closed: list[str] = []
    services = ServiceRegistry(job_name="t")
    services.register("kv", ClosingKV, options={"closed": closed})
    services.register("counter", Counter, options={"closed": closed})
    services.start()
    services.close()
    assert closed == ["counter", "kv"]


def test_a_factory_without_the_parameter_gets_no_services(manager: ServiceRegistry) -> None:
    manager.register("kv", MemoryKVStore)
    manager.sync["kv"].put("a", 1)
    assert manager.sync["kv"].get("a") == 1


def test_an_option_named_services_is_refused_at_registration(manager: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match=r"services\.counter\.options\.services: reserved"):
        manager.register("counter", Counter, options={"services": {}})


def test_an_unknown_service_name_fails_the_start_listing_the_registered_ones(manager: ServiceRegistry) -> None:
    manager.register("kv", kind="kv", backend="memory")
    manager.register("counter", Counter, options={"store": "kv_typo"})
    with pytest.raises(ServiceError, match=r"no service named 'kv_typo'; registered services: counter, kv"):
        manager.sync["counter"].bump()


def test_services_whose_backends_call_each_other_are_refused_naming_the_cycle(manager: ServiceRegistry) -> None:
    manager.register("a", Caller, options={"target": "b"})
    manager.register("b", Caller, options={"target": "a"})
    with pytest.raises(ConfigError, match=r"calls it back \((a -> b -> a|b -> a -> b)\)"):
        manager.start()


def test_a_backend_calling_its_own_service_is_refused(manager: ServiceRegistry) -> None:
    manager.register("a", Caller, options={"target": "a"})
    with pytest.raises(ConfigError, match=r"calls it back \(a -> a\)"):
        manager.sync["a"].get("x")


def test_a_runtime_hosting_replicas_itself_gives_factories_no_services(manager: ServiceRegistry) -> None:
    """Ray passes its own ``make_replica``: a backend there that looks a service up is told it is not supported yet."""
    config = parse_service("counter", {"factory": Counter}, manager.plugins)
    tiers = build_tiers("counter", config, manager.plugins, "t", make_replica=local_replica)
    replica = tiers[0].replicas[0]
    try:
        replica.start().exception(timeout=30)
        assert isinstance(replica.error, ConfigError)
        assert "services.counter: a backend that calls other services is not supported on Ray yet" in str(replica.error)
    finally:
        replica.close()
