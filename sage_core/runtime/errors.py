"""Job failures and the error policies that decide what a failed record does to the job."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Protocol

from sage_core.compiler.logical import OperatorSpec
from sage_core.errors import CloseFailed, JobFailed
from sage_core.runtime.records import DeadLetter

ERROR_POLICIES = ("fail", "skip", "dead_letter")


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


class RecordWatcher(Protocol):
    """Told of each record that leaves the job without an output, where it left (serving answers its request).

    Called on the task's thread (on Ray, in the task's actor: a watcher must pickle); it must not raise.
    """

    def failed(self, letter: DeadLetter) -> None:
        """A function raised on ``letter.record`` (policies ``skip`` and ``dead_letter``)."""

    def dropped(self, operator: str, records: list[Any]) -> None:
        """A filter, or a flatmap giving nothing, dropped ``records`` at ``operator``."""


class ErrorPolicy:
    """Applies the job's policy to a failed record: raise, count and log, or dead-letter it."""

    def __init__(
        self,
        policy: str = "fail",
        dead_letter_sink: Callable[[DeadLetter], None] | None = None,
        keep: int = 10_000,
        watcher: RecordWatcher | None = None,
    ) -> None:
        """``keep``: how many dead letters stay in memory (the newest), so a long-running job's memory stays bounded.

        ``watcher``: told of every record that fails or is dropped (see :class:`RecordWatcher`).
        """
        if policy not in ERROR_POLICIES:
            msg = f"unknown error_policy {policy!r}; valid choices: {', '.join(ERROR_POLICIES)}"
            raise ValueError(msg)
        self.policy = policy
        self.watcher = watcher
        self.dead_letters: deque[DeadLetter] = deque(maxlen=keep)
        self.dead_letter_count = 0
        """Every dead letter so far, also those no longer kept."""
        self._sink = dead_letter_sink
        self._lock = threading.Lock()
        self._log = logging.getLogger("sage.errors")
        self._logged = 0

    def handle(self, spec: OperatorSpec, record: Any, exc: BaseException) -> None:
        """Raise :class:`JobFailed` (``fail``) or record the failure and return."""
        if self.policy == "fail":
            raise JobFailed(spec.id, record, exc, spec.label) from exc
        if self.policy == "dead_letter" or self.watcher is not None:
            letter = DeadLetter.from_exception(spec.id, record, exc)
            if self.watcher is not None:
                self.watcher.failed(letter)
            if self.policy == "dead_letter":
                self.add_dead_letters([letter])
                return
        if self._logged < 10:
            self._logged += 1
            self._log.warning("skipped a record in %s: %s: %s", spec.label, type(exc).__name__, exc)

    def dropped(self, spec: OperatorSpec, records: list[Any]) -> None:
        """Tell the watcher that ``spec`` dropped ``records`` (a filter; a flatmap that gave nothing)."""
        if self.watcher is not None and records:
            self.watcher.dropped(spec.id, records)

    def add_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Keep ``letters`` and hand each to the user's dead-letter sink (also for remote tasks' letters)."""
        with self._lock:
            self.dead_letters.extend(letters)
            self.dead_letter_count += len(letters)
            if self._sink is not None:
                for letter in letters:
                    self._sink(letter)
