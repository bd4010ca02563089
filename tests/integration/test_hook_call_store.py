"""A hung Redis must not hold the answer: the card-index write is bounded by the call's remaining deadline."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import jwt
import pytest
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
