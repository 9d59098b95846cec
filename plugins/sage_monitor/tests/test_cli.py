"""``sage top`` and ``sage monitor`` through click's CliRunner (non-interactive)."""

from __future__ import annotations

import re
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from sage_core.cli import build_cli
from sage_monitor.hub import MonitorHub
from sage_monitor.session import SESSION

PIPELINE = textwrap.dedent(
    """
    from sage_core import LocalEnvironment

    env = LocalEnvironment("from-file")
    stream = env.from_batch(range(3000)).map(lambda n: n * 3, name="triple")
    stream.filter(lambda n: n % 2 == 0, name="even").sink(lambda n: None, name="drop")
    env.submit()
    env.close()
    """
)


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(PIPELINE)
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_top_once_runs_a_pipeline_file_and_prints_its_final_figures(
    no_sage_threads: None, runner: CliRunner, pipeline_file: Path
) -> None:
    result = runner.invoke(build_cli(), ["top", "--once", str(pipeline_file)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "job from-file  [finished]" in result.output
    row = next(line for line in result.output.splitlines() if "even" in line)
    assert re.search(r"\b3,000\b.*\b1,500\b", row), row
    assert "GPU" in result.output
    assert SESSION.hub is None, "the command gives the session back"


def test_top_once_reads_a_running_dashboard_by_url(
    runner: CliRunner, hub: MonitorHub, server: Any, start_job: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    hub.watch(start_job(rate=500.0))
    wait_for(lambda: hub.snapshot()["jobs"][0]["operators"]["numbers"]["out"] > 0)
    result = runner.invoke(build_cli(), ["top", "--once", "--url", server.url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "job monitored  [running]" in result.output
    assert "double" in result.output and "quarter" in result.output


def test_top_names_the_address_it_cannot_reach(runner: CliRunner) -> None:
    result = runner.invoke(build_cli(), ["top", "--once", "--url", "http://127.0.0.1:9/"])
    assert result.exit_code != 0
    assert "http://127.0.0.1:9/api/metrics" in result.output and "sage monitor" in result.output


def test_top_refuses_a_file_and_a_url_together(runner: CliRunner, pipeline_file: Path) -> None:
    result = runner.invoke(build_cli(), ["top", str(pipeline_file), "--url", "http://127.0.0.1:1/"])
    assert result.exit_code == 2 and "not both" in result.output


def test_top_live_view_redraws_until_the_file_ends(
    no_sage_threads: None, runner: CliRunner, pipeline_file: Path
) -> None:
    result = runner.invoke(build_cli(), ["top", "--interval", "0.1", str(pipeline_file)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[finished]" in result.output


def test_monitor_runs_a_file_serves_it_and_stops_after_linger(
    no_sage_threads: None, runner: CliRunner, pipeline_file: Path
) -> None:
    result = runner.invoke(build_cli(), ["monitor", "--port", "0", "--linger", "0", str(pipeline_file)])
    assert result.exit_code == 0, result.output
    assert re.search(r"SAGE monitor at http://127\.0\.0\.1:\d+/", result.output)
    assert "pipeline ended; final figures stay at" in result.output
    assert not [t for t in threading.enumerate() if t.name.startswith("sage-monitor")]


@pytest.mark.slow
def test_monitor_without_a_file_runs_the_demo_job(no_sage_threads: None, runner: CliRunner) -> None:
    result = runner.invoke(build_cli(), ["monitor", "--port", "0", "--duration", "1", "--linger", "0"])
    assert result.exit_code == 0, result.output
    assert "job 'sage-monitor-demo'" in result.output
