"""Fixtures for the monitor's tests: running jobs, a hub, a served dashboard, thread checks.

``sage_core`` and the HTTP modules are imported inside fixtures so that ``test_gpu.py`` needs only
``pynvml`` (it runs on the GPU machine with ``pytest -m gpu``).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture(autouse=True)
def any_free_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Monitored jobs take a free port (the machine is shared); no session server outlives a test."""
    monkeypatch.setenv("SAGE_MONITOR_PORT", "0")
    yield
    from sage_monitor.session import SESSION

    SESSION.close()


@pytest.fixture
def no_sage_threads() -> Iterator[None]:
    """Fail if the test leaves a new thread whose name starts with ``sage-`` (as the core tests do).

    Threads already running before the test (another plugin's session-scoped services) do not count.
    """
    before = set(_sage_threads())
    yield
    deadline = time.monotonic() + 2.0
    leftover = sorted(set(_sage_threads()) - before)
    while leftover and time.monotonic() < deadline:  # a request thread may be sending its last bytes
        time.sleep(0.02)
        leftover = sorted(set(_sage_threads()) - before)
    assert not leftover, f"threads left behind: {leftover}"


def _sage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sage-") and t.is_alive()]


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
        env = LocalEnvironment(name, config=config)
        envs.append(env)
        stream = env.from_source(paced_counter()(rate), name="numbers")
        stream = stream.map(map_fn or (lambda n: n * 2), parallelism=parallelism, name="double")
        stream.filter(lambda n: n % 4 == 0, parallelism=parallelism, name="quarter").sink(lambda n: None, name="drop")
        return env.submit(autostop=False, monitor=monitor)

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
    from sage_core import get_plugin_manager, hookimpl

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
