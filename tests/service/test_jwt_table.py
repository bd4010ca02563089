"""The JWT attack table (issue 10) through the HTTP app: every forged, confused, stale, odd or replayed token
is refused with a bare 401 (no body, nothing said about why), and no token ever reaches a log line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask.testing import FlaskClient

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from tests.dates import to_today
from tests.vignettes import load

ISS = "https://ehr.example.org"
JKU_ISS = "https://jku.example.org"
LISTED_ISS = "https://listed.example.org"  # names the one fhirServer its calls may use
LISTED_SERVER = "http://127.0.0.1:9/fhir"  # loopback, refused unless listed; nothing listens (fetch fails)
URL = "http://localhost/cds-services/hofhir-patient-view"
PATH = "/cds-services/hofhir-patient-view"

EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = ec.generate_private_key(ec.SECP384R1())
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.ECAlgorithm if alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
    return json.loads(algorithm.to_jwk(key.public_key())) | {"kid": kid, "alg": alg, "use": "sig"}


ISSUERS = {
    ISS: {"jwks": {"keys": [public_jwk(EC_KEY, "ec", "ES384"), public_jwk(RSA_KEY, "rsa", "RS384")]}},
    JKU_ISS: {"jwks": {"keys": [public_jwk(EC_KEY, "ec", "ES384")]}, "jku": ["https://jku.example.org/jwks.json"]},
    LISTED_ISS: {"jwks": {"keys": [public_jwk(EC_KEY, "ec", "ES384")]}, "fhir_servers": [LISTED_SERVER]},
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISS, "aud": URL, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def es384(payload: dict[str, Any] | None = None, key: Any = EC_KEY, **header: Any) -> str:
    return jwt.encode(claims() if payload is None else payload, key, algorithm="ES384", headers={"kid": "ec", **header})


def unsigned(alg: str, kid: str = "ec", payload: dict[str, Any] | None = None, signature: bytes = b"") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims() if payload is None else payload).encode())
    return f"{head}.{body}.{b64(signature)}"


def hmac_with_public_key(alg: str, key: Any, kid: str) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims()).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    return f"{head}.{body}.{b64(hmac.new(pem, f'{head}.{body}'.encode(), digest).digest())}"


def raw_claims(text: str) -> str:
    """A validly signed ES384 token whose payload is exactly `text` (NaN and Infinity are not JSON)."""
    head = b64(json.dumps({"alg": "ES384", "typ": "JWT", "kid": "ec"}).encode())
    body = b64(text.encode())
    signature = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA384).sign(f"{head}.{body}".encode(), EC_KEY)
    return f"{head}.{body}.{b64(signature)}"


def numeric(claim: str, literal: str, **others: Any) -> str:
    """Good claims with `claim` written as the bare `literal` (NaN, Infinity, 1e400: Python's json reads them)."""
    base = {k: v for k, v in claims(**others).items() if k != claim}
    return raw_claims(json.dumps(base)[:-1] + f', "{claim}": {literal}}}')


def tampered_payload() -> str:
    head, _, sig = es384().split(".")
    return f"{head}.{b64(json.dumps(claims(aud=[URL, 'https://evil.example'])).encode())}.{sig}"


def tampered_signature() -> str:
    head, body, sig = es384().split(".")
    flipped = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    flipped[5] ^= 0x01
    return f"{head}.{body}.{b64(bytes(flipped))}"


def rs384_with_kid_of_the_ec_key() -> str:
    return jwt.encode(claims(), RSA_KEY, algorithm="RS384", headers={"kid": "ec"})


def es384_with_kid_of_the_rsa_key() -> str:
    return jwt.encode(claims(), EC_KEY, algorithm="ES384", headers={"kid": "rsa"})


def es256_not_configured() -> str:
    return jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "ec"})


def embedded_jwk() -> str:
    # The attacker signs with its own key and ships the public half in the header (CVE-2018-0114 style).
    return es384(key=ATTACKER_EC, jwk=public_jwk(ATTACKER_EC, "ec", "ES384"))


def embedded_x5c() -> str:
    return es384(key=ATTACKER_EC, x5c=[b64(b"not a certificate but it would be the attacker's")])


def x5u_elsewhere() -> str:
    return es384(key=ATTACKER_EC, x5u="https://evil.example/cert.pem")


def jku_off_the_allowlist() -> str:
    return es384(claims(iss=JKU_ISS), key=ATTACKER_EC, jku="https://evil.example/jwks.json")


def long_lived() -> str:
    now = int(time.time())
    return es384(claims(iat=now, exp=now + 10 * 365 * 86400))


ATTACKS: dict[str, Callable[[], str]] = {
    "alg none": lambda: unsigned("none"),
    "alg none with a signature": lambda: unsigned("none", signature=b"x" * 96),
    "HS256 keyed with the RSA public key": lambda: hmac_with_public_key("HS256", RSA_KEY, "rsa"),
    "HS384 keyed with the EC public key": lambda: hmac_with_public_key("HS384", EC_KEY, "ec"),
    "RS384 naming the EC key": rs384_with_kid_of_the_ec_key,
    "ES384 naming the RSA key": es384_with_kid_of_the_rsa_key,
    "ES256 not configured": es256_not_configured,
    "PS384 not supported": lambda: jwt.encode(claims(), RSA_KEY, algorithm="PS384", headers={"kid": "rsa"}),
    "embedded jwk": embedded_jwk,
    "embedded x5c": embedded_x5c,
    "x5u elsewhere": x5u_elsewhere,
    "jku off the allowlist": jku_off_the_allowlist,
    "unknown kid": lambda: es384(kid="nobody"),
    "no kid": lambda: jwt.encode(claims(), EC_KEY, algorithm="ES384"),
    "signed by another key with the right kid": lambda: es384(key=ATTACKER_EC),
    "wrong aud": lambda: es384(claims(aud="http://localhost/cds-services/hofhir-order-sign")),
    "aud of the feedback endpoint": lambda: es384(claims(aud=URL + "/feedback")),
    "missing aud": lambda: es384({k: v for k, v in claims().items() if k != "aud"}),
    "aud as a number": lambda: es384(claims(aud=5)),
    "wrong iss": lambda: es384(claims(iss="https://evil.example")),
    "missing iss": lambda: es384({k: v for k, v in claims().items() if k != "iss"}),
    "iss as a list": lambda: raw_claims(json.dumps(claims(iss=[ISS]))),
    "expired": lambda: es384(claims(iat=int(time.time()) - 600, exp=int(time.time()) - 120)),
    "missing exp": lambda: es384({k: v for k, v in claims().items() if k != "exp"}),
    "iat in the future": lambda: es384(claims(iat=int(time.time()) + 600, exp=int(time.time()) + 900)),
    "missing iat": lambda: es384({k: v for k, v in claims().items() if k != "iat"}),
    "nbf in the future": lambda: es384(claims(nbf=int(time.time()) + 600)),
    "missing jti": lambda: es384({k: v for k, v in claims().items() if k != "jti"}),
    "empty jti": lambda: es384(claims(jti="")),
    "jti as a number": lambda: es384(claims(jti=42)),
    "exp NaN": lambda: numeric("exp", "NaN"),
    "exp Infinity": lambda: numeric("exp", "Infinity"),
    "iat NaN with a 10-year exp": lambda: numeric("iat", "NaN", exp=int(time.time()) + 10 * 365 * 86400),
    "iat -Infinity": lambda: numeric("iat", "-Infinity"),
    "nbf NaN": lambda: numeric("nbf", "NaN"),
    "nbf Infinity": lambda: numeric("nbf", "Infinity"),
    "exp as a string": lambda: es384(claims(exp=str(int(time.time()) + 300))),
    "iat as a string": lambda: es384(claims(iat="now")),
    "exp as true": lambda: es384(claims(exp=True)),
    "exp as a fraction": lambda: es384(claims(exp=time.time() + 300.5)),
    "exp 1e400": lambda: numeric("exp", "1e400"),
    "lifetime of ten years": long_lived,
    "tampered payload": tampered_payload,
    "tampered signature": tampered_signature,
    "not a JWT": lambda: "not-a-jwt",
    "two parts": lambda: ".".join(es384().split(".")[:2]),
    "header not JSON": lambda: b64(b"{nope") + "." + es384().split(".", 1)[1],
    "payload a JSON array": lambda: raw_claims("[1, 2, 3]"),
    "huge": lambda: es384(claims(pad="x" * 20_000)),
}


# Why each is refused: a fragment of the reason the service logs (the caller never sees it).
REASONS = {
    "ES256 not configured": "algorithm 'ES256' not allowed",
    "ES384 naming the RSA key": "is for 'RS384'",
    "HS256 keyed with the RSA public key": "algorithm 'HS256' not allowed",
    "HS384 keyed with the EC public key": "algorithm 'HS384' not allowed",
    "PS384 not supported": "algorithm 'PS384' not allowed",
    "RS384 naming the EC key": "is for 'ES384'",
    "alg none": "algorithm 'none' not allowed",
    "alg none with a signature": "algorithm 'none' not allowed",
    "aud as a number": "InvalidAudienceError",
    "aud of the feedback endpoint": "InvalidAudienceError",
    "embedded jwk": "InvalidSignatureError",
    "embedded x5c": "InvalidSignatureError",
    "empty jti": "jti is empty",
    "exp 1e400": "finite whole numbers",
    "exp Infinity": "finite whole numbers",
    "exp NaN": "finite whole numbers",
    "exp as a fraction": "finite whole numbers",
    "exp as a string": "finite whole numbers",
    "exp as true": "finite whole numbers",
    "expired": "token expired",
    "header not JSON": "malformed token",
    "huge": "token too large",
    "iat -Infinity": "finite whole numbers",
    "iat NaN with a 10-year exp": "finite whole numbers",
    "iat as a string": "finite whole numbers",
    "iat in the future": "issued in the future",
    "iss as a list": "not allowed",
    "jku off the allowlist": "jku 'https://evil.example/jwks.json' not allowed",
    "jti as a number": "InvalidJTIError",
    "lifetime of ten years": "exceeds 3600 s",
    "missing aud": '"aud" claim',
    "missing exp": '"exp" claim',
    "missing iat": '"iat" claim',
    "missing iss": "issuer None not allowed",
    "missing jti": '"jti" claim',
    "nbf Infinity": "finite whole numbers",
    "nbf NaN": "finite whole numbers",
    "nbf in the future": "issued in the future",
    "no kid": "header has no kid",
    "not a JWT": "malformed token",
    "payload a JSON array": "malformed token",
    "signed by another key with the right kid": "InvalidSignatureError",
    "tampered payload": "InvalidSignatureError",
    "tampered signature": "InvalidSignatureError",
    "two parts": "malformed token",
    "unknown kid": "no key 'nobody'",
    "wrong aud": "InvalidAudienceError",
    "wrong iss": "issuer 'https://evil.example' not allowed",
    "x5u elsewhere": "InvalidSignatureError",
}


@pytest.fixture(scope="module")
def secured() -> FlaskClient:
    env = {"HOFHIR_AUTH": "on", "HOFHIR_AUTH_ISSUERS": json.dumps(ISSUERS)}
    return create_app(Settings.from_env(env)).test_client()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log line of the service, at every level (its loggers do not propagate to the root)."""
    loggers = [logging.getLogger(name) for name in ("hofhir", "cds_hooks", "celery", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(caplog.handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(caplog.handler)
            lg.setLevel(level)


def body() -> dict[str, Any]:
    request, expect = load("s01")
    return to_today(request, expect["now"])


def call(client: FlaskClient, token: str) -> Any:
    return client.post(PATH, json=body(), headers={"Authorization": f"Bearer {token}"})


def never_logged(token: str, text: str) -> None:
    assert token not in text
    for part in token.split("."):
        assert len(part) < 16 or part not in text


def test_a_good_token_is_accepted(secured: FlaskClient) -> None:
    assert call(secured, es384()).status_code == 200
    rs = jwt.encode(claims(), RSA_KEY, algorithm="RS384", headers={"kid": "rsa"})
    assert call(secured, rs).status_code == 200


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_is_a_bare_401_and_never_logged(
    secured: FlaskClient, logs: pytest.LogCaptureFixture, attack: str
) -> None:
    token = ATTACKS[attack]()
    response = call(secured, token)
    assert response.status_code == 401, attack
    assert response.data == b""
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert REASONS[attack] in logs.text  # refused for the right reason, logged for the operator...
    never_logged(token, logs.text)  # ...never the token


def test_the_table_gives_every_attack_its_reason() -> None:
    assert set(REASONS) == set(ATTACKS)


def test_a_replayed_token_is_a_bare_401(secured: FlaskClient, logs: pytest.LogCaptureFixture) -> None:
    token = es384()
    assert call(secured, token).status_code == 200
    again = call(secured, token)
    assert again.status_code == 401 and again.data == b""
    assert "replayed" in logs.text
    never_logged(token, logs.text)


def test_no_token_and_other_schemes_are_bare_401s(secured: FlaskClient) -> None:
    for header in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = secured.post(PATH, json=body(), headers=header)
        assert response.status_code == 401 and response.data == b""


def without_prefetch(server: str) -> dict[str, Any]:
    request = body()
    request.pop("prefetch")
    request["fhirServer"] = server
    return request


@pytest.mark.parametrize(
    ("issuer", "server", "words"),
    [
        (LISTED_ISS, LISTED_SERVER, "could not fetch prefetch"),  # on its list, loopback or not: fetched
        (LISTED_ISS, "https://ehr.example.org/fhir", "not one this caller's issuer may name"),
        (ISS, LISTED_SERVER, "loopback, private or link-local"),  # no list: loopback refused
    ],
)
def test_a_fhir_server_is_fetched_only_where_the_callers_issuer_allows(
    secured: FlaskClient, issuer: str, server: str, words: str
) -> None:
    token = es384(claims(iss=issuer))
    response = secured.post(PATH, json=without_prefetch(server), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 412
    assert words in response.json["issue"][0]["diagnostics"]
