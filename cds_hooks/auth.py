"""Authenticating CDS Clients: the signed JWT that CDS Hooks 2.0 puts on every call.

Every call (discovery, hook services, feedback) carries ``Authorization: Bearer <JWT>``. We accept it
only when all of these hold, and otherwise raise :class:`AuthError`; the HTTP layer then answers a bare
401 and logs ``AuthError.reason`` (which never contains the token):

- header: ``alg`` is one of the configured algorithms (ES384 and RS384 by default; ES256 and RS256 only
  when configured; never ``none`` or HMAC), ``kid`` is present, ``typ`` if present is ``JWT``, no
  ``crit`` extensions;
- ``iss`` is an allowlisted issuer, and the key named by ``kid`` comes from that issuer's JWKS: static,
  fetched from its ``jwks_url``, or fetched from the token's ``jku`` when that exact URL is allowlisted
  for the issuer (an issuer that declares ``jku`` URLs gets any other ``jku`` rejected; for an issuer
  without them the header is only a hint and is ignored, so keys always come from configuration);
- the key's type and curve fit ``alg``; the signature verifies;
- ``aud`` is (or contains) exactly the URL that was called;
- ``exp``, ``iat`` and ``nbf`` (if present) are finite whole numbers (NaN, Infinity, strings, booleans
  and fractions are refused); ``exp`` is not past and ``iat``/``nbf`` are not in the future (with a small
  leeway), and ``exp - iat`` is at most the configured lifetime;
- ``jti`` is present and has not been seen from that issuer before (remembered until ``exp``).

Settings come from the service's Settings (see :func:`auth_settings`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jwt
import redis

from hofhir.adapters.settings import Settings
from hofhir.adapters.store import MemoryStore, OnceStore, RedisStore, StoreUnavailable

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHMS = frozenset({"ES384", "RS384", "ES256", "RS256"})
DEFAULT_ALGORITHMS = ("ES384", "RS384")  # the two the spec requires services to support
# NTP-synced hosts agree within a second; 30 s absorbs a badly synced EHR without stretching the
# spec's recommended 5-minute token life much.
DEFAULT_LEEWAY_SECONDS = 30
# The spec recommends 5-minute tokens; an hour tolerates generous clients while bounding both the
# damage a leaked token can do and how long a jti must be remembered.
DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 3600
MAX_TOKEN_LENGTH = 16_384  # a CDS Hooks JWT is well under 2 kB; refuse to parse megabytes
DEFAULT_REPLAY_PREFIX = "hofhir:auth:jti:"
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
_LOOPBACK_HOSTS = frozenset({"localhost"})


class AuthError(Exception):
    """The call is not authenticated. ``reason`` is for our logs only, never for the response."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayStoreUnavailable(Exception):
    """The replay store cannot be reached: a server fault (503), not a client's (401)."""


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerConfig:
    """Where one trusted issuer's public keys come from: a static JWKS or a ``jwks_url``, and/or
    the ``jku`` URLs its tokens may name."""

    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    jku_allowlist: tuple[str, ...] = ()
    # The fhirServer base URLs this issuer's calls may name (CDS Hooks security: a fhirServer belongs to
    # its issuer). None: no list (then private/loopback servers are refused, public ones allowed).
    fhir_servers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.jwks is not None and self.jwks_url is not None:
            raise ValueError("give either a static 'jwks' or a 'jwks_url', not both")
        if self.jwks is None and self.jwks_url is None and not self.jku_allowlist:
            raise ValueError("needs 'jwks', 'jwks_url' or 'jku'")
        if self.jwks is not None:
            keys = index_jwks(self.jwks)  # raises ValueError on a malformed set
            if not keys:
                raise ValueError("static 'jwks' has no usable signing key with a 'kid'")


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = True
    issuers: Mapping[str, IssuerConfig] = field(default_factory=dict)
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
    # None disables the bound (only the spec's 2011-2015 example token needs that).
    max_token_lifetime_seconds: int | None = DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
    # Plain http for JWKS URLs on localhost/loopback only: for tests and a local sandbox.
    allow_http_localhost: bool = False

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError("at least one algorithm is needed")
        unsupported = [a for a in self.algorithms if a not in SUPPORTED_ALGORITHMS]
        if unsupported:
            raise ValueError(f"unsupported JWT algorithms {unsupported}; allowed: {sorted(SUPPORTED_ALGORITHMS)}")
        if not 0 <= self.leeway_seconds <= 300:
            raise ValueError("leeway_seconds must be between 0 and 300")
        if self.max_token_lifetime_seconds is not None and self.max_token_lifetime_seconds < 1:
            raise ValueError("max_token_lifetime_seconds must be at least 1")
        if self.enabled and not self.issuers:
            raise ValueError(
                "JWT authentication is on but no issuer is trusted: set HOFHIR_AUTH_ISSUERS "
                "(or HOFHIR_AUTH=off for local use only)"
            )
        for iss, config in self.issuers.items():
            for url in ([config.jwks_url] if config.jwks_url else []) + list(config.jku_allowlist):
                try:
                    check_jwks_url(url, self.allow_http_localhost)
                except ValueError as exc:
                    raise ValueError(f"issuer {iss!r}: {exc}") from None


def check_jwks_url(url: str, allow_http_localhost: bool) -> None:
    """JWKS are fetched over HTTPS; plain http only to loopback, and only when allowed."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"JWKS URL {url!r} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_http_localhost and _is_loopback(parts.hostname):
        return
    raise ValueError(f"JWKS URL {url!r} must use https")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_settings(settings: Settings) -> AuthSettings:
    """The JWT checks configured by the service's Settings (parsed once, at start; see the README).

    - ``HOFHIR_AUTH``: ``on`` (default) or ``off`` (no JWT check; local use only).
    - ``HOFHIR_AUTH_ISSUERS``: JSON, or ``@/path/to/file.json``:
      ``{"<iss>": {"jwks": {"keys": [...]}} | {"jwks_url": "https://..."}, "jku": ["https://..."],
      "fhir_servers": ["https://ehr.example/fhir"]}``; with ``fhir_servers`` that issuer's calls may
      only name a ``fhirServer`` on the list.
    - ``HOFHIR_AUTH_ALGORITHMS``: comma list from ES384, RS384, ES256, RS256 (default ``ES384,RS384``).
    - ``HOFHIR_AUTH_LEEWAY_SECONDS``: clock leeway, 0-300 (default 30).
    - ``HOFHIR_AUTH_MAX_TOKEN_LIFETIME_SECONDS``: largest accepted ``exp - iat`` (default 3600).
    - ``HOFHIR_AUTH_ALLOW_HTTP_LOCALHOST``: ``on`` lets JWKS URLs on loopback use http (default off).

    Raises ValueError with a message that names what to set.
    """
    return AuthSettings(
        enabled=settings.auth,
        issuers=_issuers(settings.auth_issuers),
        algorithms=settings.auth_algorithms,
        leeway_seconds=settings.auth_leeway_seconds,
        max_token_lifetime_seconds=settings.auth_max_token_lifetime_seconds,
        allow_http_localhost=settings.auth_allow_http_localhost,
    )


def settings_from_env(environ: Mapping[str, str]) -> AuthSettings:
    """:func:`auth_settings` from a mapping of ``HOFHIR_*`` variables (tests, tools)."""
    return auth_settings(Settings.from_env(environ))


def _issuers(raw: Mapping[str, Any]) -> dict[str, IssuerConfig]:
    source = "HOFHIR_AUTH_ISSUERS"
    issuers = {}
    for iss, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - {"jwks", "jwks_url", "jku", "fhir_servers"}:
            raise ValueError(
                f"{source}: issuer {iss!r} must be an object with 'jwks', 'jwks_url' and/or 'jku'"
                " (and optionally 'fhir_servers')"
            )
        servers = entry.get("fhir_servers")
        if servers is not None and (
            not isinstance(servers, list)
            or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in servers)
        ):
            raise ValueError(f"{source}: issuer {iss!r}: 'fhir_servers' must be a list of http(s) base URLs")
        jku = entry.get("jku", [])
        if not isinstance(jku, list) or not all(isinstance(u, str) for u in jku):
            raise ValueError(f"{source}: issuer {iss!r}: 'jku' must be a list of URLs")
        jwks_url = entry.get("jwks_url")
        if jwks_url is not None and not isinstance(jwks_url, str):
            raise ValueError(f"{source}: issuer {iss!r}: 'jwks_url' must be a URL")
        try:
            issuers[iss] = IssuerConfig(
                jwks=entry.get("jwks"),
                jwks_url=jwks_url,
                jku_allowlist=tuple(jku),
                fhir_servers=tuple(servers) if servers is not None else None,
            )
        except ValueError as exc:
            raise ValueError(f"{source}: issuer {iss!r}: {exc}") from None
    return issuers


def index_jwks(jwks: object) -> dict[str, dict[str, Any]]:
    """Signing keys of a JWK Set by ``kid``. Keys without ``kid`` or meant for encryption are
    skipped (a token must name its key); a set that is not ``{"keys": [...]}`` raises ValueError."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError('a JWK Set must be an object {"keys": [...]}')
    keys: dict[str, dict[str, Any]] = {}
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("EC", "RSA"):
            continue
        kid = key.get("kid")
        if isinstance(kid, str) and kid and key.get("use", "sig") == "sig":
            keys.setdefault(kid, key)
    return keys


# --- public keys --------------------------------------------------------------------------------


@dataclass
class _CachedJwks:
    keys: dict[str, dict[str, Any]]
    fetched_at: float | None  # last successful fetch
    attempted_at: float  # last attempt, successful or not: the refetch rate limit counts from here


class JwksCache:
    """JWK Sets fetched over HTTPS, cached per URL.

    A set is refetched when older than ``ttl_seconds`` or when a token names an unknown ``kid``; either
    way at most once per ``min_refetch_seconds`` per URL, so a stream of forged kids cannot make us
    hammer the issuer. When a refetch fails the keys we already have stay in use.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = 600,
        min_refetch_seconds: float = 30,
        timeout_seconds: float = 2.0,
        max_bytes: int = 100_000,
        allow_http_localhost: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._max_bytes = max_bytes
        self._allow_http_localhost = allow_http_localhost
        self._clock = clock
        # Redirects are not followed: the allowlisted URL is the one that must answer.
        self._http = httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._entries: dict[str, _CachedJwks] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def find_key(self, url: str, kid: str) -> dict[str, Any] | None:
        with self._lock_for(url):
            entry = self._entries.get(url)
            now = self._clock()
            if self._should_fetch(entry, kid, now):
                entry = self._entries[url] = self._fetch(url, entry, now)
            return entry.keys.get(kid) if entry is not None else None

    def close(self) -> None:
        self._http.close()

    def _should_fetch(self, entry: _CachedJwks | None, kid: str, now: float) -> bool:
        if entry is None:
            return True
        if now - entry.attempted_at < self._min_refetch:
            return False
        stale = entry.fetched_at is None or now - entry.fetched_at >= self._ttl
        return stale or kid not in entry.keys

    def _lock_for(self, url: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(url, threading.Lock())

    def _fetch(self, url: str, previous: _CachedJwks | None, now: float) -> _CachedJwks:
        try:
            check_jwks_url(url, self._allow_http_localhost)
            with self._http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise ValueError(f"larger than {self._max_bytes} bytes")
            keys = index_jwks(json.loads(body))
        except (httpx.HTTPError, ValueError) as exc:  # JSONDecodeError is a ValueError
            logger.warning("JWKS fetch from %s failed: %s", url, exc)
            if previous is None:
                return _CachedJwks(keys={}, fetched_at=None, attempted_at=now)
            previous.attempted_at = now
            return previous
        return _CachedJwks(keys=keys, fetched_at=now, attempted_at=now)


# --- replay -------------------------------------------------------------------------------------


class ReplayStore(Protocol):
    def first_use(self, issuer: str, jti: str, ttl_seconds: int) -> bool:
        """Record the (issuer, jti) pair for ``ttl_seconds``; False if it was already recorded."""
        ...


def replay_key(issuer: str, jti: str) -> str:
    # Hashing gives a fixed-length key and keeps an issuer containing a separator from colliding.
    return hashlib.sha256(json.dumps([issuer, jti]).encode()).hexdigest()


class StoreReplayStore:
    """(issuer, jti) pairs recorded with the store's set-if-absent, which checks and records in one
    atomic step: Redis is shared by every web process; the embedded mode's SQLite file by every process
    of the host (gunicorn workers); memory by one process (tests)."""

    def __init__(self, store: OnceStore, prefix: str = "auth:jti:") -> None:
        self._store = store
        self._prefix = prefix

    def first_use(self, issuer: str, jti: str, ttl_seconds: int) -> bool:
        try:
            return self._store.set_if_absent(self._prefix + replay_key(issuer, jti), "1", ttl_seconds)
        except StoreUnavailable as exc:
            raise ReplayStoreUnavailable(f"replay store unavailable: {exc}") from exc


def MemoryReplayStore(clock: Callable[[], float] = time.monotonic) -> StoreReplayStore:
    """For one process (tests): thread-safe, entries expire."""
    return StoreReplayStore(MemoryStore(clock=clock))


def RedisReplayStore(client: redis.Redis[Any], prefix: str = DEFAULT_REPLAY_PREFIX) -> StoreReplayStore:
    """Shared by every web process: ``SET key NX EX ttl``."""
    return StoreReplayStore(RedisStore(client, prefix=""), prefix)


# --- verification -------------------------------------------------------------------------------


class Verifier:
    def __init__(self, settings: AuthSettings, jwks_cache: JwksCache, replay_store: ReplayStore) -> None:
        self.settings = settings
        self._cache = jwks_cache
        self._replay = replay_store
        self._static_keys = {
            iss: index_jwks(config.jwks) for iss, config in settings.issuers.items() if config.jwks is not None
        }

    def authenticate(
        self, authorization_header: str | None, audience: str, *, now: float | None = None
    ) -> dict[str, Any]:
        """Check an ``Authorization`` header against the URL that was called; return the claims.

        With authentication switched off (``HOFHIR_AUTH=off``) this accepts anything and returns {}.
        Raises AuthError (answer a bare 401) or ReplayStoreUnavailable (answer 503).
        """
        if not self.settings.enabled:
            return {}
        scheme, _, token = (authorization_header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("no bearer token")
        return self.verify(token.strip(), audience, now=now)

    def verify(self, token: str, audience: str, *, now: float | None = None) -> dict[str, Any]:
        """Verify a CDS Hooks JWT for ``audience`` (the exact URL called) at ``now`` (Unix seconds;
        default the current time) and return its claims. Raises AuthError."""
        now = time.time() if now is None else now
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("token too large")
        try:
            header = jwt.get_unverified_header(token)
            # Read unverified only to choose the issuer's keys; the signature is checked below.
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {type(exc).__name__}") from None

        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.settings.algorithms:
            raise AuthError(f"algorithm {_show(alg)} not allowed")
        if not isinstance(kid, str) or not kid:
            raise AuthError("header has no kid")
        if "typ" in header and (not isinstance(header["typ"], str) or header["typ"].upper() != "JWT"):
            raise AuthError(f"typ {_show(header['typ'])} is not JWT")  # typ is case-insensitive (RFC 7515)
        if "crit" in header:
            raise AuthError("critical header extensions are not supported")

        iss = unverified.get("iss")
        if not isinstance(iss, str) or iss not in self.settings.issuers:
            raise AuthError(f"issuer {_show(iss)} not allowed")
        config = self.settings.issuers[iss]
        jwk = self._find_key(iss, config, kid, header.get("jku"))
        if jwk is None:
            raise AuthError(f"no key {_show(kid)} for issuer {_show(iss)}")
        if jwk.get("alg", alg) != alg:
            raise AuthError(f"key {_show(kid)} is for {_show(jwk.get('alg'))}, token uses {alg}")

        try:
            key = jwt.PyJWK(jwk, algorithm=alg)  # fails when the key type or curve does not fit alg
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "enforce_minimum_key_length": True,
                    # Times are checked below against our clock, which tests can set.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(f"token rejected: {type(exc).__name__}: {_show(str(exc))}") from None

        exp = self._check_times(claims, now)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthError("jti is empty")
        ttl = max(1, math.ceil(exp - now + self.settings.leeway_seconds))
        if not self._replay.first_use(iss, jti, ttl):
            raise AuthError(f"jti replayed for issuer {_show(iss)}")
        return claims

    def _find_key(self, iss: str, config: IssuerConfig, kid: str, jku: object) -> dict[str, Any] | None:
        if jku is not None:
            if isinstance(jku, str) and jku in config.jku_allowlist:
                return self._cache.find_key(jku, kid)
            if config.jku_allowlist:
                raise AuthError(f"jku {_show(jku)} not allowed for issuer {_show(iss)}")
            # This issuer's keys come from configuration; its jku hint is never fetched.
        if iss in self._static_keys:
            return self._static_keys[iss].get(kid)
        if config.jwks_url is not None:
            return self._cache.find_key(config.jwks_url, kid)
        return None  # the issuer only signs with jku-published keys and this token names none

    def _check_times(self, claims: Mapping[str, Any], now: float) -> float:
        leeway = self.settings.leeway_seconds
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        # NumericDate claims as finite whole numbers: NaN compares false with everything, so a NaN
        # would skip the expiry, lifetime and nbf checks; Infinity would make the replay TTL infinite.
        if not all(_whole_seconds(t) for t in (exp, iat, nbf)):
            raise AuthError("exp, iat and nbf must be finite whole numbers of seconds")
        if exp <= now - leeway:
            raise AuthError("token expired")
        if iat > now + leeway or nbf > now + leeway:
            raise AuthError("token issued in the future")
        if exp <= iat:
            raise AuthError("exp is not after iat")
        limit = self.settings.max_token_lifetime_seconds
        if limit is not None and exp - iat > limit:
            raise AuthError(f"token lifetime {exp - iat:.0f} s exceeds {limit} s")
        return float(exp)


def build_verifier(settings: AuthSettings, replay: OnceStore | None = None) -> Verifier:
    """The verifier the service runs with, its replay state in `replay` (the service's Redis store, or
    the host's SQLite file in the embedded mode; memory when not given). Logs at start whether and how
    calls are authenticated."""
    if settings.enabled:
        logger.info(
            "JWT authentication on: issuers %s, algorithms %s",
            sorted(settings.issuers),
            ",".join(settings.algorithms),
        )
    else:
        logger.warning("JWT authentication is OFF (HOFHIR_AUTH=off): any caller is accepted. Local use only.")
    store = StoreReplayStore(replay if replay is not None else MemoryStore())
    return Verifier(settings, JwksCache(allow_http_localhost=settings.allow_http_localhost), store)


def _whole_seconds(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**53
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _show(value: object) -> str:
    """A short, quoted rendering of an untrusted value for a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
