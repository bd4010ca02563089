"""A hung Redis must not hold the answer: the card-index write is bounded by the call's remaining deadline."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cds_hooks.app import create_app
from cds_hooks.dispatch import InlineEvaluator
from cds_hooks.settings import Settings
from hofhir.knowledge import default_knowledge
from tests.dates import to_today
from tests.processes import redis_server
from tests.vignettes import check, load


@pytest.mark.timeout(60)
def test_a_hook_call_answers_within_its_deadline_while_redis_hangs() -> None:
    request, expect = load("s01")
    body = to_today(request, expect["now"])
    with redis_server() as own:
        assert own.process is not None
        app = create_app(
            Settings.from_env({"HOFHIR_REDIS_URL": own.url, "HOFHIR_AUTH": "off", "HOFHIR_DEADLINE_MS": "350"}),
            evaluator=InlineEvaluator(default_knowledge()),
        )
        client = app.test_client()
        assert client.post("/cds-services/hofhir-patient-view", json=body).status_code == 200  # warm
        os.kill(own.process.pid, signal.SIGSTOP)
        try:
            timings = []
            for _ in range(3):
                started = time.monotonic()
                response = client.post("/cds-services/hofhir-patient-view", json=body)
                timings.append(time.monotonic() - started)
                assert response.status_code == 200
                assert check(response.json, expect) == []
        finally:
            os.kill(own.process.pid, signal.SIGCONT)
    # The deadline plus the time to build a response; a wait for Redis' own 0.5 s socket timeout would show.
    assert max(timings) < 0.35 + 0.1, timings
