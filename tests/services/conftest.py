"""Fixtures for the service layer tests: a manager closed after each test."""

from __future__ import annotations

from typing import Iterator

import pytest

from sage_core.services.manager import ServiceManager


@pytest.fixture
def manager() -> Iterator[ServiceManager]:
    """A fresh service manager on the process's plugin manager, closed after the test."""
    services = ServiceManager(job_name="t")
    yield services
    services.close()
