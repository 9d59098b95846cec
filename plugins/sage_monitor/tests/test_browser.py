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
def demo_job() -> Iterator[Any]:
    """The demo retrieval job (services, replicas, fallback), running with ``monitor=True``."""
    from sage_monitor.demo import build_demo

    env = build_demo(rate=300.0)
    job = env.submit(autostop=False, monitor=True)
    yield job
    job.stop()
    env.close()


def test_dashboard_shows_live_figures_of_a_running_job(
    no_sage_threads: None, browser: Any, demo_job: Any, tmp_path: Path
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
    cell = page.locator('#operators tr[data-op="embed_2"] td.in')
    first = int(cell.inner_text().replace(",", ""))
    polls = int(page.evaluate("document.body.dataset.polls"))
    page.wait_for_function(f"() => Number(document.body.dataset.polls) >= {polls + 3}", timeout=15_000)
    second = int(cell.inner_text().replace(",", ""))
    assert second > first, f"records into embed_2 did not grow between two reads ({first} then {second})"

    assert page.locator("#job-status").inner_text() == "running"
    assert page.locator(".graph g.chain").count() == len(demo_job.graph.chains)
    assert page.locator('.graph text.rate[data-op="search_3"]').text_content().endswith("rec/s")
    docs = page.locator('.panel[data-service="docs"]')
    assert docs.locator(".served").count() == 2, "primary and fallback backends are listed"
    assert docs.locator('.batch[data-method="search"]').inner_text().startswith("search: mean")
    assert docs.locator("table.replicas tbody tr").count() == 3, "two replicas and the fallback's one"
    assert page.locator('.panel[data-service="embedder"] dd.calls').inner_text() != "0 (-/s)"
    assert page.locator("#gpus .no-gpu, #gpus .panel[data-gpu]").count() >= 1
    assert page.locator("#throughput-chart").bounding_box()["height"] > 100

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert not problems, f"the page logged errors: {problems}"
    outside = [r for r in requests if not r.startswith(url)]
    assert not outside, f"the dashboard fetched from elsewhere: {outside}"
    page.close()
