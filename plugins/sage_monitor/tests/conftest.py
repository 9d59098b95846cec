"""Fixtures for the monitor's tests: running jobs, a hub, a served dashboard, thread checks.

``sage_core`` and the HTTP modules are imported inside fixtures so that ``test_gpu.py`` needs only
``pynvml`` (it runs on the GPU machine with ``pytest -m gpu``).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # process replicas import monitor_backends by module name


MONITORED = {"monitor": {"enabled": True, "port": 0}}
"""The config section that serves the dashboard, on a free port (the machine is shared)."""


@pytest.fixture
def monitored() -> dict[str, Any]:
    """A config that serves the dashboard while the environment's jobs run, on a free port."""
    return {"monitor": dict(MONITORED["monitor"])}


@pytest.fixture(autouse=True)
def session_closed() -> Iterator[None]:
    """No session server outlives a test."""
    yield
    from sage_monitor.session import SESSION

    SESSION.close()


@pytest.fixture
def no_sage_threads() -> Iterator[None]:
    """Fail if the test leaves a new thread whose name starts with ``sage-`` (as the core tests do).

    Threads already running before the test (another plugin's session-scoped services) do not count;
    new ones get 2 s to end (a request thread may be sending its last bytes).
    """
    before = set(_sage_threads())
    yield
    deadline = time.monotonic() + 2.0
    for thread in set(_sage_threads()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    leftover = sorted(t.name for t in set(_sage_threads()) - before)
    assert not leftover, f"threads left behind: {leftover}"


def _sage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sage-") and t.is_alive()]


@pytest.fixture
def hub() -> Any:
    """A hub polling the collectors that plugins registered (the GPU collector among them)."""
    from sage_monitor.hub import MonitorHub

    return MonitorHub(max_age_s=0.0)


@pytest.fixture
def server(hub: Any) -> Iterator[Any]:
    """The hub served on 127.0.0.1 at a free port."""
    from sage_monitor.server import MonitorServer

    with MonitorServer(hub, "127.0.0.1", 0) as served:
        yield served


@pytest.fixture
def start_job() -> Iterator[Callable[..., Any]]:
    """``start_job(rate=, map_fn=, parallelism=, config=, monitor=)`` submits an unbounded job.

    numbers (paced source) -> double (map_fn) -> quarter (filter) -> drop (sink); stopped after the test.
    ``monitor=True`` adds the config section that serves the dashboard (on a free port).
    """
    from sage_core import LocalEnvironment

    envs: list[Any] = []

    def start(
        rate: float = 2000.0,
        map_fn: Callable[[Any], Any] | None = None,
        parallelism: int = 1,
        config: dict[str, Any] | None = None,
        monitor: bool = False,
        name: str = "monitored",
    ) -> Any:
        env = LocalEnvironment(name, config={**(config or {}), **(MONITORED if monitor else {})})
        envs.append(env)
        stream = env.from_source(paced_counter()(rate), name="numbers")
        stream = stream.map(map_fn or (lambda n: n * 2), parallelism=parallelism, name="double")
        stream.filter(lambda n: n % 4 == 0, parallelism=parallelism, name="quarter").sink(lambda n: None, name="drop")
        return env.submit(autostop=False)

    yield start
    for env in envs:
        env.close()


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout)``: poll until ``predicate()`` is truthy (returned), else fail."""

    def wait(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout} s: {predicate}")
            time.sleep(interval)

    return wait


@functools.cache
def paced_counter() -> type:
    """``PacedCounter(rate)``: an unbounded source of integers, at most ``rate`` per second."""
    from sage_core import SourceFunction

    class PacedCounter(SourceFunction):
        def __init__(self, rate: float) -> None:
            self.rate = rate
            self.n = 0
            self._next_at = 0.0

        def execute(self, data: Any = None) -> Any:
            now = time.monotonic()
            if now < self._next_at:
                time.sleep(min(self._next_at - now, 0.002))
                return None
            self._next_at = max(self._next_at, now) + 1.0 / self.rate
            self.n += 1
            return self.n

    return PacedCounter


class ProbeCollector:
    """A metrics collector as a third-party plugin would offer it."""

    name = "probe"

    def __init__(self) -> None:
        self.reads = 0

    def collect(self) -> dict[str, Any]:
        self.reads += 1
        return {"reads": self.reads}


class BrokenCollector:
    """A collector that always raises."""

    name = "broken"

    def collect(self) -> dict[str, Any]:
        raise RuntimeError("sensor unplugged")


@pytest.fixture
def probe_plugin() -> Iterator[Any]:
    """A plugin offering a working and a broken collector, registered in the process's plugin manager."""
    from sage_core.plugin import get_plugin_manager, hookimpl

    class ProbePlugin:
        def __init__(self) -> None:
            self.probe = ProbeCollector()

        @hookimpl
        def sage_metrics_collectors(self, register: Callable[[Any], None]) -> None:
            register(self.probe)
            register(BrokenCollector())

    manager = get_plugin_manager()
    plugin = ProbePlugin()
    manager.register(plugin, name="probe-plugin")
    yield plugin
    manager.unregister("probe-plugin")


# --------------------------------------------------------------------------- edges: cancel, start failures, restarts


@pytest.fixture
def cancelled_job() -> Iterator[Any]:
    """A job cancelled with a full backlog, whose service ``names`` started on its fallback.

    counter (unbounded source) -> lookup_slowly (a slow map calling ``names``) -> sink. The primary
    backend ``NoGpu`` raises RuntimeError at creation, so ``OnCpu`` serves; once the map's inbox is full
    the job is cancelled, so the records waiting there are counted as ``cancelled``.
    """
    from monitor_backends import NoGpu, OnCpu

    from sage_core import LocalEnvironment

    env = LocalEnvironment("cancelled", config={"job": {"queue_size": 8, "batch_size": 32}})
    env.register_service("names", NoGpu, fallback=[{"factory": OnCpu}])
    started, pace = threading.Event(), threading.Event()  # pace is never set: its wait paces the map

    def lookup_slowly(n: int) -> str:
        started.set()
        pace.wait(0.005)
        return env.services.sync["names"].lookup(key=str(n))

    env.from_source(counter()).rebalance().map(lookup_slowly).sink(lambda key: None)
    job = env.submit(autostop=False)
    try:
        assert started.wait(30), "the map never got a record"
        full = threading.Event()
        while not full.wait(0.01):
            if sum(job.runtime.queue_depths().values()) >= 8:
                full.set()
        assert job.cancel() == "cancelled"
        yield job
    finally:
        env.close()


@pytest.fixture
def restarted_job() -> Iterator[Any]:
    """A finished job whose service ``where`` (``isolation: process``) had its child killed and restarted once."""
    from monitor_backends import Pid

    from sage_core import LocalEnvironment

    env = LocalEnvironment("restarted")
    env.register_service("where", Pid, isolation="process", restart={"backoff_s": 0})

    def ask_pid(n: int) -> int:
        return env.services.sync["where"].pid()

    env.from_batch(range(3)).map(ask_pid).sink(lambda pid: None)
    try:
        job = env.submit(autostop=True)
        (replica,) = env.services.service("where").tiers[0].replicas
        os.kill(replica.pid, signal.SIGKILL)
        assert replica.wait_ready(60, restarts=1), f"the replica was not restarted: {replica.state}"
        assert env.services.sync["where"].pid() == replica.pid != os.getpid()
        yield job
    finally:
        env.close()


@functools.cache
def counter() -> type:
    """``Counter``: an unbounded source of increasing integers, as fast as its consumer takes them."""
    from sage_core import SourceFunction

    class Counter(SourceFunction):
        def __init__(self) -> None:
            self.n = 0

        def execute(self, data: Any = None) -> int:
            self.n += 1
            return self.n

    return Counter
