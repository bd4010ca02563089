"""The worker speaks JSON: every line it writes is one JSON object, with a per-task line (no PHI)."""

from __future__ import annotations

import json

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from tests.dates import to_today
from tests.processes import Worker, redis_server
from tests.vignettes import load


def test_every_worker_log_line_is_json_and_the_task_line_has_ids_counts_and_time_only() -> None:
    with redis_server() as broker:
        worker = Worker(
            {
                "HOFHIR_REDIS_URL": broker.url,
                "HOFHIR_AUTH": "off",
                "HOFHIR_WORKER_CONCURRENCY": "1",
                "HOFHIR_SOFT_SHUTDOWN_S": "1",
            },
            "logs",
        )
        try:
            worker.wait_ready()
            # Every request to a worker (by default small ones are evaluated inline, see cds_hooks/dispatch.py).
            settings = Settings(redis_url=broker.url, auth=False, deadline_ms=5000, worker_min_resources=0)
            client = create_app(settings).test_client()
            request, expect = load("s02")
            answer = client.post("/cds-services/hofhir-patient-view", json=to_today(request, expect["now"]))
            assert answer.status_code == 200
            assert answer.headers["X-Hofhir-Evaluated-By"] == "worker"
            cards = len(answer.json["cards"])
            assert worker.terminate() == 0
        finally:
            worker.stop()
    text = worker.log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 5, text
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all({"ts", "level", "logger", "msg"} <= set(p) for p in parsed)
    tasks = [p for p in parsed if p["logger"] == "hofhir.task"]
    assert tasks, "one line per task"
    line = tasks[0]
    assert line["task"].endswith("evaluate") and line["taskId"] and line["ms"] >= 0 and line["cards"] == cards
    # Never PHI: no patient id, name or birth date of the evaluated record anywhere in the log.
    patient = request["prefetch"]["patient"]
    for secret in (patient["id"], patient["name"][0]["family"], patient["birthDate"]):
        assert secret not in text
