"""The jti replay store in a real Redis (127.0.0.1:6379, db 14): shared by every web process,
atomic, forgetting a jti when its token could no longer be used anyway."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from redis.backoff import NoBackoff
from redis.retry import Retry

from cds_hooks.auth import (
    AuthError,
    AuthSettings,
    IssuerConfig,
    JwksCache,
    RedisReplayStore,
    ReplayStoreUnavailable,
    Verifier,
    build_verifier,
    replay_key,
)
from hofhir.adapters.store import RedisStore
from tests.processes import wait_for

pytestmark = pytest.mark.integration

REDIS_DB = 14
ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/hofhir-patient-view"
KEY = ec.generate_private_key(ec.SECP384R1())
PUBLIC_JWK = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key())), "kid": "k1"}
SETTINGS = AuthSettings(issuers={ISS: IssuerConfig(jwks={"keys": [PUBLIC_JWK]})})


@pytest.fixture
def client() -> Iterator[redis.Redis[bytes]]:
    r: redis.Redis[bytes] = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    yield r
    r.close()


@pytest.fixture
def prefix(client: redis.Redis[bytes]) -> Iterator[str]:
    """A key prefix of this test's own; its keys, and only those, are deleted afterwards."""
    p = f"hofhir-test:auth:{uuid.uuid4()}:"
    yield p
    for key in client.scan_iter(match=f"{p}*"):
        client.delete(key)


def token(jti: str, exp: float) -> str:
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "iat": int(time.time()), "exp": int(exp), "jti": jti}
    return jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": "k1"})


def redis_verifier(client: redis.Redis[bytes], prefix: str) -> Verifier:
    return Verifier(SETTINGS, JwksCache(), RedisReplayStore(client, prefix))


def test_first_use_is_recorded_once_per_issuer_and_jti(client: redis.Redis[bytes], prefix: str) -> None:
    store = RedisReplayStore(client, prefix)

    assert store.first_use(ISS, "jti-1", 60)
    assert not store.first_use(ISS, "jti-1", 60)
    assert store.first_use("https://other-ehr.example.org", "jti-1", 60)
    assert store.first_use(ISS, "jti-2", 60)
    assert 55 <= client.ttl(prefix + replay_key(ISS, "jti-1")) <= 60


def test_recorded_jti_expires_with_its_ttl(client: redis.Redis[bytes], prefix: str) -> None:
    store = RedisReplayStore(client, prefix)

    assert store.first_use(ISS, "short", 1)
    assert not store.first_use(ISS, "short", 1)
    key = prefix + replay_key(ISS, "short")
    assert wait_for(lambda: client.exists(key) == 0, 5), "Redis let the key expire"
    assert store.first_use(ISS, "short", 1)


def test_replay_is_rejected_across_verifiers_sharing_redis(client: redis.Redis[bytes], prefix: str) -> None:
    # Two web processes behind a load balancer: the second must see what the first accepted.
    first, second = redis_verifier(client, prefix), redis_verifier(client, prefix)
    t = token(str(uuid.uuid4()), time.time() + 300)

    assert first.authenticate(f"Bearer {t}", AUD)["iss"] == ISS
    with pytest.raises(AuthError, match="jti replayed"):
        second.authenticate(f"Bearer {t}", AUD)


def test_jti_is_kept_for_the_token_lifetime_plus_leeway(client: redis.Redis[bytes], prefix: str) -> None:
    jti = str(uuid.uuid4())
    now = time.time()

    redis_verifier(client, prefix).verify(token(jti, now + 300), AUD, now=now)

    assert 300 + SETTINGS.leeway_seconds - 5 <= client.ttl(prefix + replay_key(ISS, jti)) <= 301 + 30


def test_concurrent_replays_admit_exactly_one(client: redis.Redis[bytes], prefix: str) -> None:
    t = token(str(uuid.uuid4()), time.time() + 300)
    verifiers = [redis_verifier(client, prefix) for _ in range(8)]
    outcomes: list[str] = []

    def call(v: Verifier) -> None:
        try:
            v.verify(t, AUD)
            outcomes.append("accepted")
        except AuthError:
            outcomes.append("rejected")

    threads = [threading.Thread(target=call, args=(v,)) for v in verifiers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    assert sorted(outcomes) == ["accepted"] + ["rejected"] * 7


def test_rejected_token_leaves_nothing_in_redis(client: redis.Redis[bytes], prefix: str) -> None:
    jti = str(uuid.uuid4())

    with pytest.raises(AuthError):
        redis_verifier(client, prefix).verify(token(jti, time.time() + 300), AUD + "/feedback")

    assert client.exists(prefix + replay_key(ISS, jti)) == 0


def test_build_verifier_uses_the_redis_it_is_given(client: redis.Redis[bytes]) -> None:
    jti = str(uuid.uuid4())
    key = "hofhir:auth:jti:" + replay_key(ISS, jti)
    try:
        build_verifier(SETTINGS, RedisStore(client)).verify(token(jti, time.time() + 60), AUD)
        assert client.exists(key) == 1
    finally:
        client.delete(key)


def test_unreachable_redis_is_a_server_fault_not_a_401() -> None:
    # Nothing listens on port 1; no retries, so the test does not wait out redis-py's backoff.
    dead: redis.Redis[bytes] = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    v = Verifier(SETTINGS, JwksCache(), RedisReplayStore(dead, "unused:"))

    with pytest.raises(ReplayStoreUnavailable):
        v.verify(token(str(uuid.uuid4()), time.time() + 60), AUD)


def test_the_redis_store_counts_with_an_expiry_from_the_first_increment(
    client: redis.Redis[bytes], prefix: str
) -> None:
    store = RedisStore(client, prefix)
    assert [store.increment("deliveries:t", 60) for _ in range(3)] == [1, 2, 3]
    assert 55 <= client.ttl(prefix + "deliveries:t") <= 60
    assert store.set_if_absent("once", "1", 60) and not store.set_if_absent("once", "1", 60)
    store.put("a", "1", 60)
    assert (store.get("a"), store.get("missing")) == ("1", None)
    assert 55 <= client.ttl(prefix + "a") <= 60
    store.push("list", "x")
    assert store.items("list") == ["x"] and store.length("list") == 1
    store.incr("counts", "f", 2)
    assert store.counts("counts") == {"f": 2}
