"""What the runtime knows of a user's function: its context, and the lifecycle it calls.

The API's function classes (:class:`sage_core.api.functions.BaseFunction` and its kinds) build on
:class:`OperatorFunction`; the runtime needs nothing more of them, so it never imports the API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RuntimeContext:
    """What a running function instance knows about its place in the job."""

    job_name: str
    operator: str
    instance: int
    parallelism: int
    services: Any = None
    """The job's service registry: ``services.sync[name]`` and ``services.async_[name]`` give proxies."""
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("sage"))


class OperatorFunction:
    """A function object the runtime instantiates per operator instance, gives a ``ctx``, opens and closes."""

    ctx: RuntimeContext | None = None

    def execute(self, data: Any) -> Any:
        """Process one record."""
        msg = f"{type(self).__name__} must implement execute()"
        raise TypeError(msg)

    def open(self) -> None:
        """Called once on the task's thread before the first record."""

    def close(self) -> None:
        """Called once when the task ends."""
