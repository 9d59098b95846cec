"""The dashboard in a real headless Chromium (Debian's ``chromium``) driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium from the system package (never ``playwright install``)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason='pip install "sage-monitor[test]" (playwright)')
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def demo_job(monitored: dict[str, Any]) -> Iterator[Any]:
    """The demo retrieval job (services, replicas, fallback), its config serving the dashboard."""
    from sage_monitor.demo import build_demo

    env = build_demo(rate=300.0, config=monitored)
    job = env.submit(autostop=False)
    yield job
    job.stop()
    env.close()


def test_dashboard_shows_live_figures_of_a_running_job(
    no_sage_threads: None, probe_plugin: Any, browser: Any, demo_job: Any, tmp_path: Path
) -> None:
    from sage_monitor.session import SESSION

    url = SESSION.server.url
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url + "?interval=400")

    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 2", timeout=15_000)
    cell = page.locator('#operators tr[data-op="embed"] td.in')
    first = int(cell.inner_text().replace(",", ""))
    polls = int(page.evaluate("document.body.dataset.polls"))
    page.wait_for_function(f"() => Number(document.body.dataset.polls) >= {polls + 3}", timeout=15_000)
    second = int(cell.inner_text().replace(",", ""))
    assert second > first, f"records into embed did not grow between two reads ({first} then {second})"

    assert page.locator("#job-status").inner_text() == "running"
    assert page.locator(".graph g.chain").count() == len(demo_job.graph.chains)
    assert page.locator('.graph text.rate[data-op="search"]').text_content().endswith("rec/s")
    docs = page.locator('.panel[data-service="docs"]')
    assert docs.locator(".served").count() == 2, "primary and fallback backends are listed"
    assert docs.locator('.batch[data-method="search"]').inner_text().startswith("search: mean")
    assert docs.locator("table.replicas tbody tr").count() == 3, "two replicas and the fallback's one"
    assert page.locator('.panel[data-service="embedder"] dd.calls').inner_text() != "0 (-/s)"
    assert page.locator("#gpus .no-gpu, #gpus .panel[data-gpu]").count() >= 1
    assert page.locator("#throughput-chart").bounding_box()["height"] > 100
    assert '"reads"' in page.locator('#others .panel[data-collector="probe"] pre').inner_text()

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert not problems, f"the page logged errors: {problems}"
    outside = [r for r in requests if not r.startswith(url)]
    assert not outside, f"the dashboard fetched from elsewhere: {outside}"
    page.close()


class RecordedGpu:
    """Replays an H100 reading (as ``GpuCollector`` reports it) with a utilisation that moves."""

    name = "gpu"

    def __init__(self) -> None:
        self.reads = 0

    def collect(self) -> dict[str, Any]:
        self.reads += 1
        return {
            "available": True,
            "driver": "580.65.06",
            "gpus": [
                {
                    "index": 0,
                    "name": "NVIDIA H100 80GB HBM3",
                    "uuid": "GPU-0",
                    "utilization_gpu_pct": 10 * (self.reads % 10),
                    "utilization_memory_pct": 5,
                    "memory_used_bytes": 12 * 2**30,
                    "memory_total_bytes": 80 * 2**30,
                    "memory_reserved_bytes": 2**29,
                    "temperature_c": 40,
                    "power_w": 120.0,
                    "power_limit_w": 700.0,
                    "sm_clock_mhz": 1980,
                    "sm_clock_max_mhz": 1980,
                    "processes": [{"pid": 4242, "name": "python", "memory_used_bytes": 11 * 2**30}],
                }
            ],
        }


def test_dashboard_draws_gpu_panels_that_follow_the_collector(no_sage_threads: None, browser: Any) -> None:
    from sage_monitor.hub import MonitorHub
    from sage_monitor.server import MonitorServer

    gpu = RecordedGpu()
    with MonitorServer(MonitorHub(lambda: [gpu], max_age_s=0.0)) as server:
        page = browser.new_page()
        page.goto(server.url + "?interval=300")
        panel = page.locator('#gpus .panel[data-gpu="0"]')
        panel.wait_for(timeout=15_000)
        first = panel.locator(".util").inner_text()
        page.wait_for_function("() => Number(document.body.dataset.polls) >= 3", timeout=15_000)
        assert panel.locator(".util").inner_text() != first, "the utilisation figure follows the readings"
        assert panel.locator(".memory").inner_text() == "12.00 GiB / 80.00 GiB"
        assert "python [4242] 11.00 GiB" in panel.locator(".processes").inner_text()
        assert panel.locator("canvas").bounding_box()["height"] > 100
        page.close()


BADGES = """() => Object.fromEntries(["waiting", "running", "finished", "stopped", "cancelled", "failed"].map((status) => {
  const badge = document.createElement("span");
  badge.className = `badge ${status}`;
  document.body.append(badge);
  const colour = getComputedStyle(badge).backgroundColor;
  badge.remove();
  return [status, colour];
}))"""


@pytest.mark.timeout(120)
def test_dashboard_shows_cancelled_records_start_failures_and_the_cancelled_badge(
    no_sage_threads: None, browser: Any, cancelled_job: Any
) -> None:
    from sage_monitor.hub import MonitorHub
    from sage_monitor.server import MonitorServer

    hub = MonitorHub(lambda: [], max_age_s=0.0)
    hub.watch(cancelled_job)
    dropped = cancelled_job.summary()["operators"]["lookup_slowly"]["cancelled"]
    with MonitorServer(hub) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(server.url + "?interval=300")
        page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 1", timeout=15_000)

        status = page.locator("#job-status")
        assert status.inner_text() == "cancelled" and status.get_attribute("class") == "badge cancelled"
        badges = page.evaluate(BADGES)
        assert len(set(badges.values())) == len(badges), f"every status has a badge colour of its own: {badges}"
        assert page.locator("#operators thead th").nth(7).inner_text() == "cancelled"
        cell = page.locator('#operators tr[data-op="lookup_slowly"] td.cancelled')
        assert cell.inner_text() == f"{dropped:,}" and "warn" in cell.get_attribute("class")
        assert "warn" not in page.locator('#operators tr[data-op="source"] td.cancelled').get_attribute("class")

        names = page.locator('.panel[data-service="names"]')
        failure = names.locator('li.start-failure[data-backend="NoGpu"]')
        assert failure.inner_text() == "NoGpu (names/NoGpu/s0r0): RuntimeError: CUDA unavailable: no NVIDIA driver found"
        assert names.locator("dd.start-failures").inner_text() == "1"
        assert names.locator("dd.restarts").count() == 0, "no restart, no line"
        assert not problems, f"the page raised: {problems}"
        page.close()


@pytest.mark.timeout(120)
def test_dashboard_shows_a_restarted_replica(no_sage_threads: None, browser: Any, restarted_job: Any) -> None:
    from sage_monitor.hub import MonitorHub
    from sage_monitor.server import MonitorServer

    hub = MonitorHub(lambda: [], max_age_s=0.0)
    hub.watch(restarted_job)
    with MonitorServer(hub) as server:
        page = browser.new_page()
        page.goto(server.url + "?interval=300")
        where = page.locator('.panel[data-service="where"]')
        where.wait_for(timeout=15_000)
        assert where.locator("dd.restarts").inner_text() == "1"
        assert where.locator("table.replicas tbody td.warn").inner_text() == "ready, restarted 1×"
        assert where.locator("li.start-failure").count() == 0
        assert page.locator("#job-status").inner_text() == "finished"
        page.close()
