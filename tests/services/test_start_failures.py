"""Start failures: whatever a backend's creation raises, the next backend serves and the metrics say why."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest

from sage_core.errors import ConfigError, ServiceError
from sage_core.services.registry import ServiceRegistry

sys.path.insert(0, str(Path(__file__).parent))  # the child processes import the backends by module name
from process_backends import Fallback, NoGpu  # noqa: E402


class NoCuda:
    def __init__(self) -> None:
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")


class MissingPackage:
    def __init__(self) -> None:
        raise ModuleNotFoundError("No module named 'faiss'")


class OutOfMemory:
    def __init__(self) -> None:
        raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class BadOptions:
    def __init__(self) -> None:
        raise ConfigError("faiss vdb options: unknown metric 'cosin'; valid metrics: cosine, ip, l2")


class Answer:
    def ask(self, question: int) -> tuple[str, int]:
        return "fallback", question


class FailsOnce:
    """Its first creation fails; the others succeed."""

    lock = threading.Lock()
    created = 0

    def __init__(self) -> None:
        with FailsOnce.lock:
            FailsOnce.created += 1
            first = FailsOnce.created == 1
        if first:
            raise RuntimeError("CUDA out of memory on the first try")

    def ask(self, question: int) -> tuple[str, int]:
        return "primary", question


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("primary", "reason"),
    [
        (NoCuda, "RuntimeError: CUDA error: no CUDA-capable device is detected"),
        (MissingPackage, "ModuleNotFoundError: No module named 'faiss'"),
        (OutOfMemory, "MemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_an_exception_at_creation_falls_back_and_the_metrics_say_why(
    manager: ServiceRegistry, caplog: pytest.LogCaptureFixture, primary: type, reason: str
) -> None:
    manager.register("svc", primary, fallback=[Answer])
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        manager.start()
    assert manager.sync["svc"].ask(7) == ("fallback", 7)
    stats = manager.metrics()["svc"]
    assert stats["state"] == "started" and stats["served_by"] == {primary.__name__: 0, "Answer": 1}
    assert stats["start_failures"] == [{"backend": primary.__name__, "replica": f"svc/{primary.__name__}/s0r0", "reason": reason}]
    (record,) = [r for r in caplog.records if "failed to start" in r.getMessage()]
    assert record.getMessage() == (
        f"service 'svc': backend '{primary.__name__}', replica svc/{primary.__name__}/s0r0, failed to start: "
        f"{reason}; falling back to 'Answer'"
    )


@pytest.mark.timeout(60)
def test_when_no_backend_starts_the_error_names_each_backend_and_why(manager: ServiceRegistry) -> None:
    manager.register("svc", NoCuda, fallback=[MissingPackage, OutOfMemory])
    with pytest.raises(ServiceError) as info:
        manager.start()
    assert str(info.value) == (
        "service 'svc' failed to start: no backend available; tried "
        "NoCuda (svc/NoCuda/s0r0): RuntimeError: CUDA error: no CUDA-capable device is detected; "
        "MissingPackage (svc/MissingPackage/s0r0): ModuleNotFoundError: No module named 'faiss'; "
        "OutOfMemory (svc/OutOfMemory/s0r0): MemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert info.value.service == "svc"
    assert isinstance(info.value.__cause__, RuntimeError) and info.value.cause is info.value.__cause__
    with pytest.raises(ServiceError, match="no backend available; tried NoCuda"):
        manager.sync["svc"].ask(1)
    assert len(manager.metrics()["svc"]["start_failures"]) == 3


@pytest.mark.timeout(60)
def test_a_factory_config_error_is_logged_as_an_error_with_its_key_path(
    manager: ServiceRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    manager.register("vdb", BadOptions, fallback=[Answer])
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        assert manager.sync["vdb"].ask(2) == ("fallback", 2)
    (record,) = [r for r in caplog.records if "failed to start" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "ConfigError: faiss vdb options: unknown metric 'cosin'; valid metrics: cosine, ip, l2 (fix services.vdb.options)" in record.getMessage()
    (failure,) = manager.metrics()["vdb"]["start_failures"]
    assert failure["reason"].endswith("(fix services.vdb.options)")
    manager.register("kv", Answer, fallback=[BadOptions])
    assert manager.sync["kv"].ask(3) == ("fallback", 3)  # Answer is the primary here
    (failure,) = manager.metrics()["kv"]["start_failures"]
    assert failure["reason"].endswith("(fix services.kv.fallback[0].options)")


@pytest.mark.timeout(60)
def test_a_config_error_with_nothing_else_to_serve_fails_the_service_with_it_and_its_key_path(manager: ServiceRegistry) -> None:
    manager.register("bad", BadOptions)
    message = r"^service 'bad': services\.bad\.options: faiss vdb options: unknown metric 'cosin'; valid metrics: cosine, ip, l2$"
    with pytest.raises(ConfigError, match=message) as info:
        manager.sync["bad"].ask(1)
    assert not isinstance(info.value, ServiceError)


@pytest.mark.timeout(60)
def test_one_replica_failing_to_start_leaves_its_backend_serving_on_the_others(
    manager: ServiceRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    FailsOnce.created = 0
    manager.register("svc", FailsOnce, replicas=2, fallback=[Answer])
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        manager.start()
    assert [manager.sync["svc"].ask(i) for i in range(4)] == [("primary", i) for i in range(4)]
    (failure,) = manager.metrics()["svc"]["start_failures"]
    assert failure["backend"] == "FailsOnce" and failure["reason"] == "RuntimeError: CUDA out of memory on the first try"
    assert any(r.getMessage().endswith("; its other replicas serve") for r in caplog.records)


@pytest.mark.timeout(60)
def test_a_process_replica_whose_creation_raises_falls_back(manager: ServiceRegistry) -> None:
    manager.register("svc", NoGpu, isolation="process", fallback=[Fallback])
    assert manager.sync["svc"].pid() > 0
    (failure,) = manager.metrics()["svc"]["start_failures"]
    assert failure == {
        "backend": "NoGpu", "replica": "svc/NoGpu/s0r0",
        "reason": "RuntimeError: CUDA error: no CUDA-capable device is detected",
    }
    assert manager.metrics()["svc"]["served_by"] == {"NoGpu": 0, "Fallback": 1}
