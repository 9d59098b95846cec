"""Exceptions that cross process boundaries intact.

Ray pickles what an actor returns. Exceptions whose constructor takes other arguments than their
message (such as :class:`~sage_core.runtime.errors.JobFailed`) do not survive a plain pickle round
trip, so they travel as a :class:`TaskFailure` and are rebuilt in the driver; any other exception
that cannot be pickled is replaced by a ``RuntimeError`` carrying its type, message and traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import cloudpickle

from sage_core.compiler.physical import PhysicalGraph
from sage_core.errors import JobFailed
from sage_core.services import remote


def portable_exception(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives Ray's pickling, else a ``RuntimeError`` describing it."""
    return remote.portable_exception(exc, cloudpickle.dumps, cloudpickle.loads)


@dataclass
class TaskFailure:
    """Why a task actor stopped: a record failed under the ``fail`` policy, or anything else."""

    task: str
    error: BaseException
    operator: str | None = None
    record: Any = None

    @classmethod
    def capture(cls, task: str, exc: BaseException) -> "TaskFailure":
        """Describe ``exc`` raised in ``task`` so that it pickles."""
        if isinstance(exc, JobFailed):
            record = exc.record
            try:
                cloudpickle.dumps(record)
            except Exception:
                record = repr(record)
            return cls(task, portable_exception(exc.cause), exc.operator, record)
        return cls(task, portable_exception(exc))

    def restore(self, graph: PhysicalGraph) -> BaseException:
        """The exception as the local runtime would have raised it."""
        if self.operator is not None:
            error = JobFailed(self.operator, self.record, self.error, graph.operator(self.operator).label)
            error.__cause__ = self.error
            return error
        return self.error


__all__ = ["TaskFailure", "portable_exception"]
