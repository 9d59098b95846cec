"""Job failures and the error policies that decide what a failed record does to the job."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from sage_core.compiler.logical import OperatorSpec
from sage_core.runtime.records import DeadLetter

ERROR_POLICIES = ("fail", "skip", "dead_letter")


class JobFailed(RuntimeError):
    """A record failed under the ``fail`` policy; carries the operator, the record and the cause.

    ``operator`` is the operator id; the message names the user's function (``map parse (parse)``).
    """

    def __init__(self, operator: str, record: Any, cause: BaseException, label: str = "") -> None:
        self.operator = operator
        self.record = record
        self.cause = cause
        shown = repr(record)
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        super().__init__(
            f"{label or repr(operator)} failed on record {shown}: {type(cause).__name__}: {cause}. "
            f"Fix the function, or set the job's error_policy to 'skip' or 'dead_letter' to keep going."
        )


class OpenFailed(RuntimeError):
    """A function's ``open()`` raised, so the job failed; the message names the operator, the cause is chained."""


class CloseFailed(ExceptionGroup):
    """One or more functions' ``close()`` raised; every other function was still closed.

    Each member error names its operator (``map parse (parse): close() raised ...``) and chains the cause.
    """

    def __new__(cls, errors: list[Exception]) -> "CloseFailed":
        noun = "function" if len(errors) == 1 else "functions"
        return super().__new__(cls, f"close() raised in {len(errors)} {noun}", errors)

    def derive(self, excs: Any) -> "CloseFailed":
        return CloseFailed(list(excs))

    def __reduce__(self) -> tuple:
        return (type(self), (list(self.exceptions),))


def job_error(first: BaseException | None, close_errors: list[Exception]) -> BaseException | None:
    """What a job raises: its first error (close errors added as notes), else :class:`CloseFailed`, else None."""
    if first is None:
        return CloseFailed(close_errors) if close_errors else None
    for error in close_errors:
        if str(error) not in getattr(first, "__notes__", ()):
            first.add_note(str(error))
    return first


def lifecycle_error(cls: type[Exception], label: str, method: str, cause: BaseException) -> Exception:
    """``cls`` naming the operator ``label`` whose ``method`` (open or close) raised ``cause``, chained to it."""
    error = cls(f"{label}: {method}() raised {type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error


class ErrorPolicy:
    """Applies the job's policy to a failed record: raise, count and log, or dead-letter it."""

    def __init__(self, policy: str = "fail", dead_letter_sink: Callable[[DeadLetter], None] | None = None) -> None:
        if policy not in ERROR_POLICIES:
            msg = f"unknown error_policy {policy!r}; valid choices: {', '.join(ERROR_POLICIES)}"
            raise ValueError(msg)
        self.policy = policy
        self.dead_letters: list[DeadLetter] = []
        self._sink = dead_letter_sink
        self._lock = threading.Lock()
        self._log = logging.getLogger("sage.errors")
        self._logged = 0

    def handle(self, spec: OperatorSpec, record: Any, exc: BaseException) -> None:
        """Raise :class:`JobFailed` (``fail``) or record the failure and return."""
        if self.policy == "fail":
            raise JobFailed(spec.id, record, exc, spec.label) from exc
        if self.policy == "dead_letter":
            self.add_dead_letters([DeadLetter.from_exception(spec.id, record, exc)])
        elif self._logged < 10:
            self._logged += 1
            self._log.warning("skipped a record in %s: %s: %s", spec.label, type(exc).__name__, exc)

    def add_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Keep ``letters`` and hand each to the user's dead-letter sink (also for remote tasks' letters)."""
        with self._lock:
            self.dead_letters.extend(letters)
            if self._sink is not None:
                for letter in letters:
                    self._sink(letter)
