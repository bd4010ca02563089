"""JWT authentication of CDS Clients (cds_hooks.auth): the spec's own example, then every way to get
it wrong. Keys are generated here; JWKS URLs are served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from cds_hooks.auth import (
    AuthError,
    AuthSettings,
    IssuerConfig,
    JwksCache,
    MemoryReplayStore,
    ReplayStore,
    Verifier,
    build_verifier,
    settings_from_env,
)

# The CDS Hooks 2.0.1 specification's JWT example (HL7/cds-hooks v2.0.1, input/pagecontent/index.md,
# CC0): its signed token, header, payload, public JWKS and (published, example-only) private key.
SPEC_TOKEN = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImV4YW1wbGUta2lkIiwiamt1IjoiaHR0cHM6Ly9maGlyLWVoci5l"
    "eGFtcGxlLmNvbS9qd2tfdXJpIn0."
    "eyJpc3MiOiJodHRwczovL2ZoaXItZWhyLmV4YW1wbGUuY29tLyIsImF1ZCI6Imh0dHBzOi8vY2RzLmV4YW1wbGUub3JnL2Nk"
    "cy1zZXJ2aWNlcy9zb21lLXNlcnZpY2UiLCJleHAiOjE0MjI1Njg4NjAsImlhdCI6MTMxMTI4MDk3MCwianRpIjoiZWUyMmIw"
    "MjEtZTFiNy00NjExLWJhNWItOGVlYzZhMzNhYzFlIiwidGVuYW50IjoiMmRkZDZjM2EtOGU5YS00NGM2LWEzMDUtNTIxMTFh"
    "ZDMwMmEyIn0."
    "d1WfLjGRKlcWB94l9do4cM8REXeYJLL6SGUBO8VHZhfM8mwKYP70EMxJ67War4TQblEpaQrp11wx5p7oPFm2ETYgCicS84vX"
    "WEIYTdjooZdooCSDf2L8-i4awdoUwiEb"
)
SPEC_HEADER = {"alg": "ES384", "typ": "JWT", "kid": "example-kid", "jku": "https://fhir-ehr.example.com/jwk_uri"}
SPEC_PAYLOAD: dict[str, Any] = {
    "iss": "https://fhir-ehr.example.com/",
    "aud": "https://cds.example.org/cds-services/some-service",
    "exp": 1422568860,
    "iat": 1311280970,
    "jti": "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e",
    "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
}
SPEC_PUBLIC_JWK = {
    "kty": "EC",
    "use": "sig",
    "crv": "P-384",
    "kid": "example-kid",
    "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
    "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI",
    "alg": "ES384",
}
SPEC_PRIVATE_JWK = {**SPEC_PUBLIC_JWK, "d": "SeFXUXda8UomZ8GFUl7HH_Oi15rIbfMcsWj9ecIsDR8kLbqsEz2CGNgwy_IcILxy"}
SPEC_AUD = "https://cds.example.org/cds-services/some-service"
SPEC_ISS = "https://fhir-ehr.example.com/"
# The public CDS Hooks sandbox's signing key (cds-hooks/sandbox, build/.well-known/jwks.json).
SANDBOX_JWKS = {
    "keys": [
        {
            "kty": "EC",
            "use": "sig",
            "crv": "P-384",
            "kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
            "x": "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
            "y": "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy",
            "alg": "ES384",
        }
    ]
}

ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/hofhir-patient-view"
NOW = 1_700_000_000
DROP = object()  # claim or header value meaning "leave it out"


# --- keys and tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Any
    public_jwk: dict[str, Any]


def _ec_key(kid: str, curve: ec.EllipticCurve) -> SigningKey:
    private = ec.generate_private_key(curve)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return SigningKey(kid, private, {**jwk, "kid": kid, "use": "sig"})


def _rsa_key(kid: str, bits: int = 2048) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return SigningKey(kid, private, {**jwk, "kid": kid})


EC384 = _ec_key("ec384", ec.SECP384R1())
EC256 = _ec_key("ec256", ec.SECP256R1())
RSA = _rsa_key("rsa2048")
RSA_SMALL = _rsa_key("rsa1024", 1024)
OTHER_EC384 = _ec_key("ec384", ec.SECP384R1())  # same kid as EC384, different key


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


def claims(**changes: object) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "iat": NOW, "exp": NOW + 300, "jti": str(uuid.uuid4())}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(key: SigningKey, alg: str = "ES384", payload: dict[str, Any] | None = None, **header: object) -> str:
    headers: dict[str, Any] = {k: v for k, v in {"kid": key.kid, **header}.items() if v is not DROP}
    if header.get("typ") is DROP:
        headers["typ"] = None  # PyJWT leaves out a typ set to None
    return jwt.encode(claims() if payload is None else payload, key.private, algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def settings(issuers: dict[str, IssuerConfig] | None = None, **changes: Any) -> AuthSettings:
    base = AuthSettings(
        issuers=issuers or {ISS: IssuerConfig(jwks=jwks(EC384, EC256, RSA, RSA_SMALL))},
        allow_http_localhost=True,
    )
    return replace(base, **changes)


def verifier(
    config: AuthSettings | None = None, cache: JwksCache | None = None, store: ReplayStore | None = None
) -> Verifier:
    config = config or settings()
    return Verifier(
        config,
        cache or JwksCache(allow_http_localhost=config.allow_http_localhost),
        store or MemoryReplayStore(),
    )


def rejected(v: Verifier, token: str, match: str, audience: str = AUD, now: float = NOW) -> AuthError:
    with pytest.raises(AuthError, match=match) as caught:
        v.verify(token, audience, now=now)
    for part in token.split("."):
        assert len(part) < 8 or part not in caught.value.reason  # the token never reaches a log line
    return caught.value


# --- the specification's example ----------------------------------------------------------------


@pytest.fixture
def spec_verifier() -> Verifier:
    issuers = {SPEC_ISS: IssuerConfig(jwks={"keys": [SPEC_PUBLIC_JWK]})}
    # The example token lives from 2011 to 2015: far beyond any sane lifetime bound.
    return verifier(settings(issuers, max_token_lifetime_seconds=None))


def test_spec_example_jwt_verifies_against_the_spec_jwks(spec_verifier: Verifier) -> None:
    token = SPEC_TOKEN

    assert spec_verifier.verify(token, SPEC_AUD, now=SPEC_PAYLOAD["iat"]) == SPEC_PAYLOAD
    assert jwt.get_unverified_header(token) == SPEC_HEADER


def test_spec_example_jwt_for_another_service_or_at_another_time_is_rejected(spec_verifier: Verifier) -> None:
    token = SPEC_TOKEN
    iat, exp = 1311280970, 1422568860

    rejected(spec_verifier, token, "InvalidAudienceError", audience=SPEC_AUD.replace("some", "other"), now=iat)
    rejected(spec_verifier, token, "expired", audience=SPEC_AUD, now=exp + 30)
    rejected(spec_verifier, token, "future", audience=SPEC_AUD, now=iat - 31)
    assert spec_verifier.verify(token, SPEC_AUD, now=exp - 1)["jti"] == "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e"


def test_spec_example_jwt_exceeds_the_default_lifetime_bound() -> None:
    issuers = {SPEC_ISS: IssuerConfig(jwks={"keys": [SPEC_PUBLIC_JWK]})}
    token = SPEC_TOKEN

    rejected(verifier(settings(issuers)), token, "lifetime", audience=SPEC_AUD, now=1311280970)


def test_spec_example_private_key_signs_tokens_we_accept() -> None:
    private = jwt.PyJWK(SPEC_PRIVATE_JWK, algorithm="ES384").key
    key = SigningKey("example-kid", private, {})
    v = verifier(settings({ISS: IssuerConfig(jwks={"keys": [SPEC_PUBLIC_JWK]})}))

    assert v.verify(sign(key), AUD, now=NOW)["iss"] == ISS


# --- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "alg"), [(EC384, "ES384"), (RSA, "RS384")])
def test_default_algorithms_verify(key: SigningKey, alg: str) -> None:
    payload = claims(tenant="org-1")

    assert verifier().verify(sign(key, alg, payload), AUD, now=NOW) == payload


@pytest.mark.parametrize(("key", "alg"), [(EC256, "ES256"), (RSA, "RS256")])
def test_sha256_algorithms_verify_only_when_configured(key: SigningKey, alg: str) -> None:
    token = sign(key, alg)

    rejected(verifier(), token, f"algorithm '{alg}' not allowed")
    assert verifier(settings(algorithms=("ES384", alg))).verify(token, AUD, now=NOW)["iss"] == ISS


def test_audience_may_be_a_list_containing_the_url_called() -> None:
    token = sign(EC384, payload=claims(aud=["https://other.example.org", AUD]))

    assert verifier().verify(token, AUD, now=NOW)["aud"] == ["https://other.example.org", AUD]


def test_times_within_the_leeway_are_accepted() -> None:
    v = verifier(settings(leeway_seconds=30))

    assert v.verify(sign(EC384, payload=claims(iat=NOW - 300, exp=NOW - 29)), AUD, now=NOW)
    assert v.verify(sign(EC384, payload=claims(iat=NOW + 30, exp=NOW + 330)), AUD, now=NOW)


def test_typ_may_be_absent_or_lower_case() -> None:
    v = verifier()

    assert v.verify(sign(EC384, typ=DROP), AUD, now=NOW)
    assert v.verify(sign(EC384, typ="jwt"), AUD, now=NOW)


# --- every way to get it wrong ------------------------------------------------------------------


def test_alg_none_is_rejected() -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": EC384.kid}).encode())
    body = b64url(json.dumps(claims()).encode())

    rejected(verifier(), f"{header}.{body}.", "algorithm 'none' not allowed")
    rejected(verifier(), f"{header}.{body}.{sign(EC384).split('.')[2]}", "algorithm 'none' not allowed")


def test_hs256_signed_with_the_public_key_is_rejected() -> None:
    # The classic key-confusion attack: HMAC keyed with the verifier's own public key.
    public_pem = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": RSA.kid}).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()

    rejected(verifier(), f"{header}.{body}.{b64url(mac)}", "algorithm 'HS256' not allowed")


def test_wrong_audience_is_rejected() -> None:
    v = verifier()

    rejected(v, sign(EC384, payload=claims(aud="https://cds.example.org/cds-services")), "InvalidAudienceError")
    rejected(v, sign(EC384, payload=claims(aud=[AUD + "/feedback"])), "InvalidAudienceError")
    rejected(v, sign(EC384), "InvalidAudienceError", audience=AUD + "/feedback")


def test_expired_token_is_rejected() -> None:
    rejected(verifier(), sign(EC384, payload=claims(iat=NOW - 300, exp=NOW - 31)), "expired")


def test_token_issued_in_the_future_is_rejected() -> None:
    v = verifier()

    rejected(v, sign(EC384, payload=claims(iat=NOW + 31, exp=NOW + 331)), "future")
    rejected(v, sign(EC384, payload=claims(nbf=NOW + 31)), "future")


def test_token_living_longer_than_the_bound_is_rejected() -> None:
    v = verifier(settings(max_token_lifetime_seconds=600))

    assert v.verify(sign(EC384, payload=claims(exp=NOW + 600)), AUD, now=NOW)
    rejected(v, sign(EC384, payload=claims(exp=NOW + 601)), "lifetime 601 s exceeds 600 s")
    rejected(v, sign(EC384, payload=claims(iat=NOW, exp=NOW)), "exp is not after iat")


def test_non_numeric_times_are_rejected() -> None:
    rejected(verifier(), sign(EC384, payload=claims(exp="tomorrow")), "must be finite whole numbers")


def test_replayed_jti_is_rejected_by_the_memory_store() -> None:
    v = verifier()
    token = sign(EC384)

    assert v.verify(token, AUD, now=NOW)
    rejected(v, token, "jti replayed")
    rejected(
        v,
        sign(RSA, "RS384", claims(jti=jwt.decode(token, options={"verify_signature": False})["jti"])),
        "jti",
    )


def test_same_jti_from_another_issuer_is_not_a_replay() -> None:
    issuers = {
        ISS: IssuerConfig(jwks=jwks(EC384)),
        "https://other-ehr.example.org": IssuerConfig(jwks=jwks(RSA)),
    }
    v = verifier(settings(issuers))

    assert v.verify(sign(EC384, payload=claims(jti="same")), AUD, now=NOW)
    assert v.verify(sign(RSA, "RS384", claims(jti="same", iss="https://other-ehr.example.org")), AUD, now=NOW)


def test_a_token_rejected_for_another_reason_does_not_burn_its_jti() -> None:
    v = verifier()
    payload = claims()

    rejected(v, sign(EC384, payload=payload), "InvalidAudienceError", audience=AUD + "x")
    assert v.verify(sign(EC384, payload=payload), AUD, now=NOW)


def test_unknown_kid_is_rejected() -> None:
    rejected(verifier(), sign(_ec_key("somebody-else", ec.SECP384R1())), "no key 'somebody-else'")


def test_key_with_the_right_kid_but_another_secret_is_rejected() -> None:
    rejected(verifier(), sign(OTHER_EC384), "InvalidSignatureError")


def test_issuer_not_allowed_is_rejected() -> None:
    v = verifier()

    rejected(v, sign(EC384, payload=claims(iss="https://evil.example.org")), "issuer 'https://evil.example.org'")
    rejected(v, sign(EC384, payload=claims(iss=DROP)), "issuer None not allowed")


def test_tampered_token_is_rejected() -> None:
    v = verifier()
    header, body, signature = sign(EC384).split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    forged_body = b64url(json.dumps(claims(aud=AUD, iss=ISS, exp=NOW + 3000)).encode())

    rejected(v, f"{header}.{body}.{flipped}", "InvalidSignatureError")
    rejected(v, f"{header}.{forged_body}.{signature}", "InvalidSignatureError")


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud"])
def test_missing_required_claim_is_rejected(claim: str) -> None:
    rejected(verifier(), sign(EC384, payload=claims(**{claim: DROP})), f'"{claim}"')


def test_empty_jti_is_rejected() -> None:
    rejected(verifier(), sign(EC384, payload=claims(jti="")), "jti is empty")


def test_missing_kid_is_rejected() -> None:
    token = jwt.encode(claims(), EC384.private, algorithm="ES384")

    rejected(verifier(), token, "no kid")


def test_wrong_typ_is_rejected() -> None:
    rejected(verifier(), sign(EC384, typ="at+jwt"), "typ 'at\\+jwt' is not JWT")


def test_critical_header_extensions_are_rejected() -> None:
    # RFC 7515: extensions listed in crit that we do not understand make the token invalid.
    rejected(verifier(), sign(EC384, crit=["urn:example:ext"]), "critical|InvalidTokenError")


def test_key_of_another_type_than_alg_is_rejected() -> None:
    # RS384 header naming an EC key: the key must never be used with another algorithm.
    header = b64url(json.dumps({"alg": "RS384", "typ": "JWT", "kid": EC384.kid}).encode())
    unsigned = sign(RSA, "RS384").split(".")
    rejected(verifier(), f"{header}.{unsigned[1]}.{unsigned[2]}", "InvalidKeyError")


def test_ec_key_on_the_wrong_curve_is_rejected() -> None:
    bare = {k: v for k, v in EC256.public_jwk.items() if k != "alg"}  # let the header pick the algorithm
    v = verifier(settings({ISS: IssuerConfig(jwks={"keys": [bare]})}, algorithms=("ES384", "ES256")))
    header = b64url(json.dumps({"alg": "ES384", "typ": "JWT", "kid": EC256.kid}).encode())
    _, body, signature = sign(EC256, "ES256").split(".")

    rejected(v, f"{header}.{body}.{signature}", "InvalidKeyError")


def test_key_published_for_another_alg_is_rejected() -> None:
    pinned = {**RSA.public_jwk, "alg": "RS384"}
    v = verifier(settings({ISS: IssuerConfig(jwks={"keys": [pinned]})}, algorithms=("RS384", "RS256")))

    assert v.verify(sign(RSA, "RS384"), AUD, now=NOW)
    rejected(v, sign(RSA, "RS256"), "is for 'RS384', token uses RS256")


def test_rsa_key_below_2048_bits_is_rejected() -> None:
    with pytest.warns(InsecureKeyLengthWarning):  # PyJWT only warns when signing with it
        token = sign(RSA_SMALL, "RS384")

    rejected(verifier(), token, "InvalidKeyError")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 20_000])
def test_malformed_token_is_rejected(token: str) -> None:
    with pytest.raises(AuthError):
        verifier().verify(token, AUD, now=NOW)


# --- the Authorization header -------------------------------------------------------------------


def test_authenticate_reads_a_bearer_token() -> None:
    v = verifier()

    assert v.authenticate(f"Bearer {sign(EC384)}", AUD, now=NOW)["iss"] == ISS
    assert v.authenticate(f"  bearer   {sign(EC384)} ", AUD, now=NOW)["iss"] == ISS


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_authenticate_without_a_bearer_token_is_rejected(header: str | None) -> None:
    with pytest.raises(AuthError, match="no bearer token"):
        verifier().authenticate(header, AUD, now=NOW)


def test_authentication_off_accepts_anything_and_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cds_hooks.auth"):
        v = build_verifier(settings_from_env({"HOFHIR_AUTH": "off"}))

    assert v.authenticate(None, AUD) == {}
    assert v.authenticate("Bearer garbage", AUD) == {}
    assert any("OFF" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_authentication_on_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cds_hooks.auth"):
        v = build_verifier(settings())

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(AuthError):
        v.authenticate(None, AUD)


# --- the memory replay store --------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_memory_replay_store_forgets_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryReplayStore(clock)

    assert store.first_use(ISS, "a", 60)
    assert not store.first_use(ISS, "a", 60)
    clock.t += 59.9
    assert not store.first_use(ISS, "a", 60)
    clock.t += 0.2
    assert store.first_use(ISS, "a", 60)


def test_memory_replay_store_admits_one_of_many_concurrent_uses() -> None:
    store = MemoryReplayStore()
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(store.first_use(ISS, "j", 60))) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [False] * 31 + [True]


# --- JWKS fetched from URLs (a real HTTP server on 127.0.0.1) -----------------------------------


class JwksServer:
    """Serves ``self.jwks`` at ``/jwks.json`` (with ``self.status``) and, padded past 100 kB, at
    ``/big``; ``/redirect`` redirects to ``/jwks.json``. Counts hits per path."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = jwks(EC384)
        self.status = 200
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/jwks.json")
                    self.end_headers()
                    return
                padding = {"padding": "x" * 200_000} if self.path == "/big" else {}
                body = json.dumps({**server.jwks, **padding}).encode()
                self.send_response(server.status if self.path == "/jwks.json" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "/jwks.json") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[JwksServer]:
    s = JwksServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def url_verifier(config: IssuerConfig, clock: Clock | None = None) -> Verifier:
    cache = JwksCache(allow_http_localhost=True, ttl_seconds=600, min_refetch_seconds=30, clock=clock or Clock())
    return verifier(settings({ISS: config}), cache=cache)


def test_allowlisted_jku_is_fetched_once_and_cached(server: JwksServer) -> None:
    v = url_verifier(IssuerConfig(jku_allowlist=(server.url(),)))

    assert v.verify(sign(EC384, jku=server.url()), AUD, now=NOW)
    assert v.verify(sign(EC384, jku=server.url()), AUD, now=NOW)
    assert server.hits == {"/jwks.json": 1}


def test_jku_not_in_the_allowlist_is_rejected_without_fetching(server: JwksServer) -> None:
    v = url_verifier(IssuerConfig(jku_allowlist=(server.url(),)))

    rejected(v, sign(EC384, jku=server.url("/jwks.json?x=1")), "jku .* not allowed")
    rejected(v, sign(EC384, jku=server.url("/redirect")), "jku .* not allowed")
    rejected(v, sign(EC384), "no key")  # this issuer publishes keys only through jku
    assert server.hits == {}


def test_jku_hint_is_never_fetched_for_an_issuer_with_configured_keys(server: JwksServer) -> None:
    v = url_verifier(IssuerConfig(jwks=jwks(RSA)))

    assert v.verify(sign(RSA, "RS384", jku=server.url()), AUD, now=NOW)
    rejected(v, sign(EC384, jku=server.url()), "no key 'ec384'")  # EC384 is only on the server
    assert server.hits == {}


def test_jwks_url_is_used_for_tokens_without_jku(server: JwksServer) -> None:
    v = url_verifier(IssuerConfig(jwks_url=server.url()))

    assert v.verify(sign(EC384), AUD, now=NOW)
    assert server.hits == {"/jwks.json": 1}


def test_unknown_kid_refetches_at_most_once_per_interval(server: JwksServer) -> None:
    clock = Clock()
    v = url_verifier(IssuerConfig(jwks_url=server.url()), clock)
    assert v.verify(sign(EC384), AUD, now=NOW)

    server.jwks = jwks(EC384, RSA)  # the issuer rotates in a new key
    clock.t += 10
    rejected(v, sign(RSA, "RS384"), "no key 'rsa2048'")  # fetched 10 s ago: too soon to ask again
    assert server.hits == {"/jwks.json": 1}

    clock.t += 21
    assert v.verify(sign(RSA, "RS384"), AUD, now=NOW)
    assert server.hits == {"/jwks.json": 2}

    for i in range(40):  # 40 s of forged kids, one a second, cost the issuer one request
        clock.t += 1
        rejected(v, sign(_ec_key(f"forged-{i}", ec.SECP384R1())), "no key")
    assert server.hits == {"/jwks.json": 3}


def test_expired_cache_is_refreshed_and_kept_when_the_refresh_fails(server: JwksServer) -> None:
    clock = Clock()
    v = url_verifier(IssuerConfig(jwks_url=server.url()), clock)
    assert v.verify(sign(EC384), AUD, now=NOW)

    server.status = 503
    clock.t += 601
    assert v.verify(sign(EC384), AUD, now=NOW)  # the refresh failed; the keys we had still serve
    assert server.hits == {"/jwks.json": 2}

    server.status = 200
    server.jwks = jwks(RSA)  # EC384 revoked
    clock.t += 31
    rejected(v, sign(EC384), "no key 'ec384'")
    assert server.hits == {"/jwks.json": 3}


@pytest.mark.parametrize(
    ("path", "status"),
    [("/redirect", 200), ("/big", 200), ("/jwks.json", 404), ("/jwks.json", 500)],
)
def test_unusable_jwks_responses_give_no_keys(server: JwksServer, path: str, status: int) -> None:
    server.status = status
    v = url_verifier(IssuerConfig(jwks_url=server.url(path)))

    rejected(v, sign(EC384), "no key")
    assert server.hits == {path: 1}  # in particular, the redirect to /jwks.json was not followed


def test_unreachable_jwks_url_gives_no_keys(server: JwksServer) -> None:
    url = server.url()
    server.httpd.shutdown()
    server.httpd.server_close()

    rejected(url_verifier(IssuerConfig(jwks_url=url)), sign(EC384), "no key")


def test_jwks_cache_refuses_plain_http_unless_allowed(server: JwksServer) -> None:
    cache = JwksCache()

    assert cache.find_key(server.url(), EC384.kid) is None
    assert server.hits == {}
    assert JwksCache(allow_http_localhost=True).find_key(server.url(), EC384.kid) == EC384.public_jwk


# --- settings from the environment --------------------------------------------------------------


def issuers_json(**config: Any) -> str:
    return json.dumps({ISS: config})


def test_settings_defaults() -> None:
    s = settings_from_env({"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384))})

    assert s.enabled
    assert s.algorithms == ("ES384", "RS384")
    assert s.leeway_seconds == 30
    assert s.max_token_lifetime_seconds == 3600
    assert not s.allow_http_localhost
    assert s.issuers == {ISS: IssuerConfig(jwks=jwks(EC384))}


def test_settings_read_every_variable(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(
        json.dumps(
            {
                "https://sandbox.cds-hooks.org": {"jwks": SANDBOX_JWKS},
                ISS: {"jwks_url": "https://ehr.example.org/jwks", "jku": ["https://ehr.example.org/jku"]},
            }
        )
    )
    s = settings_from_env(
        {
            "HOFHIR_AUTH": "ON",
            "HOFHIR_AUTH_ISSUERS": f"@{path}",
            "HOFHIR_AUTH_ALGORITHMS": "es384, RS256",
            "HOFHIR_AUTH_LEEWAY_SECONDS": "5",
            "HOFHIR_AUTH_MAX_TOKEN_LIFETIME_SECONDS": "300",
            "HOFHIR_AUTH_ALLOW_HTTP_LOCALHOST": "off",
        }
    )

    assert s.algorithms == ("ES384", "RS256")
    assert (s.leeway_seconds, s.max_token_lifetime_seconds) == (5, 300)
    assert s.issuers[ISS] == IssuerConfig(
        jwks_url="https://ehr.example.org/jwks", jku_allowlist=("https://ehr.example.org/jku",)
    )
    assert s.issuers["https://sandbox.cds-hooks.org"].jwks == SANDBOX_JWKS


def test_an_issuer_may_name_its_fhir_servers() -> None:
    s = settings_from_env(
        {"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384), fhir_servers=["https://ehr.example.org/fhir"])}
    )
    assert s.issuers[ISS].fhir_servers == ("https://ehr.example.org/fhir",)
    assert settings_from_env({"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384))}).issuers[ISS].fhir_servers is None


def test_auth_off_needs_no_issuers() -> None:
    assert not settings_from_env({"HOFHIR_AUTH": "off"}).enabled


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no issuer is trusted"),
        ({"HOFHIR_AUTH": "false"}, "'on' or 'off'"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_ALGORITHMS": "none"}, "unsupported JWT algorithms"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_ALGORITHMS": "HS256"}, "unsupported JWT algorithms"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_ALGORITHMS": "ES384,ES512"}, "unsupported JWT algorithms"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_ALGORITHMS": " , "}, "at least one algorithm"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_LEEWAY_SECONDS": "half a minute"}, "whole number"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_LEEWAY_SECONDS": "301"}, "between 0 and 300"),
        ({"HOFHIR_AUTH": "off", "HOFHIR_AUTH_MAX_TOKEN_LIFETIME_SECONDS": "0"}, "at least 1"),
        ({"HOFHIR_AUTH_ISSUERS": "{not json"}, "not valid JSON"),
        ({"HOFHIR_AUTH_ISSUERS": "[]"}, "JSON object"),
        ({"HOFHIR_AUTH_ISSUERS": "@/nonexistent/issuers.json"}, "cannot read"),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json()}, "needs 'jwks', 'jwks_url' or 'jku'"),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jwk={})}, "must be an object with"),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jku="https://a.example/jwks")}, "list of URLs"),
        (
            {"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384), fhir_servers="https://ehr.example.org/fhir")},
            "'fhir_servers' must be a list of http",
        ),
        (
            {"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384), fhir_servers=["ehr.example.org/fhir"])},
            "'fhir_servers' must be a list of http",
        ),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jwks={"keys": []})}, "no usable signing key"),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=[EC384.public_jwk])}, "JWK Set must be"),
        (
            {"HOFHIR_AUTH_ISSUERS": issuers_json(jwks=jwks(EC384), jwks_url="https://a.example/jwks")},
            "not both",
        ),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jwks_url="http://ehr.example.org/jwks")}, "must use https"),
        ({"HOFHIR_AUTH_ISSUERS": issuers_json(jku=["http://127.0.0.1:8080/jwks"])}, "must use https"),
        (
            {
                "HOFHIR_AUTH_ISSUERS": issuers_json(jku=["http://ehr.example.org/jwks"]),
                "HOFHIR_AUTH_ALLOW_HTTP_LOCALHOST": "on",
            },
            "must use https",
        ),
    ],
)
def test_bad_settings_raise_a_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from_env(environ)


def test_http_jwks_url_on_loopback_is_allowed_only_when_switched_on() -> None:
    environ = {"HOFHIR_AUTH_ISSUERS": issuers_json(jku=["http://localhost:8080/jwks", "http://[::1]/jwks"])}

    with pytest.raises(ValueError, match="must use https"):
        settings_from_env(environ)
    s = settings_from_env({**environ, "HOFHIR_AUTH_ALLOW_HTTP_LOCALHOST": "on"})
    assert s.issuers[ISS].jku_allowlist == ("http://localhost:8080/jwks", "http://[::1]/jwks")
