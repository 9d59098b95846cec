"""A served job's record watcher: a record that fails, or that a filter drops, ends its request at once.

The job tells its watcher of every record that leaves it without an output (see
:class:`sage_core.runtime.errors.RecordWatcher`); the watcher finds the request id in the record
and ends that request with a :class:`ServingError`. Where the request is answered differs per
transport (this process, or the driver of a Ray job), so subclasses implement :meth:`end`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from sage_core.runtime.records import DeadLetter
from sage_core.serving.records import request_id_of
from sage_core.serving.replies import ServingError


class RequestWatcher(ABC):
    """Ends the request of each failed or dropped record; ``finders``: each endpoint's ``request_id`` function."""

    def __init__(self, finders: Iterable[Callable[[Any], Any] | None]) -> None:
        self.finders = tuple(finders)

    def failed(self, letter: DeadLetter) -> None:
        """The record's request fails naming the operator and the error (HTTP 500)."""
        error = ServingError("failed", f"operator {letter.operator!r} failed on the request: {letter.error}")
        self._end_request(letter.record, error)

    def dropped(self, operator: str, records: list[Any]) -> None:
        """Each record's request ends as ``filtered``: the pipeline has no answer for it (HTTP 422)."""
        error = ServingError("filtered", f"operator {operator!r} filtered out the request: the pipeline has no answer for it")
        for record in records:
            self._end_request(record, error)

    @abstractmethod
    def end(self, request_id: str, error: ServingError) -> None:
        """End request ``request_id`` (if it still waits) with ``error``."""

    def _end_request(self, record: Any, error: ServingError) -> None:
        for request_id in {request_id_of(record, find) for find in self.finders}:
            if request_id is not None:
                self.end(request_id, error)


__all__ = ["RequestWatcher"]
