"""``sage serve`` as a child process, for tests and benchmarks: started on a free port, waited for.

The server prints ``listening on http://HOST:PORT`` once bound and logs ``ready`` once its job runs;
:class:`ServerProcess` waits for those lines (a reader thread keeps stderr drained), never for a
fixed time.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

START_TIMEOUT_S = 600.0


class ServerProcess:
    """``sage serve PATH --port 0 ARGS`` as a child process; ``url`` once it listens (``env``: extra variables)."""

    def __init__(self, path: str | Path, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "sage_core", "serve", str(path), "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._new: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, name="serve-process-stderr", daemon=True).start()
        match = re.search(r"listening on (http://\S+)", self.wait_for_line("listening on"))
        if match is None:
            raise RuntimeError(f"no address in the server's first line:\n{self.output}")
        self.url = match.group(1)

    @property
    def output(self) -> str:
        """Everything the server wrote to stderr so far."""
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT_S) -> str:
        """The first stderr line containing ``text`` (waits for it; fails if the process ends first)."""
        for line in self.lines:
            if text in line:
                return line
        while True:
            try:
                line = self._new.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"the server wrote no line with {text!r} in {timeout} s:\n{self.output}") from None
            if line is None:
                msg = f"the server exited ({self.process.poll()}) before writing {text!r}:\n{self.output}"
                raise RuntimeError(msg)
            if text in line:
                return line

    def wait_ready(self) -> ServerProcess:
        """Wait for the ``ready`` log line (services started, job running)."""
        self.wait_for_line("sage serve: ready")
        return self

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """End the process if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)


def user(text: str) -> list[dict[str, str]]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


__all__ = ["ServerProcess", "user"]
