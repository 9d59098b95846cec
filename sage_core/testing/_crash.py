"""Crash a ``save`` part-way, at many points, and check that the previous snapshot survives; and
check that a snapshot cut short is refused rather than loaded in part.

A process can die at any instruction of a save. The check counts the Python and C function calls
one save makes in the calling thread (``sys.setprofile``), then repeats the save and raises
:class:`SimulatedCrash` at a spread of those calls: before the file is opened, mid-write, before
and after the rename. After each crash the snapshot at the path must load and hold either the old
contents or, when the crash came after the commit point, the new ones; never a mix or an error.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any, Callable, Hashable

from sage_core.testing._calls import call

CRASH_POINTS = 12
"""How many points of one save are crashed (every call when the save makes fewer)."""

CUTS = (0.3, 0.6, 0.9, 0.99)
"""Fractions of a snapshot's bytes kept when checking that a cut-short file is refused."""


class SimulatedCrash(BaseException):
    """Raised inside ``save`` where the process is pretended to die (a ``BaseException``, so the
    backend's ``except Exception`` cannot swallow what a real crash would not let it handle)."""


def assert_crash_mid_save_keeps_a_snapshot(
    new_store: Callable[[], Any],
    read_back: Callable[[str], Hashable],
    path: str,
    scratch: str,
    old: Hashable,
    new: Hashable,
) -> None:
    """Crash ``store.save(path)`` at spread-out points; ``read_back(path)`` must give ``old`` or ``new``.

    ``path`` holds a snapshot whose summary is ``old``. ``new_store()`` builds a store whose
    summary is ``new`` (a crashed store may hold a lock forever, so each crash gets a fresh one and
    the crashed one is abandoned, not closed). ``read_back(path)`` loads a snapshot into a fresh
    store and summarises it. ``scratch`` is a path for the save that counts the calls.
    """
    counted = new_store()
    steps = _count_calls(counted, scratch)
    call(counted.close)
    assert steps, "save() made no call in the calling thread, so no crash can be simulated in it"
    stride = max(1.0, steps / CRASH_POINTS)
    points = sorted({min(steps, round(1 + i * stride)) for i in range(CRASH_POINTS)} | {steps})
    for point in points:
        _crash_at(new_store(), path, point)
        try:
            found = read_back(path)
        except Exception as exc:
            msg = f"a crash at call {point} of {steps} of save() left a snapshot that does not load: {exc!r}"
            raise AssertionError(msg) from exc
        assert found in (old, new), (
            f"a crash at call {point} of {steps} of save() left a snapshot that is neither the previous one "
            f"nor the new one (a partial write)"
        )


def assert_cut_snapshots_load_whole_or_not_at_all(
    path: str, fresh: Callable[[], Any], summary: Callable[[Any], Hashable], whole: Hashable
) -> None:
    """Copies of the snapshot at ``path`` cut short (a torn copy, a full disk) must either load
    entirely (summary ``whole``) or raise ``ValueError`` and leave the store as it was.

    ``fresh()`` builds a store holding something else; ``summary(store)`` describes its contents.
    """
    data = Path(path).read_bytes()
    cut = f"{path}.cut"
    for fraction in CUTS:
        Path(cut).write_bytes(data[: int(len(data) * fraction)])
        store = fresh()
        try:
            before = summary(store)
            try:
                call(store.load, cut)
            except ValueError:
                assert summary(store) == before, f"a failed load of the snapshot cut to {fraction:.0%} changed the store"
            else:
                assert summary(store) == whole, f"the snapshot cut to {fraction:.0%} loaded partially"
        finally:
            call(store.close)


def _count_calls(store: Any, path: str) -> int:
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if _counts(event, arg):
            calls += 1

    sys.setprofile(count)
    try:
        call(store.save, path)
    finally:
        sys.setprofile(None)
    return calls


def _crash_at(store: Any, path: str, point: int) -> None:
    calls = 0

    def crash(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if _counts(event, arg):
            calls += 1
            if calls == point:
                raise SimulatedCrash(f"simulated crash at call {point} of save()")

    hook = sys.unraisablehook
    sys.unraisablehook = _ignore  # a dead process runs no destructor of what it left half-written
    try:
        sys.setprofile(crash)
        try:
            call(store.save, path)
        except BaseException as exc:
            if not _caused_by_crash(exc):
                raise
        finally:
            sys.setprofile(None)
        del store
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _ignore(unraisable: Any) -> None:
    """An unraisable-exception hook that reports nothing."""


def _counts(event: str, arg: Any) -> bool:
    """A call into a Python or C function, other than the one that ends the profiling."""
    return event == "call" or (event == "c_call" and arg is not sys.setprofile)


def _caused_by_crash(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the simulated crash or was raised while cleaning up after it (a dead
    process would run no cleanup, so what cleanup raises is part of the crash)."""
    while exc is not None:
        if isinstance(exc, SimulatedCrash):
            return True
        exc = exc.__context__
    return False


__all__ = [
    "CRASH_POINTS",
    "CUTS",
    "SimulatedCrash",
    "assert_crash_mid_save_keeps_a_snapshot",
    "assert_cut_snapshots_load_whole_or_not_at_all",
]
