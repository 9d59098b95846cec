"""A service's call figures, counted where the calls are made and added up in its router actor.

On Ray each task actor runs the service layer for its own calls (see
:mod:`sage_core.runtime.ray.direct`), so calls, errors, timeouts, fallbacks and latencies are
counted there. Each task actor's :class:`TalliedService` hands what it counted since the last
report to the router (every second, and when the task ends), whose own :class:`TalliedService`
adds it in, so the driver's ``metrics()`` keep the keys and meaning they have locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sage_core.services.service import Service


@dataclass
class CallFigures:
    """What one caller's service counted since its previous report."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    fallback_calls: int = 0
    saturated_skips: int = 0
    served_by: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls or self.latencies)


class TalliedService(Service):
    """A :class:`Service` whose figures can be taken out in one process and added in another."""

    def take_figures(self) -> CallFigures:
        """The figures counted since the previous take; they start again from zero."""
        with self._stats_lock:
            figures = CallFigures(
                self.calls, self.errors, self.timeouts, self.fallback_calls, self.saturated_skips,
                dict(self.served_by), list(self._latencies),
            )
            self.calls = self.errors = self.timeouts = self.fallback_calls = self.saturated_skips = 0
            self.served_by = dict.fromkeys(self.served_by, 0)
            self._latencies.clear()
        return figures

    def add_figures(self, figures: CallFigures) -> None:
        """Count a caller's figures as this service's own."""
        with self._stats_lock:
            self.calls += figures.calls
            self.errors += figures.errors
            self.timeouts += figures.timeouts
            self.fallback_calls += figures.fallback_calls
            self.saturated_skips += figures.saturated_skips
            for label, served in figures.served_by.items():
                self.served_by[label] = self.served_by.get(label, 0) + served
            self._latencies.extend(figures.latencies)


__all__ = ["CallFigures", "TalliedService"]
