"""Load a pipeline file without running it: ``submit()`` raises :class:`GraphCaptured` carrying the environment.

``sage graph`` and commands that plugins add (``sage serve``) read a pipeline file this way.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

_CAPTURING: ContextVar[bool] = ContextVar("sage_capturing", default=False)


class GraphCaptured(Exception):
    """Raised by ``submit()`` inside :func:`capture_submit`, carrying the environment whose pipeline was built."""

    def __init__(self, env: Any) -> None:
        super().__init__("pipeline captured")
        self.env = env


@contextmanager
def capture_submit() -> Iterator[None]:
    """Within the block, ``env.submit()`` raises :class:`GraphCaptured` instead of running the job."""
    token = _CAPTURING.set(True)
    try:
        yield
    finally:
        _CAPTURING.reset(token)


def capturing() -> bool:
    """Whether ``submit()`` is to hand its environment over instead of running."""
    return _CAPTURING.get()
