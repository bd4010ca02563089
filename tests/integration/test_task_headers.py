"""What the web puts on the broker: the tasks' messages carry no patient data outside their body.

Celery writes a repr of a task's arguments into each message's headers (`argsrepr`), which the broker,
Celery events and monitoring tools show. Read here off a real Redis, with no worker taking the messages.
"""

from __future__ import annotations

import base64

import orjson
import pytest
import redis

from cds_hooks.app import create_app
from cds_hooks.dispatch import WorkerEvaluator
from cds_hooks.settings import Settings
from hofhir.knowledge import default_knowledge
from hofhir.worker.app import QUEUE, WRITEBACK_QUEUE
from tests.dates import to_today
from tests.processes import redis_server
from tests.vignettes import check, load


def messages(url: str, queue: str) -> list[dict[str, object]]:
    return [orjson.loads(raw) for raw in redis.Redis.from_url(url).lrange(queue, 0, -1)]


@pytest.mark.timeout(60)
def test_task_messages_name_no_patient_in_their_headers() -> None:
    request, expect = load("s02")
    body = to_today(request, expect["now"])
    patient = body["context"]["patientId"]
    with redis_server() as own:
        settings = Settings(redis_url=own.url, auth=False, worker_min_resources=0, deadline_ms=300)
        client = create_app(settings, evaluator=WorkerEvaluator(settings, default_knowledge())).test_client()
        # A hook call sent to a worker (none runs: it falls back inline at the deadline, its task stays queued).
        response = client.post("/cds-services/hofhir-patient-view", json=body)
        assert response.status_code == 200 and check(response.json, expect) == []
        # A Subscription notification about the same patient.
        observation = {
            "resourceType": "Observation",
            "id": "obs-headers",
            "meta": {"versionId": "1"},
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{patient}"},
        }
        assert client.put("/fhir/notifications/Observation/obs-headers", json=observation).status_code == 202
        sent = {queue: messages(own.url, queue) for queue in (QUEUE, WRITEBACK_QUEUE)}
    assert [len(sent[QUEUE]), len(sent[WRITEBACK_QUEUE])] == [1, 1]
    for queue, [message] in sent.items():
        headers = message["headers"]
        assert isinstance(headers, dict)
        shown = orjson.dumps(headers).decode()
        assert patient not in shown, (queue, shown)
        assert headers["argsrepr"] == "(not shown: may hold PHI)"
        # The arguments themselves are in the body, for the worker.
        assert isinstance(message["body"], str) and patient.encode() in base64.b64decode(message["body"])
