"""Redis mode and the hook path: a cheap call sends Redis nothing, and a hung Redis never holds an answer."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec

from cds_hooks.app import create_app
from cds_hooks.dispatch import InlineEvaluator
from cds_hooks.settings import Settings
from hofhir.knowledge import default_knowledge
from tests.dates import to_today
from tests.processes import redis_server
from tests.vignettes import check, load

ISSUER = "https://ehr.example.org"


@pytest.mark.timeout(60)
def test_a_cheap_hook_call_in_redis_mode_sends_redis_nothing() -> None:
    """Evaluated inline (below HOFHIR_WORKER_MIN_RESOURCES), and the card uuids carry their topic: the Redis
    server counts no command from the calls, and feedback on their cards still counts per topic (one HINCRBY)."""
    request, expect = load("s02")
    body = to_today(request, expect["now"])
    with redis_server() as own:
        app = create_app(Settings.from_env({"HOFHIR_REDIS_URL": own.url, "HOFHIR_AUTH": "off"}))
        client = app.test_client()
        server = redis.Redis.from_url(own.url)

        def commands() -> int:
            return int(server.info("stats")["total_commands_processed"])

        before = commands()
        cards = []
        for _ in range(5):
            response = client.post("/cds-services/hofhir-patient-view", json=body)
            assert response.status_code == 200 and check(response.json, expect) == []
            cards += response.json["cards"]
        assert commands() - before == 1  # the INFO that read `before`, nothing else
        feedback = [
            {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-30T09:00:00Z"} for card in cards
        ]
        assert client.post("/cds-services/hofhir-patient-view/feedback", json={"feedback": feedback}).status_code == 200
        counts = client.get("/feedback").json["topics"]
        topics = [card["source"]["topic"]["code"] for card in cards]
        assert {t: counts[t]["accepted"] for t in topics} == {t: topics.count(t) for t in topics}
        assert "unknown-card" not in counts


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


@pytest.mark.timeout(60)
def test_with_redis_hung_the_replay_check_fails_fast_as_a_503_not_a_401() -> None:
    """The JWT id cannot be recorded, so the token cannot be accepted; the caller hears it quickly."""
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())) | {"kid": "k1", "alg": "ES384"}
    request, expect = load("s01")
    body = to_today(request, expect["now"])
    with redis_server() as own:
        assert own.process is not None
        env = {
            "HOFHIR_REDIS_URL": own.url,
            "HOFHIR_AUTH_ISSUERS": json.dumps({ISSUER: {"jwks": {"keys": [public]}}}),
            "HOFHIR_DEADLINE_MS": "350",
        }
        client = create_app(Settings.from_env(env), evaluator=InlineEvaluator(default_knowledge())).test_client()
        url = "http://localhost/cds-services/hofhir-patient-view"
        assert client.post(url, json=body, headers=bearer(key, url)).status_code == 200
        os.kill(own.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = client.post(url, json=body, headers=bearer(key, url))
            elapsed = time.monotonic() - started
        finally:
            os.kill(own.process.pid, signal.SIGCONT)
    assert response.status_code == 503 and response.json["resourceType"] == "OperationOutcome"
    assert elapsed < 0.35, f"{elapsed:.3f} s"  # half the deadline for the Redis call, not its 0.5 s default


def bearer(key: ec.EllipticCurvePrivateKey, aud: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="ES384", headers={"kid": "k1"})}
