"""Write-back content: an unchanged assessment is recognised before the R4B model runs.

The write-back skips the model when the draft already says what the server holds, so the draft must
carry exactly the content the model's JSON has (what was written before), for every vignette.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from hofhir.clinical.evaluate import evaluate
from hofhir.fhir.read import from_hook_request
from hofhir.knowledge import Knowledge
from hofhir.worker.writeback import detected_issue, meaning, risk_assessment
from tests.vignettes import cases, load


@pytest.mark.parametrize("case", cases())
def test_the_draft_says_what_the_validated_resource_says(case: str, kb: Knowledge) -> None:
    request, expect = load(case)
    now = datetime.fromisoformat(expect["now"])
    evaluation = evaluate(from_hook_request(request, kb.terminology), now, kb)
    validated = risk_assessment(evaluation, "pt-1", now)
    draft = risk_assessment(evaluation, "pt-1", now, validated=False)
    assert meaning(draft) == meaning(validated)
    assert draft["resourceType"] == validated["resourceType"] == "RiskAssessment"
    issue = detected_issue(evaluation, "pt-1", now)
    issue_draft = detected_issue(evaluation, "pt-1", now, validated=False)
    assert (issue is None) == (issue_draft is None)
    if issue is not None and issue_draft is not None:
        assert meaning(issue_draft) == meaning(issue)


def test_what_changes_on_every_write_is_not_meaning() -> None:
    stored = {"resourceType": "RiskAssessment", "id": "1", "meta": {"versionId": "3"}, "status": "final"}
    again = {"resourceType": "RiskAssessment", "occurrenceDateTime": "2026-01-01T00:00:00Z", "status": "final"}
    assert meaning(stored) == meaning(again)
    assert meaning(stored) != meaning({**again, "status": "amended"})


def test_write_back_tasks_have_their_own_queue_and_a_threads_role() -> None:
    from hofhir.adapters.settings import Settings, SettingsError
    from hofhir.worker.app import QUEUE, WRITEBACK_QUEUE, _role_options, make_celery

    def role(**env: str) -> list[str]:
        return _role_options(Settings.from_env({"HOFHIR_REDIS_URL": "redis://127.0.0.1:1/0", **env}))

    routes = make_celery(Settings.from_env({"HOFHIR_REDIS_URL": "redis://127.0.0.1:1/0"})).conf.task_routes
    assert routes["hofhir.assess_patient"] == {"queue": WRITEBACK_QUEUE}
    writeback = role(HOFHIR_WORKER_ROLE="writeback", HOFHIR_WRITEBACK_CONCURRENCY="24")
    assert writeback[:6] == ["-Q", WRITEBACK_QUEUE, "--pool", "threads", "--concurrency", "24"]
    evaluate = role(HOFHIR_WORKER_ROLE="evaluate")
    assert evaluate[:2] == ["-Q", QUEUE] and "threads" not in evaluate
    assert role()[:2] == ["-Q", f"{QUEUE},{WRITEBACK_QUEUE}"]
    with pytest.raises(SettingsError):
        role(HOFHIR_WORKER_ROLE="everything")


@pytest.mark.parametrize("case", cases())
def test_what_is_written_is_what_the_r4b_model_builds_even_without_running_it(case: str, kb: Knowledge) -> None:
    """The written resources skip pydantic when the element-table check passes them: they must be exactly
    the model's JSON, in its element order, and the models must not have been needed."""
    from hofhir.fhir import models

    request, expect = load(case)
    now = datetime.fromisoformat(expect["now"])
    evaluation = evaluate(from_hook_request(request, kb.terminology), now, kb)
    for written, draft in (
        (risk_assessment(evaluation, "pt-1", now), risk_assessment(evaluation, "pt-1", now, validated=False)),
        (detected_issue(evaluation, "pt-1", now), detected_issue(evaluation, "pt-1", now, validated=False)),
    ):
        if written is None or draft is None:
            assert written is draft is None
            continue
        through_model = models.build(draft["resourceType"], {k: v for k, v in draft.items() if k != "resourceType"})
        assert written == through_model and list(written) == list(through_model)
        assert models.conforms(draft)  # the fast path was taken
