"""Redis-mode dispatch decisions that need no Redis: by cost, and falling back at once when nothing can answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from cds_hooks.dispatch import WorkerEvaluator
from cds_hooks.settings import Settings
from hofhir import knowledge
from hofhir.fhir.read import from_resources

NOW = datetime(2026, 2, 1, tzinfo=UTC)
NOWHERE = "redis://127.0.0.1:9/0"  # nothing listens: any Redis call would fail (and show in the path)


def _inputs(kb: knowledge.Knowledge, n: int) -> object:
    patient = {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1980-01-01"}
    observations = [
        {
            "resourceType": "Observation",
            "id": f"alp-{i}",
            "status": "final",
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "6768-6"}]},
            "valueQuantity": {"value": 100, "unit": "U/L"},
            "effectiveDateTime": "2026-01-02",
        }
        for i in range(n)
    ]
    return from_resources([patient, *observations], kb.terminology, "patient-view", "p")


@pytest.fixture
def kb() -> knowledge.Knowledge:
    return knowledge.load()


def test_below_the_threshold_a_request_is_evaluated_inline_without_redis(
    kb: knowledge.Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "10")
    evaluator = WorkerEvaluator(Settings(redis_url=NOWHERE, auth=False), kb)
    outcome = evaluator.run(_inputs(kb, 5), NOW, 0.35)  # type: ignore[arg-type]
    assert outcome.path == "inline"
    assert evaluator.broker_down_until == 0.0, "no Redis call was made"


def test_a_heavy_request_a_worker_could_not_answer_in_time_is_evaluated_inline(
    kb: knowledge.Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "10")
    evaluator = WorkerEvaluator(Settings(redis_url=NOWHERE, auth=False), kb)
    evaluator.worker_s_per_resource = 0.01  # as if measured: 20 resources would take 200 ms on a worker
    assert evaluator.run(_inputs(kb, 20), NOW, 0.1).path == "inline", "never slower than inline"
    assert evaluator.run(_inputs(kb, 20), NOW, 2.0).path == "worker-fallback-inline", "fits: tried, Redis down"


def test_with_every_dispatch_thread_busy_a_call_falls_back_at_once(
    kb: knowledge.Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "0")
    monkeypatch.setenv("HOFHIR_DISPATCH_THREADS", "1")
    evaluator = WorkerEvaluator(Settings(redis_url=NOWHERE, auth=False, deadline_fallback="empty"), kb)
    assert evaluator.slots.acquire(blocking=False)  # the one thread is waiting on a hung Redis
    started = time.monotonic()
    outcome = evaluator.run(_inputs(kb, 3), NOW, 5.0)
    assert outcome.path == "worker-missed"
    assert outcome.evaluation is None, "HOFHIR_DEADLINE_FALLBACK=empty: no cards"
    assert time.monotonic() - started < 1.0, "not after the 5 s deadline"


def test_a_redis_that_refuses_is_skipped_for_a_while(kb: knowledge.Knowledge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "0")
    evaluator = WorkerEvaluator(Settings(redis_url=NOWHERE, auth=False), kb)
    first = evaluator.run(_inputs(kb, 3), NOW, 5.0)
    assert first.path == "worker-fallback-inline"
    assert evaluator.broker_down_until > time.monotonic()
    again = evaluator.run(_inputs(kb, 3), NOW, 5.0)
    assert again.path == "worker-fallback-inline", "skipped: answered inline at once"
