"""Fixtures for the service layer tests: a manager closed after each test."""

from __future__ import annotations

from typing import Iterator

import pytest

from sage_core.services.registry import ServiceRegistry


@pytest.fixture
def manager() -> Iterator[ServiceRegistry]:
    """A fresh service registry on the process's plugin manager, closed after the test."""
    services = ServiceRegistry(job_name="t")
    yield services
    services.close()
