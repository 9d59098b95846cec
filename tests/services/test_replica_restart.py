"""A process replica whose child dies is restarted (bounded, with backoff); calls it held are sent again once."""

from __future__ import annotations

import logging
import os
import signal
import sys
from concurrent.futures import Future
from pathlib import Path

import pytest

from sage_core.errors import ServiceError
from sage_core.services.config import RestartConfig
from sage_core.services.process_replica import ProcessReplica, exit_cause
from sage_core.services.registry import ServiceRegistry

sys.path.insert(0, str(Path(__file__).parent))  # the child processes import the backends by module name
from process_backends import DiesAtStart, Fallback, Where  # noqa: E402

NO_BACKOFF = {"backoff_s": 0}


def replica(manager: ServiceRegistry, name: str) -> ProcessReplica:
    (only,) = manager.service(name).tiers[0].replicas
    assert isinstance(only, ProcessReplica)
    return only


def hold_a_call(manager: ServiceRegistry, tmp_path: Path) -> Future:
    """Start a call and return its Future once the child is running it (it then hangs there)."""
    fifo = tmp_path / "running"
    os.mkfifo(fifo)
    call = manager.async_["where"].signal_then_hang(fifo=str(fifo))
    with open(fifo) as pipe:  # blocks until the child opens the pipe inside the call
        assert pipe.readline() == "running\n"
    return call


@pytest.mark.timeout(120)
def test_a_replica_killed_with_sigkill_is_restarted_and_its_unanswered_call_is_sent_again(
    manager: ServiceRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager.register("where", Where, isolation="process", restart=NO_BACKOFF)
    first = manager.sync["where"].pid()
    call = hold_a_call(manager, tmp_path)
    os.kill(first, signal.SIGKILL)
    second = call.result(60)  # answered by the restarted child
    assert second not in (first, os.getpid())
    assert [manager.sync["where"].pid() for _ in range(3)] == [second] * 3
    stats = manager.metrics()["where"]
    assert stats["restarts"] == 1 and stats["errors"] == 0
    assert stats["backends"][0]["replicas"][0]["restarts"] == 1 and stats["backends"][0]["usable"] is True
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        manager.close()
    assert "replica s0r0 of service 'where' (backend 'Where'): its process died 1 time, with signal 9 (SIGKILL), " \
        "and was restarted 1 time" in caplog.messages
    assert not any("did not exit" in message for message in caplog.messages)


@pytest.mark.timeout(120)
def test_a_call_whose_process_dies_again_after_its_resend_gets_a_clear_error(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process", restart=NO_BACKOFF)
    with pytest.raises(ServiceError, match=(
        r"replica s0r0 of service 'where' \(backend 'Where'\): its process died with exit code 5 before answering "
        r"this call, which was already sent again to a restarted process"
    )):
        manager.sync["where"].crash(code=5)
    assert replica(manager, "where").wait_ready(60, restarts=2)
    assert manager.sync["where"].double(x=4) == 8
    assert manager.metrics()["where"]["restarts"] == 2


@pytest.mark.timeout(120)
def test_a_stream_whose_process_dies_fails_with_the_signal(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process", restart=NO_BACKOFF)
    stream = manager.sync["where"].slow_count(n=10_000, seconds=0.01)
    assert next(stream) == 0
    os.kill(replica(manager, "where").pid, signal.SIGKILL)
    with pytest.raises(ServiceError, match=r"died with signal 9 \(SIGKILL\) before answering this call \(a stream is not sent again\)"):
        list(stream)
    assert replica(manager, "where").wait_ready(60, restarts=1)
    assert list(manager.sync["where"].count(n=3)) == [0, 1, 2]


@pytest.mark.timeout(120)
def test_a_replica_dying_at_every_start_gives_up_after_max_restarts_and_the_fallback_serves(manager: ServiceRegistry) -> None:
    manager.register("svc", DiesAtStart, isolation="process", fallback=[Fallback], restart={"max_restarts": 2, "backoff_s": 0})
    assert manager.sync["svc"].pid() == os.getpid()
    stats = manager.metrics()["svc"]
    assert stats["restarts"] == 2
    (failure,) = stats["start_failures"]
    assert failure["reason"] == (
        "RuntimeError: replica s0r0 of service 'svc' (backend 'DiesAtStart'): its process died with exit code 7; "
        "not restarted: it died 3 times in a row (restart.max_restarts is 2)"
    )


@pytest.mark.timeout(120)
def test_a_replica_dying_at_every_start_without_a_fallback_fails_the_service(manager: ServiceRegistry) -> None:
    manager.register("svc", DiesAtStart, isolation="process", restart={"max_restarts": 1, "backoff_s": 0})
    with pytest.raises(ServiceError, match=r"no backend available; tried DiesAtStart .*exit code 7; not restarted: it died 2 times"):
        manager.start()


@pytest.mark.timeout(10)
def test_restart_backoff_doubles_up_to_its_cap_and_exit_causes_read_as_words() -> None:
    policy = RestartConfig(backoff_s=0.5, max_backoff_s=1.5)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert exit_cause(-9) == "signal 9 (SIGKILL)" and exit_cause(3) == "exit code 3"
