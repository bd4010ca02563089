"""A real `hofhir serve` process for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import free_port, start_service

__all__ = ["free_port", "service", "start_service"]  # benchmarks import them from here


@pytest.fixture(scope="session")
def service() -> Iterator[str]:
    proc, base = start_service({"HOFHIR_AUTH": "off"})
    yield base
    proc.terminate()
    proc.wait(timeout=10)
