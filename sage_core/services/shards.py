"""A shard of one backend of a service: the replicas that hold the same part of its data.

Reads go to the usable replica with the fewest calls in flight (ties rotate); writes go to every
usable replica (they hold the same data), and a replica whose write failed while another's
succeeded is marked stale (no more reads).
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from typing import Any, Sequence

from sage_core.services.futures import failed, first_success
from sage_core.services.replica import Replica


class Shard:
    """The replicas of one shard."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self._turn = itertools.count()

    def usable(self) -> list[Replica]:
        """Replicas that may serve reads."""
        return [r for r in self.replicas if r.usable]

    def pick(self) -> Replica | None:
        """The usable replica with the fewest calls in flight (rotating among equals)."""
        count = len(self.replicas)
        if count == 1:
            replica = self.replicas[0]
            return replica if replica.usable else None
        start = next(self._turn) % count
        best: Replica | None = None
        for offset in range(count):
            replica = self.replicas[(start + offset) % count]
            if replica.usable and (best is None or replica.in_flight < best.in_flight):
                best = replica
        return best

    def saturated(self, depth: int) -> bool:
        """Whether every usable replica has at least ``depth`` calls in flight."""
        return all(r.in_flight >= depth for r in self.usable())

    def call(self, method: str, args: Sequence[Any], kwargs: dict[str, Any], write: bool) -> Future:
        """A read on one replica, or a write on all of them."""
        if not write:
            replica = self.pick()
            if replica is None:
                return failed(RuntimeError("no usable replica"))
            return replica.submit(method, args, kwargs)
        targets = self.usable()
        if not targets:
            return failed(RuntimeError("no usable replica"))
        if len(targets) == 1:
            return targets[0].submit(method, args, kwargs)
        futures = [r.submit(method, args, kwargs) for r in targets]
        return first_success(futures, on_lagging=lambda i: setattr(targets[i], "stale", True))


__all__ = ["Shard"]
