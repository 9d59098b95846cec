"""Fixtures shared by the core tests."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from sage_core import LocalEnvironment


@pytest.fixture
def env() -> Iterator[LocalEnvironment]:
    """A local environment, closed after the test."""
    environment = LocalEnvironment("test")
    yield environment
    environment.close()


@pytest.fixture
def collected() -> list:
    """A list that sinks append to (list.append is atomic under the GIL)."""
    return []


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail if the test leaves a new SAGE thread running (threads alive before it do not count)."""

    def sage_threads() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("sage-") and t.is_alive()}

    before = sage_threads()
    yield
    leftover = sorted(sage_threads() - before)
    assert not leftover, f"threads left behind: {leftover}"
