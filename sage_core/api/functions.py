"""Function classes: what users subclass to put their code into a pipeline.

Each operator takes either a subclass of the matching function class or a plain callable. One
instance is created per parallel instance of the operator, so state kept on ``self`` is private to
that instance (and, after ``keyby``, every record of a key reaches the same instance).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from sage_core.runtime.context import OperatorFunction, RuntimeContext


class _NoServices(Mapping[str, Any]):
    """Stands in for the service table before the job starts, with an error that says why."""

    def __getitem__(self, name: str) -> Any:
        msg = f"service {name!r} called outside a running job: call services from execute(), after env.submit()"
        raise RuntimeError(msg)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


class BaseFunction(OperatorFunction):
    """Base of every function class; subclasses implement ``execute``.

    Inside ``execute``: ``self.call_service["name"].method(**kw)`` blocks for the result,
    ``self.call_service_async["name"].method(**kw)`` returns a ``concurrent.futures.Future``;
    ``self.ctx`` is the :class:`RuntimeContext`, ``self.logger`` a logger named for the operator.
    Override ``open()``/``close()`` to acquire and release per-instance resources.
    """

    @property
    def call_service(self) -> Mapping[str, Any]:
        """Blocking service proxies by name."""
        return self.ctx.services.sync if self.ctx and self.ctx.services else _NoServices()

    @property
    def call_service_async(self) -> Mapping[str, Any]:
        """Service proxies by name whose calls return ``concurrent.futures.Future``."""
        return self.ctx.services.async_ if self.ctx and self.ctx.services else _NoServices()

    @property
    def logger(self) -> logging.Logger:
        """A logger named after the job and operator."""
        if self.ctx is None:
            return logging.getLogger("sage")
        return logging.getLogger(f"sage.{self.ctx.job_name}.{self.ctx.operator}")


class MapFunction(BaseFunction):
    """One record in, one record out (or a ``Future`` of it, for asynchronous service calls)."""


class FilterFunction(BaseFunction):
    """Returns true to keep the record."""


class FlatMapFunction(BaseFunction):
    """Returns an iterable of zero or more records."""

    def execute(self, data: Any) -> Iterable[Any]:
        """Records produced from ``data``."""
        msg = f"{type(self).__name__} must implement execute()"
        raise TypeError(msg)


class KeyByFunction(BaseFunction):
    """Returns the key of a record; equal keys reach the same downstream instance."""


class SinkFunction(BaseFunction):
    """Consumes records; its return value is ignored."""


class SourceFunction(BaseFunction):
    """An unbounded source: ``execute()`` returns the next record, or ``None`` when none is ready.

    It runs until the job is stopped (``job.stop()`` or Ctrl-C).
    """

    def execute(self, data: Any = None) -> Any:
        """The next record, or ``None`` for "nothing yet"."""
        msg = f"{type(self).__name__} must implement execute()"
        raise TypeError(msg)


class BatchFunction(BaseFunction):
    """A bounded source: ``execute()`` returns the next record, ``None`` when exhausted."""

    def execute(self, data: Any = None) -> Any:
        """The next record, or ``None`` at the end."""
        msg = f"{type(self).__name__} must implement execute()"
        raise TypeError(msg)


class CoMapFunction(BaseFunction):
    """For connected streams: ``map0`` handles the first stream's records, ``map1`` the second's."""

    def map0(self, data: Any) -> Any:
        """Map a record of the first stream."""
        return data

    def map1(self, data: Any) -> Any:
        """Map a record of the second stream."""
        return data


class JoinFunction(BaseFunction):
    """For a keyed join: called once per matching pair with the key and both records.

    Records are held per key on both sides (a symmetric hash join), so each new record meets every
    earlier record of its key from the other stream. Returns the joined record (``None`` drops it).
    """

    def execute(self, key: Any, left: Any, right: Any) -> Any:  # type: ignore[override]
        """The joined record."""
        return (left, right)


__all__ = [
    "BaseFunction",
    "BatchFunction",
    "CoMapFunction",
    "FilterFunction",
    "FlatMapFunction",
    "JoinFunction",
    "KeyByFunction",
    "MapFunction",
    "RuntimeContext",
    "SinkFunction",
    "SourceFunction",
]
