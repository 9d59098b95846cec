"""What travels between tasks besides records, and what the job keeps of failed records."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any


class EndOfStream:
    """Marker sent once by every upstream task when it has no more records."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_STREAM"


END_OF_STREAM = EndOfStream()


class Wake:
    """Marker a finished asynchronous call sends to wake its task (carries no records)."""

    __slots__ = ()


WAKE = Wake()


@dataclass
class DeadLetter:
    """A record that failed, with the operator and the error (error policy ``dead_letter``)."""

    operator: str
    record: Any
    error: str
    traceback: str = field(repr=False, default="")

    @classmethod
    def from_exception(cls, operator: str, record: Any, exc: BaseException) -> "DeadLetter":
        """Capture ``exc`` raised by ``operator`` on ``record``."""
        return cls(operator, record, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


@dataclass
class OperatorStats:
    """Per operator instance: in = out + filtered + failed + cancelled (+ pending while async calls run).

    ``cancelled`` counts records that reached the operator (its inbox included) but were dropped
    because the job was cancelled or aborted before it processed them.
    """

    records_in: int = 0
    records_out: int = 0
    filtered: int = 0
    failed: int = 0
    cancelled: int = 0
    emitted: int = 0
    """Records passed downstream (differs from ``records_out`` only for flatmap)."""
    busy_s: float = 0.0
    batches: int = 0

    def add(self, other: "OperatorStats") -> None:
        """Accumulate another instance's figures."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        """The figures as a plain dict (``in``/``out`` rather than the attribute names)."""
        return {
            "in": self.records_in,
            "out": self.records_out,
            "filtered": self.filtered,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "emitted": self.emitted,
            "busy_s": round(self.busy_s, 6),
            "batches": self.batches,
        }
