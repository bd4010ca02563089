"""Fixtures for the integration tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/integration has no __init__.py: make `tests.fhirserver` importable however pytest is started.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fhirserver import FhirTestServer, run_fhir_server  # noqa: E402


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirTestServer]:
    """The real test FHIR engine (Medplum's in-memory FHIR router under Node), empty at the start.

    `fhir_server.base_url` is the FHIR base; load data with `fhir_server.load_bundle(path)`. The engine
    is shared by the whole session: a test that injects faults or requires auth calls
    `fhir_server.reset(keep_data=True)` first (or after) so it does not leak into other tests.
    """
    with run_fhir_server() as server:
        yield server
