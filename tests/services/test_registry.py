"""ServiceRegistry: registration, calls, errors, timeouts and lifecycle."""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait
from typing import Any

import pytest

from sage_core.errors import (
    ConfigError,
    ServiceClosed,
    ServiceError,
    ServiceTimeout,
    UnknownMethodError,
    UnknownServiceError,
)
from sage_core.services.registry import ServiceRegistry


class Recorder:
    """A backend that records where it was created and closed."""

    created: list[str] = []
    closed: list[str] = []
    release = threading.Event()

    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting
        Recorder.created.append(threading.current_thread().name)

    def greet(self, name: str) -> str:
        return f"{self.greeting} {name}"

    def thread(self) -> str:
        return threading.current_thread().name

    def fail(self) -> None:
        raise KeyError("missing-thing")

    def blocked(self) -> str:
        """Answer once the test sets :attr:`release`."""
        Recorder.release.wait(30)
        return "released"

    def close(self) -> None:
        Recorder.closed.append(threading.current_thread().name)


@pytest.fixture(autouse=True)
def reset_recorder() -> None:
    Recorder.created, Recorder.closed = [], []
    Recorder.release.clear()


def test_factory_service_answers_sync_and_async_calls(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder, options={"greeting": "hi"})
    assert manager.sync["greeter"].greet("ann") == "hi ann"
    future = manager.async_["greeter"].greet(name="bob")
    assert isinstance(future, Future) and future.result(5) == "hi bob"


def test_seed_style_lambda_factory_is_accepted(manager: ServiceRegistry) -> None:
    manager.register("vdb_service", lambda: Recorder())
    assert manager.sync["vdb_service"].greet("x") == "hello x"


def test_backend_is_created_once_on_a_service_thread_not_the_callers(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    manager.start()
    manager.start()
    for _ in range(5):
        manager.sync["greeter"].greet("x")
    assert len(Recorder.created) == 1
    assert Recorder.created[0].startswith("sage-t-greeter")
    assert manager.sync["greeter"].thread().startswith("sage-t-greeter")


def test_a_call_before_start_starts_the_service(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    assert manager.sync["greeter"].greet("early") == "hello early"
    assert len(Recorder.created) == 1


def test_close_closes_each_backend_once_and_refuses_later_calls(no_leaked_threads: None) -> None:
    services = ServiceRegistry(job_name="t")
    services.register("greeter", Recorder, replicas=2)
    services.start()
    proxy = services.sync["greeter"]
    services.close()
    services.close()
    assert len(Recorder.closed) == 2
    with pytest.raises(ServiceClosed):
        proxy.greet("late")


def test_four_simultaneous_calls_are_served_concurrently(manager: ServiceRegistry) -> None:
    barrier = threading.Barrier(4, timeout=5)

    class Meeting:
        def meet(self) -> int:
            return barrier.wait()

    manager.register("meeting", Meeting, workers=4)
    futures = [manager.async_["meeting"].meet() for _ in range(4)]
    assert sorted(f.result(10) for f in futures) == [0, 1, 2, 3]


def test_duplicate_name_is_a_config_error(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    with pytest.raises(ConfigError, match="already registered"):
        manager.register("greeter", Recorder)


def test_unknown_service_lists_registered_names(manager: ServiceRegistry) -> None:
    manager.register("alpha", Recorder)
    manager.register("beta", Recorder)
    with pytest.raises(UnknownServiceError, match="registered services: alpha, beta"):
        manager.sync["gamma"]


def test_unknown_method_lists_public_methods_and_suggests(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    with pytest.raises(UnknownMethodError, match="did you mean 'greet'.*blocked, fail, greet, thread"):
        manager.sync["greeter"].gret("x")
    with pytest.raises(UnknownMethodError, match="managed by SAGE"):
        manager.sync["greeter"].close()


def test_backend_exception_reaches_caller_with_service_method_and_cause(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    with pytest.raises(ServiceError, match="'greeter': fail\\(\\) failed on backend Recorder") as info:
        manager.sync["greeter"].fail()
    error = info.value
    assert error.service == "greeter" and error.method == "fail"
    assert isinstance(error.cause, KeyError) and error.__cause__ is error.cause
    assert manager.sync["greeter"].greet("still alive") == "hello still alive"


def test_per_call_timeout_raises_service_timeout(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder)
    try:
        with pytest.raises(ServiceTimeout, match="longer than 0.1s"):  # the backend cannot answer before release
            manager.sync["greeter"].blocked(timeout_s=0.1)
    finally:
        Recorder.release.set()
    assert manager.sync["greeter"].blocked(timeout_s=None) == "released"


def test_service_timeout_applies_to_async_calls(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder, timeout_s=0.1)
    future = manager.async_["greeter"].blocked()
    try:
        with pytest.raises(ServiceTimeout):
            future.result(5)
    finally:
        Recorder.release.set()
    assert manager.async_["greeter"].blocked(timeout_s=None).result(5) == "released"


def test_start_fails_clearly_when_the_factory_raises(manager: ServiceRegistry) -> None:
    def broken() -> Any:
        raise RuntimeError("model file missing")

    manager.register("broken", broken)
    with pytest.raises(ServiceError, match="'broken' failed to start: no backend available; tried broken .*: RuntimeError: model file missing"):
        manager.start()
    with pytest.raises(ServiceError, match="failed to start"):
        manager.sync["broken"].anything()


def test_registration_options_are_validated_with_key_paths(manager: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match="services.bad.batch.max_sise: unknown key"):
        manager.register("bad", Recorder, batch={"max_sise": 4})
    with pytest.raises(ConfigError, match="services.vdb.backend: unknown backend 'nope'.*numpy"):
        manager.register("vdb", kind="vdb", backend="nope")
    with pytest.raises(ConfigError, match="set either backend or factory"):
        manager.register("both", Recorder, kind="vdb", backend="numpy")


def test_register_config_takes_a_services_mapping(manager: ServiceRegistry) -> None:
    manager.register_config(
        {"kv": {"kind": "kv", "backend": "memory"}, "emb": {"kind": "embedding", "backend": "hashing", "options": {"dim": 16}}}
    )
    manager.sync["kv"].put("a", [1, 2])
    assert manager.sync["kv"].get("a") == [1, 2]
    assert manager.sync["emb"].embed(["hello world"]).shape == (1, 16)
    assert manager.names() == ["kv", "emb"] and "kv" in manager.sync and len(manager.async_) == 2


def test_metrics_report_calls_errors_latency_and_replica_load(manager: ServiceRegistry) -> None:
    manager.register("greeter", Recorder, replicas=2)
    wait([manager.async_["greeter"].greet("x") for _ in range(10)])
    with pytest.raises(ServiceError):
        manager.sync["greeter"].fail()
    stats = manager.metrics()["greeter"]
    assert stats["calls"] == 11 and stats["errors"] == 1 and stats["in_flight"] == 0
    assert stats["served_by"] == {"Recorder": 10}
    assert stats["latency_ms"]["samples"] == 11 and stats["latency_ms"]["p50"] >= 0
    replicas = stats["backends"][0]["replicas"]
    assert len(replicas) == 2 and sum(r["served"] + r["failed"] for r in replicas) == 11
