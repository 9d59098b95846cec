"""Ctrl-C and SIGTERM against a real ``sage run`` process with a full backlog behind a slow map."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

PIPELINE = textwrap.dedent(
    """
    import sys
    import threading
    from sage_core import LocalEnvironment, SourceFunction

    taken = [0]
    backlogged = threading.Event()

    class Counter(SourceFunction):
        def __init__(self):
            self.n = 0
        def execute(self, data=None):
            self.n += 1
            if self.n - taken[0] >= 60 * 256:  # 15k records behind the slow map
                backlogged.set()
            return self.n

    pace = threading.Event()  # never set: wait() paces the map (the workload)
    def slow(x):
        taken[0] += 1
        pace.wait(0.01)
        return x

    env = LocalEnvironment("backlog", config={"job": {"queue_size": 64, "batch_size": 256}})
    env.from_source(Counter).rebalance().map(slow).sink(lambda x: None)
    job = env.submit(autostop=False)
    assert backlogged.wait(60), "no backlog formed"
    print("backlogged", flush=True)
    job.wait()
    """
)


def start(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "backlog.py"
    script.write_text(PIPELINE)
    sage = Path(sys.executable).with_name("sage")
    proc = subprocess.Popen(
        [str(sage), "run", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SAGE_LOAD_PLUGINS": ""},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "backlogged"
    return proc


def test_one_ctrl_c_stops_then_cancels_the_backlog_and_exits_130_without_traceback(tmp_path: Path) -> None:
    proc = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("sage:")]
    assert len(lines) == 1 and "stopping job 'backlog'" in lines[0] and "Ctrl-C again cancels now" in lines[0]


def test_a_second_ctrl_c_cancels_at_once(tmp_path: Path) -> None:
    proc = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    assert "stopping job" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "cancelling job 'backlog' now" in err and "Traceback" not in err


def test_sigterm_does_what_one_ctrl_c_does_and_exits_143(tmp_path: Path) -> None:
    proc = start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopping job 'backlog'" in err and "Traceback" not in err
