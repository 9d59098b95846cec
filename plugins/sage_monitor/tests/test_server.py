"""The dashboard server: what it serves, that it is read-only and local, and that it ends with its jobs."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

from sage_core import ConfigError, LocalEnvironment
from sage_core.plugin import get_plugin_manager
from sage_monitor.hub import MonitorHub
from sage_monitor.server import MonitorServer
from sage_monitor.session import SESSION


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_binds_loopback_and_port_0_picks_a_free_port(server: MonitorServer) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/"


def test_dashboard_and_its_scripts_come_from_the_package_with_no_outside_address(server: MonitorServer) -> None:
    status, headers, page = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.decode())
    assert {"/static/dashboard.js", "/static/charts.js", "/static/dashboard.css"} <= set(assets)
    for asset in assets:
        status, _, body = get(server.url.rstrip("/") + asset)
        assert status == 200 and body
        outside = set(re.findall(r"https?://[^\s\"'`)]+", body.decode())) - {"http://www.w3.org/2000/svg"}
        assert not outside, f"{asset} refers to {outside}: the dashboard must work offline"


def test_the_server_is_read_only(server: MonitorServer) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = get(server.url + "api/metrics", method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_unknown_paths_and_escapes_from_the_static_folder_are_404(server: MonitorServer) -> None:
    for path in ("nothing", "static/../server.py", "static/%2e%2e/server.py", "static/"):
        assert get(server.url + path)[0] == 404, path


def test_api_metrics_lists_watched_jobs_and_the_gpu_collector(
    hub: MonitorHub, server: MonitorServer, start_job: Callable[..., Any]
) -> None:
    job = start_job(rate=500.0)
    hub.watch(job)
    status, headers, body = get(server.url + "api/metrics")
    snapshot = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    (watched,) = snapshot["jobs"]
    assert watched["job"] == "monitored" and watched["status"] == "running"
    assert [c["id"] for c in watched["graph"]["chains"]] == list(job.graph.chains)
    assert set(watched["operators"]) == set(job.metrics()["operators"])
    assert "available" in snapshot["collectors"]["gpu"]


def test_stop_ends_every_thread_and_frees_the_port(no_sage_threads: None, hub: MonitorHub) -> None:
    server = MonitorServer(hub).start()
    port = server.port
    assert get(server.url + "api/metrics")[0] == 200
    server.stop()
    assert not server.alive
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "nothing listens after stop()"
    server.stop()  # idempotent


def test_a_port_in_use_is_reported_with_the_fix(hub: MonitorHub, server: MonitorServer) -> None:
    with pytest.raises(OSError, match="pick another port"):
        MonitorServer(hub, "127.0.0.1", server.port)


def test_the_plugin_registers_the_gpu_collector() -> None:
    manager = get_plugin_manager()
    assert "gpu" in {collector.name for collector in manager.collectors()}
    (info,) = [info for info in manager.plugins() if info.name == "monitor"]
    assert info.error is None
    hooks = {"sage_config_sections", "sage_job_started", "sage_job_finished", "sage_metrics_collectors"}
    assert hooks | {"sage_register_commands"} <= set(info.hooks)


# --------------------------------------------------------------------------- the monitor: config section


def test_the_monitor_section_is_validated_by_the_plugins_model() -> None:
    typo = r"monitor\.prot: unknown key \(did you mean 'port'\?\); valid keys: enabled, host, port"
    with pytest.raises(ConfigError, match=typo):
        LocalEnvironment("typo", config={"monitor": {"enabled": True, "prot": 0}})
    with pytest.raises(ConfigError, match=r"monitor\.port: Input should be less than or equal to 65535"):
        LocalEnvironment("range", config={"monitor": {"port": 70000}})


def test_a_job_whose_config_enables_the_monitor_is_served_until_it_stops(
    no_sage_threads: None,
    start_job: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sage.monitor")
    job = start_job(rate=500.0, monitor=True)
    assert job.config.section("monitor").enabled
    server = SESSION.server
    assert server is not None and server.alive
    announced = capsys.readouterr().err + caplog.text
    assert server.url in announced, "the dashboard's address is logged"
    snapshot = json.loads(get(server.url + "api/metrics")[2])
    assert [j["job"] for j in snapshot["jobs"]] == ["monitored"]
    job.stop()
    assert SESSION.server is None and not server.alive, "the server ends with the last monitored job"


def test_jobs_without_monitor_start_no_server(start_job: Callable[..., Any]) -> None:
    start_job(rate=500.0)
    assert SESSION.server is None


def test_a_finished_jobs_final_figures_stay_while_another_monitored_job_runs(
    no_sage_threads: None, start_job: Callable[..., Any], monitored: dict[str, Any]
) -> None:
    env = LocalEnvironment("short", config=monitored)
    env.from_batch(range(500)).map(lambda n: n).sink(lambda n: None)
    long_job = start_job(rate=200.0, monitor=True)
    server = SESSION.server
    env.submit(autostop=True)
    env.close()
    assert SESSION.server is server and server.alive, "the long job still runs: the dashboard stays"
    jobs = {j["job"]: j for j in json.loads(get(server.url + "api/metrics")[2])["jobs"]}
    assert jobs["short"]["status"] == "finished"
    assert jobs["short"]["operators"]["source"]["out"] == 500
    assert jobs["monitored"]["status"] == "running"
    long_job.stop()
    assert not server.alive


def test_polling_a_job_that_ended_unwaited_leaves_its_finish_to_the_owner(
    no_sage_threads: None, wait_for: Callable[..., Any], monitored: dict[str, Any]
) -> None:
    release = threading.Event()

    def held(n: int) -> int:
        release.wait(30)
        return n

    env = LocalEnvironment("unwaited", config=monitored)
    env.from_batch(range(60)).map(held, name="held").sink(lambda n: None, name="drop")
    job = env.submit(autostop=False)
    server = SESSION.server
    assert json.loads(get(server.url + "api/metrics")[2])["jobs"][0]["status"] == "running"
    release.set()
    assert job.runtime.join(20), "the tasks end; nobody has asked the job yet"

    def ended() -> dict[str, Any] | None:
        (polled,) = json.loads(get(server.url + "api/metrics")[2])["jobs"]
        return polled if polled["status"] != "running" else None

    polled = wait_for(ended)
    assert polled["status"] == "finishing", "the poller must not run the job-finished hooks itself"
    assert server.alive
    assert job.wait(10) == "finished"
    env.close()
    assert not server.alive and SESSION.server is None


def test_collectors_from_other_plugins_are_polled_and_a_broken_one_shows_its_error(
    probe_plugin: Any, hub: MonitorHub, server: MonitorServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = json.loads(get(server.url + "api/metrics")[2])["collectors"]
    second = json.loads(get(server.url + "api/metrics")[2])["collectors"]
    assert first["probe"] == {"reads": 1} and second["probe"] == {"reads": 2}, "read on every poll, not cached"
    assert second["broken"] == {"error": "RuntimeError: sensor unplugged"}
    assert "available" in second["gpu"], "the others still report"
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1, "warned once, not on every poll"
