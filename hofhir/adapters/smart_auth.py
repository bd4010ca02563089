"""SMART Backend Services auth for the FHIR client: a private_key_jwt client assertion traded for a token."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Literal

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from hofhir.adapters.fhirclient import (
    CLIENT_ASSERTION_TYPE,
    RETRYABLE_STATUS,
    FhirAuthError,
    FhirUnavailable,
    json_or_none,
    retry_after_seconds,
)

log = logging.getLogger("hofhir.fhirclient")


class BackendServicesAuth:
    """SMART Backend Services (client credentials with a private_key_jwt assertion).

    Signs a short-lived client_assertion (RS384 with an RSA key, ES384 with a P-384 key), trades it at
    `token_url` for an access token, and caches that token until `refresh_margin` seconds before it
    expires. Thread-safe: concurrent callers share one token request.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: str | bytes,
        kid: str,
        alg: Literal["RS384", "ES384"] = "RS384",
        scope: str = "system/*.read",
        *,
        assertion_lifetime: int = 300,
        refresh_margin: float = 30.0,
    ) -> None:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        key = load_pem_private_key(pem, password=None)
        if alg == "RS384":
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("RS384 needs an RSA private key")
            self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        elif alg == "ES384":
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
                raise ValueError("ES384 needs an EC P-384 private key")
            self._key = key
        else:
            raise ValueError(f"unsupported alg {alg!r}: use RS384 or ES384")
        self.token_url = token_url
        self.client_id = client_id
        self.kid = kid
        self.alg = alg
        self.scope = scope
        self.assertion_lifetime = min(assertion_lifetime, 300)  # SMART: no more than five minutes
        self.refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"BackendServicesAuth(client_id={self.client_id!r}, token_url={self.token_url!r}, alg={self.alg})"

    def authorization(self, http: httpx.Client, timeout: httpx.Timeout) -> str:
        with self._lock:
            if self._access_token is None or time.monotonic() >= self._expires_at:
                self._fetch_token(http, timeout)
            return f"Bearer {self._access_token}"

    def refresh(self) -> bool:
        with self._lock:
            self._access_token = None
        return True

    def client_assertion(self) -> str:
        """A freshly signed client_assertion JWT for the token endpoint."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + self.assertion_lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    def _fetch_token(self, http: httpx.Client, timeout: httpx.Timeout) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        started = time.monotonic()
        try:
            response = http.post(self.token_url, data=form, headers={"Accept": "application/json"}, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise FhirUnavailable(None, None, f"token endpoint: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise FhirUnavailable(None, None, f"token endpoint: {type(exc).__name__}: {exc}") from exc
        log.info("SMART token request -> %s in %.0f ms", response.status_code, (time.monotonic() - started) * 1000)
        status = response.status_code
        if status in RETRYABLE_STATUS:
            raise FhirUnavailable(
                status, None, f"token endpoint: HTTP {status}", retry_after=retry_after_seconds(response.headers)
            )
        body = json_or_none(response.content)
        if status != 200:
            error = ""
            if isinstance(body, dict):
                error = f": {body.get('error', '')} {body.get('error_description', '')}".rstrip()
            raise FhirAuthError(status, None, f"token endpoint refused the client credentials: HTTP {status}{error}")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise FhirAuthError(status, None, "token endpoint answered without an access_token")
        if str(body.get("token_type", "bearer")).lower() != "bearer":
            raise FhirAuthError(status, None, f"token endpoint gave token_type {body.get('token_type')!r}")
        expires_in = float(body.get("expires_in") or 300)
        self._access_token = body["access_token"]
        self._expires_at = time.monotonic() + expires_in - min(self.refresh_margin, expires_in / 2)
