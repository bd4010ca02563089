"""Fixtures for the clinical unit tests: the knowledge base (loaded once) and a one-call evaluator."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests are seeded: the "ci" profile derandomizes (the same examples on every run, so CI never
# passes or fails by luck) and is the default; HYPOTHESIS_PROFILE=explore searches at random locally.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# tests/unit has no __init__.py: make `tests.builders` importable however pytest is started.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from hofhir import knowledge  # noqa: E402
from hofhir.clinical.evaluate import Evaluation, evaluate  # noqa: E402
from hofhir.fhir.read import from_hook_request  # noqa: E402
from tests.builders import NOW, Run, request  # noqa: E402


@pytest.fixture(scope="session")
def kb() -> knowledge.Knowledge:
    return knowledge.load()


@pytest.fixture(scope="session")
def run(kb: knowledge.Knowledge) -> Run:
    """run(resources, hook=..., draft_orders=..., now=...) -> Evaluation, through a CDS Hooks request.

    Every resource a test builds must be valid R4: a rejected resource would make a negative test pass
    for the wrong reason, so rejections fail the test unless `allow_rejected=True`.
    """

    def _run(
        resources: list[dict[str, Any]],
        hook: str = "patient-view",
        draft_orders: list[dict[str, Any]] | None = None,
        now: Any = NOW,
        allow_rejected: bool = False,
        **kwargs: Any,
    ) -> Evaluation:
        req = request(hook, resources, draft_orders, **kwargs)
        evaluation = evaluate(from_hook_request(req, kb.terminology), now, kb)
        if not allow_rejected:
            assert evaluation.trace["rejected"] == [], evaluation.trace["rejected"]
        return evaluation

    return _run
