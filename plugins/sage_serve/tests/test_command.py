"""``sage serve`` refuses what it cannot serve, saying what to change (click's CliRunner, in-process)."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sage_core.cli import build_cli

ECHO_PIPELINE = Path(__file__).with_name("echo_pipeline.py")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), ["serve", *args])
    return result.exit_code, result.output


@pytest.mark.timeout(60)
def test_a_file_without_an_endpoint_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "batch.py"
    path.write_text(textwrap.dedent("""
        from sage_core import LocalEnvironment
        env = LocalEnvironment("batch")
        env.from_batch([1, 2]).sink(print)
        env.submit()
    """))
    code, output = run(str(path), "--port", "0")
    assert code == 1 and "serves no model" in output and "ChatEndpoint" in output


@pytest.mark.timeout(60)
def test_a_file_that_never_submits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    code, output = run(str(path), "--port", "0")
    assert code == 1 and "never called env.submit()" in output


@pytest.mark.timeout(60)
def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run(str(ECHO_PIPELINE), "--port", str(port))
    assert code == 1 and f"127.0.0.1:{port}" in output and "--port" in output
