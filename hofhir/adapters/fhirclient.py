"""FHIR R4 REST client: reads, paged searches, writes and transactions, with auth, deadlines and retries.

Synchronous, on httpx. One `FhirClient` per FHIR server; it is safe to share between threads.

- Deadlines: every call takes `deadline=`, an absolute `time.monotonic()` value (see `deadline_in`), so
  a hook call can bound all its fetches with one budget; attempts, pages and backoff sleeps all stay
  inside it, and running out raises `FhirDeadlineExceeded`.
- Retries: 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
  (honouring Retry-After); other 4xx raise at once. A request that is not idempotent (plain create,
  transaction) is retried only when the server cannot have acted on it (429, 503, no connection).
- Auth: `BearerToken` (a static token) or `BackendServicesAuth` (SMART Backend Services client
  credentials with a signed JWT assertion; the access token is cached and refreshed once on 401).
- Logging: method, resource type, status and timings only; never tokens, assertions or resource content.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpcore
import httpx
import orjson

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

Resource: TypeAlias = dict[str, Any]
ParamValue: TypeAlias = str | int | float | bool
SearchParams: TypeAlias = Mapping[str, ParamValue | Sequence[ParamValue]] | Sequence[tuple[str, ParamValue]]

_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# The server refused these before doing anything, so even a non-idempotent request may be sent again.
_NOT_PROCESSED_STATUS = frozenset({429, 503})


def deadline_in(seconds: float) -> float:
    """An absolute deadline `seconds` from now, on the clock `deadline=` arguments use."""
    return time.monotonic() + seconds


# ---- errors --------------------------------------------------------------------------------------
class FhirError(Exception):
    """A FHIR interaction failed. `status` is the HTTP status (None when no answer came);
    `operation_outcome` is the OperationOutcome the server sent, if any."""

    def __init__(self, status: int | None, operation_outcome: Resource | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.operation_outcome = operation_outcome
        self.message = message


class FhirNotFound(FhirError):
    """404 or 410: the resource does not exist (or no longer)."""


class FhirAuthError(FhirError):
    """401/403 from the FHIR server, or the token endpoint refused the client's credentials."""


class FhirPagingError(FhirError):
    """A search's paging cannot be trusted to be complete: a loop, too many pages, or a next link
    pointing away from the FHIR server (never followed, so a token never leaves the server)."""


class FhirUnavailable(FhirError):
    """No usable answer: connection errors, timeouts, 429 or 5xx, still failing after the retries.
    `retry_after` is the server's Retry-After in seconds, when it sent one."""

    def __init__(
        self,
        status: int | None,
        operation_outcome: Resource | None,
        message: str,
        *,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(status, operation_outcome, message)
        self.retry_after = retry_after
        self.retryable = retryable


class FhirDeadlineExceeded(FhirUnavailable):
    """The call's deadline passed before an answer came (or before a retry could be made)."""


# ---- auth ----------------------------------------------------------------------------------------
class Auth(Protocol):
    """Supplies the Authorization header of FHIR requests."""

    def authorization(self, http: httpx.Client, timeout: httpx.Timeout) -> str:
        """The Authorization header value; may call a token endpoint with `http` within `timeout`."""
        ...

    def refresh(self) -> bool:
        """Forget cached credentials after a 401; True if asking again may give ones that work."""
        ...


class BearerToken:
    """A static bearer token (e.g. the CDS Hooks `fhirAuthorization.access_token`)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty bearer token")
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(<redacted>)"

    def authorization(self, http: httpx.Client, timeout: httpx.Timeout) -> str:
        return f"Bearer {self._token}"

    def refresh(self) -> bool:
        return False


# ---- the client ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Answer:
    """One HTTP answer, read whole."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to the addresses a host name was checked at, never to what the name resolves to later: a
    name that answered with a public address for the check and with 127.0.0.1 for the connection (DNS
    rebinding) still reaches only the checked address. Any other host is refused (the client talks only to
    its own server). TLS still verifies the certificate against the host name (httpcore sends the name,
    not the address, as SNI)."""

    def __init__(self, host: str, addresses: Sequence[str]) -> None:
        self.host = host.lower()
        self.addresses = tuple(addresses)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        if host.lower().strip("[]") != self.host.strip("[]") or not self.addresses:
            raise httpcore.ConnectError(f"{host} is not the host this client was pinned to")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self.addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class FhirClient:
    """A FHIR R4 server's REST API.

    `connect_to`: connect only to these addresses (the ones a policy checked the base URL's host name at),
    whatever the name resolves to later; None resolves the name as usual.

    `timeout` bounds each attempt (seconds); `retries` is how many times a failed attempt is repeated
    (so at most retries + 1 attempts); the n-th retry waits about `backoff * 2**(n-1)` seconds (with
    jitter, at most `max_backoff`), or what Retry-After asks if that is longer. A Retry-After longer than
    `max_backoff` is not waited for: the call raises FhirUnavailable carrying it, for the caller to
    schedule (a Celery retry countdown).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        max_backoff: float = 10.0,
        user_agent: str = "hofhir",
        verify: ssl.SSLContext | str | bool = True,
        connect_to: Sequence[str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("FHIR base URL must be an absolute http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._origin = (parts.scheme, parts.netloc.lower())
        transport: httpx.HTTPTransport | None = None
        if connect_to is not None:
            transport = httpx.HTTPTransport(verify=verify)
            # httpx has no public hook for how a connection finds its address; its pool keeps the backend here.
            transport._pool._network_backend = _PinnedBackend(parts.hostname or "", connect_to)
        self._http = httpx.Client(
            headers={"Accept": FHIR_JSON, "User-Agent": user_agent},
            follow_redirects=False,
            timeout=timeout,
            verify=verify,
            transport=transport,
            trust_env=connect_to is None,  # a pinned client never goes through an environment's proxy either
        )

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={self.auth!r})"

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- reads ---------------------------------------------------------------------------------
    def read(self, resource_type: str, resource_id: str, *, deadline: float | None = None) -> Resource:
        """GET [base]/Type/id. Raises FhirNotFound when it does not exist."""
        _check_type(resource_type)
        _check_id(resource_id)
        return self._resource(
            self._request(
                "GET", f"{self.base_url}/{resource_type}/{resource_id}", op=f"read {resource_type}", deadline=deadline
            ),
            resource_type,
        )

    def capabilities(self, *, deadline: float | None = None) -> Resource:
        """GET [base]/metadata (the CapabilityStatement)."""
        return self._resource(
            self._request("GET", f"{self.base_url}/metadata", op="capabilities", deadline=deadline),
            "CapabilityStatement",
        )

    def search_bundle(
        self, resource_type: str, params: SearchParams | None = None, *, deadline: float | None = None
    ) -> Resource:
        """The first page of GET [base]/Type?params, as the searchset Bundle."""
        return next(self.pages(resource_type, params, deadline=deadline))

    def pages(
        self,
        resource_type: str,
        params: SearchParams | None = None,
        *,
        max_pages: int = 100,
        deadline: float | None = None,
    ) -> Iterator[Resource]:
        """Each page (searchset Bundle) of a search, following Bundle.link `next`.

        Relative next links are resolved against the base. Raises FhirPagingError on a next link already
        fetched (a loop), on a next link to another server, and when more than `max_pages` pages come.
        """
        _check_type(resource_type)
        op = f"search {resource_type}"
        url = f"{self.base_url}/{resource_type}"
        query: list[tuple[str, str]] | None = _query(params)
        fetched: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for page_number in range(1, max_pages + 1):
            response = self._request("GET", url, op=op, params=query, deadline=deadline)
            fetched.add(_page_key(response.url))
            bundle = self._resource(response, "Bundle")
            self_link = _link(bundle, "self")
            if self_link is not None:
                fetched.add(_page_key(urljoin(self.base_url + "/", self_link)))
            yield bundle
            next_link = _link(bundle, "next")
            if next_link is None:
                return
            url = self._resolve_link(next_link, op)
            query = None  # a next link carries its own query
            if _page_key(url) in fetched:
                raise FhirPagingError(None, None, f"FHIR {op}: page {page_number}'s next link repeats a page (loop)")
        raise FhirPagingError(None, None, f"FHIR {op}: more than {max_pages} pages; stopped")

    def search(
        self,
        resource_type: str,
        params: SearchParams | None = None,
        *,
        max_pages: int = 100,
        deadline: float | None = None,
    ) -> list[Resource]:
        """Every resource a search matches (and any it `_include`s), over all pages, each once.

        OperationOutcome entries (search.mode "outcome") are left out.
        """
        resources: list[Resource] = []
        seen: set[tuple[str, str]] = set()
        for bundle in self.pages(resource_type, params, max_pages=max_pages, deadline=deadline):
            for entry in bundle.get("entry") or ():
                resource = entry.get("resource")
                if not isinstance(resource, dict) or (entry.get("search") or {}).get("mode") == "outcome":
                    continue
                key = (str(resource.get("resourceType")), str(resource.get("id")))
                if resource.get("id") is not None:
                    if key in seen:  # offset paging over changing data can repeat an entry
                        continue
                    seen.add(key)
                resources.append(resource)
        return resources

    def batch_read(
        self,
        reads: Sequence[tuple[str, str]] = (),
        searches: Sequence[tuple[str, SearchParams]] = (),
        *,
        deadline: float | None = None,
    ) -> tuple[list[Resource], list[list[Resource]]]:
        """Reads (type, id) and searches (type, params) in one batch Bundle: one round trip.

        Returns the resources read and, per search, every resource it matches (as `search` does). A
        search whose batch answer is incomplete (a next link, or a `total` above what came: servers do
        not page inside a batch) is finished with ordinary paged searches. An entry that failed raises
        what the single request would (FhirNotFound, FhirUnavailable...). A server that refuses batches
        (400/404/405/422/501 on the batch itself) gets the single requests instead.
        """
        for resource_type, resource_id in reads:
            _check_type(resource_type)
            _check_id(resource_id)
        for resource_type, _ in searches:
            _check_type(resource_type)
        entries = [{"request": {"method": "GET", "url": f"{rtype}/{rid}"}} for rtype, rid in reads]
        entries += [
            {"request": {"method": "GET", "url": f"{rtype}?{urlencode(_query(params))}"}} for rtype, params in searches
        ]
        try:
            answer = self.transaction(
                {"resourceType": "Bundle", "type": "batch", "entry": entries}, idempotent=True, deadline=deadline
            )
        except (FhirUnavailable, FhirAuthError):
            raise
        except FhirError as exc:
            if exc.status not in (400, 404, 405, 422, 501):
                raise
            log.info("FHIR batch refused (HTTP %s): sending the requests one by one", exc.status)
            found = [self.read(rtype, rid, deadline=deadline) for rtype, rid in reads]
            return found, [self.search(rtype, params, deadline=deadline) for rtype, params in searches]
        answers = [e for e in answer.get("entry") or () if isinstance(e, dict)]
        if len(answers) != len(entries):
            raise FhirError(None, None, f"FHIR batch: {len(answers)} answers to {len(entries)} requests")
        found = [_batch_entry(answers[i], rtype, f"read {rtype}") for i, (rtype, _) in enumerate(reads)]
        results: list[list[Resource]] = []
        for (rtype, params), entry in zip(searches, answers[len(reads) :], strict=True):
            bundle = _batch_entry(entry, "Bundle", f"search {rtype}")
            matches = [
                e["resource"]
                for e in bundle.get("entry") or ()
                if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)
                and (e.get("search") or {}).get("mode") != "outcome"
            ]
            total = bundle.get("total")
            if _link(bundle, "next") is not None or (isinstance(total, int) and total > len(matches)):
                matches = self.search(rtype, params, deadline=deadline)  # the rest, paged
            results.append(matches)
        return found, results

    # -- writes --------------------------------------------------------------------------------
    def create(self, resource: Resource, *, deadline: float | None = None) -> Resource:
        """POST [base]/Type; returns the created resource (with its server id)."""
        resource_type = _type_of(resource)
        response = self._request(
            "POST",
            f"{self.base_url}/{resource_type}",
            op=f"create {resource_type}",
            resource=resource,
            deadline=deadline,
            idempotent=False,
        )
        return self._written(response, resource_type, deadline)

    def create_if_none(
        self, resource: Resource, if_none_exist: SearchParams, *, deadline: float | None = None
    ) -> Resource:
        """Conditional create (If-None-Exist): creates the resource unless one matches the search;
        returns the created or the existing resource."""
        resource_type = _type_of(resource)
        response = self._request(
            "POST",
            f"{self.base_url}/{resource_type}",
            op=f"conditional create {resource_type}",
            resource=resource,
            headers={"If-None-Exist": urlencode(_query(if_none_exist))},
            deadline=deadline,
        )
        return self._written(response, resource_type, deadline)

    def update(self, resource: Resource, *, if_match: str | None = None, deadline: float | None = None) -> Resource:
        """PUT [base]/Type/id (the resource's own id). `if_match`: a versionId for optimistic locking."""
        resource_type = _type_of(resource)
        resource_id = resource.get("id")
        if not isinstance(resource_id, str):
            raise ValueError(f"{resource_type} to update has no id")
        _check_id(resource_id)
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else None
        response = self._request(
            "PUT",
            f"{self.base_url}/{resource_type}/{resource_id}",
            op=f"update {resource_type}",
            resource=resource,
            headers=headers,
            deadline=deadline,
        )
        return self._written(response, resource_type, deadline)

    def conditional_update(
        self, resource: Resource, criteria: SearchParams, *, deadline: float | None = None
    ) -> Resource:
        """PUT [base]/Type?criteria: updates the one match in place, or creates the resource when
        nothing matches; the server answers 412 (FhirError) when several match."""
        resource_type = _type_of(resource)
        query = _query(criteria)
        if not query:
            raise ValueError("conditional update needs search criteria")
        response = self._request(
            "PUT",
            f"{self.base_url}/{resource_type}",
            op=f"conditional update {resource_type}",
            params=query,
            resource=resource,
            deadline=deadline,
        )
        return self._written(response, resource_type, deadline)

    def update_by_identifier(
        self,
        resource: Resource,
        system: str,
        *,
        narrowed_by: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> Resource:
        """Create or update in place the one resource of this type carrying the resource's identifier
        in `system` (an identifier system the caller owns), so writing it again never duplicates it.

        `narrowed_by`: more criteria every such resource meets (e.g. its `subject`), so that a server
        that does not index identifiers finds it among fewer resources."""
        values = [
            i.get("value")
            for i in resource.get("identifier") or ()
            if isinstance(i, dict) and i.get("system") == system and i.get("value")
        ]
        if len(values) != 1:
            raise ValueError(f"{_type_of(resource)} needs exactly one identifier in system {system!r}")
        token = f"{_escape_search_value(system)}|{_escape_search_value(str(values[0]))}"
        return self.conditional_update(resource, {**(narrowed_by or {}), "identifier": token}, deadline=deadline)

    def delete(self, resource_type: str, resource_id: str, *, deadline: float | None = None) -> None:
        """DELETE [base]/Type/id."""
        _check_type(resource_type)
        _check_id(resource_id)
        self._request(
            "DELETE", f"{self.base_url}/{resource_type}/{resource_id}", op=f"delete {resource_type}", deadline=deadline
        )

    def transaction(self, bundle: Resource, *, idempotent: bool = False, deadline: float | None = None) -> Resource:
        """POST a transaction or batch Bundle to the base; returns the response Bundle.

        Set `idempotent` when every entry is a conditional or PUT write, so that it may be retried
        after a timeout like a read.
        """
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in ("transaction", "batch"):
            raise ValueError("transaction() takes a Bundle of type transaction or batch")
        response = self._request(
            "POST",
            self.base_url,
            op=f"{bundle['type']}",
            resource=bundle,
            deadline=deadline,
            idempotent=idempotent,
        )
        return self._resource(response, "Bundle")

    # -- machinery -----------------------------------------------------------------------------
    def _written(self, response: _Answer, resource_type: str, deadline: float | None) -> Resource:
        body = json_or_none(response.content)
        if isinstance(body, dict) and body.get("resourceType") == resource_type:
            return body
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        match = re.search(rf"{resource_type}/([A-Za-z0-9\-.]{{1,64}})", location or "")
        if match is None:  # a 2xx with neither the resource nor where it is
            raise FhirError(response.status_code, None, f"FHIR write {resource_type}: no resource in the answer")
        return self.read(resource_type, match.group(1), deadline=deadline)

    def _resource(self, response: _Answer, resource_type: str) -> Resource:
        body = json_or_none(response.content)
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            raise FhirError(
                response.status_code,
                None,
                f"FHIR answer is not a {resource_type} (Content-Type {response.headers.get('Content-Type', '?')})",
            )
        return body

    def _resolve_link(self, link: str, op: str) -> str:
        url = urljoin(self.base_url + "/", link)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise FhirPagingError(None, None, f"FHIR {op}: next link points to another server ({parts.netloc})")
        return url

    def _attempt_timeout(self, deadline: float | None, op: str) -> httpx.Timeout:
        if deadline is None:
            return httpx.Timeout(self.timeout)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirDeadlineExceeded(None, None, f"FHIR {op}: deadline exceeded")
        return httpx.Timeout(min(self.timeout, remaining))

    def _request(
        self,
        method: str,
        url: str,
        *,
        op: str,
        params: list[tuple[str, str]] | None = None,
        resource: Resource | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        idempotent: bool = True,
    ) -> _Answer:
        """Send with retries; returns the (fully read) 2xx response or raises a FhirError."""
        content = orjson.dumps(resource) if resource is not None else None
        failures = 0
        refreshed_auth = False
        while True:
            try:
                response = self._attempt(method, url, op, params, content, headers, deadline, idempotent)
            except FhirDeadlineExceeded:
                raise
            except FhirUnavailable as exc:
                failures += 1
                self._before_retry(exc, failures, op, deadline)
                continue
            status = response.status_code
            if status < 300:
                return response  # redirects are not followed: a token must not go where it was not meant to
            outcome = _operation_outcome(response.content)
            message = f"FHIR {op}: HTTP {status}{_diagnostics(outcome)}"
            if status == 401 and self.auth is not None and not refreshed_auth and self.auth.refresh():
                refreshed_auth = True  # the cached token may have expired or been revoked: once more
                log.info("FHIR %s: 401, retrying once with fresh credentials", op)
                continue
            if status in RETRYABLE_STATUS:
                failures += 1
                unavailable = FhirUnavailable(
                    status,
                    outcome,
                    message,
                    retry_after=retry_after_seconds(response.headers),
                    retryable=idempotent or status in _NOT_PROCESSED_STATUS,
                )
                self._before_retry(unavailable, failures, op, deadline)
                continue
            if status in (401, 403):
                raise FhirAuthError(status, outcome, message)
            if status in (404, 410):
                raise FhirNotFound(status, outcome, message)
            raise FhirError(status, outcome, message)

    def _before_retry(self, exc: FhirUnavailable, failures: int, op: str, deadline: float | None) -> None:
        """Sleep before the next attempt, or raise when no attempt is left (or no time for one)."""
        if not exc.retryable or failures > self.retries:
            tries = f" (after {failures} attempt{'s' if failures > 1 else ''})"
            raise FhirUnavailable(
                exc.status, exc.operation_outcome, exc.message + tries, retry_after=exc.retry_after
            ) from exc
        delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        if exc.retry_after is not None:
            if exc.retry_after > self.max_backoff:
                raise FhirUnavailable(
                    exc.status,
                    exc.operation_outcome,
                    f"{exc.message} (Retry-After {exc.retry_after:.0f} s is longer than we wait)",
                    retry_after=exc.retry_after,
                ) from exc
            delay = max(delay, exc.retry_after)
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise FhirDeadlineExceeded(
                exc.status, exc.operation_outcome, f"{exc.message} (deadline leaves no time to retry)"
            ) from exc
        log.warning("FHIR %s: %s; retry %d/%d in %.2f s", op, _short(exc), failures, self.retries, delay)
        time.sleep(delay)

    def _attempt(
        self,
        method: str,
        url: str,
        op: str,
        params: list[tuple[str, str]] | None,
        content: bytes | None,
        extra_headers: Mapping[str, str] | None,
        deadline: float | None,
        idempotent: bool,
    ) -> _Answer:
        headers = dict(extra_headers or {})
        if content is not None:
            headers["Content-Type"] = FHIR_JSON
            headers.setdefault("Prefer", "return=representation")
        if self.auth is not None:
            headers["Authorization"] = self.auth.authorization(self._http, self._attempt_timeout(deadline, op))
        timeout = self._attempt_timeout(deadline, op)
        started = time.monotonic()
        try:
            with self._http.stream(
                method,
                url,
                params=tuple(params) if params else None,
                content=content,
                headers=headers,
                timeout=timeout,
            ) as response:
                chunks: list[bytes] = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    # httpx bounds each read, not the whole body: the deadline bounds the whole.
                    if deadline is not None and time.monotonic() > deadline:
                        raise FhirDeadlineExceeded(None, None, f"FHIR {op}: deadline exceeded while reading")
                answer = _Answer(response.status_code, response.headers, b"".join(chunks), str(response.url))
        except httpx.TimeoutException as exc:
            if deadline is not None and deadline - time.monotonic() < 0.01:
                raise FhirDeadlineExceeded(None, None, f"FHIR {op}: deadline exceeded") from exc
            raise FhirUnavailable(
                None,
                None,
                f"FHIR {op}: timed out ({type(exc).__name__})",
                retryable=idempotent or isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from exc
        except httpx.TransportError as exc:
            raise FhirUnavailable(
                None,
                None,
                f"FHIR {op}: {type(exc).__name__}: {exc}",
                retryable=idempotent or isinstance(exc, httpx.ConnectError),
            ) from exc
        log.debug("FHIR %s -> %s in %.0f ms", op, answer.status_code, (time.monotonic() - started) * 1000)
        return answer


# ---- helpers -------------------------------------------------------------------------------------
def _check_type(resource_type: str) -> None:
    if not _RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")


def _check_id(resource_id: str) -> None:
    if not _ID.fullmatch(resource_id):
        raise ValueError("not a FHIR id (1-64 of A-Z a-z 0-9 - .)")


def _type_of(resource: Resource) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    _check_type(resource_type)
    return resource_type


def _param_text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query(params: SearchParams | None) -> list[tuple[str, str]]:
    """Search parameters as ordered pairs; a sequence value repeats the parameter (AND)."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str | int | float | bool):
                pairs.append((name, _param_text(value)))
            else:
                pairs.extend((name, _param_text(v)) for v in value)
        return pairs
    return [(name, _param_text(value)) for name, value in params]


def _escape_search_value(value: str) -> str:
    """FHIR search escaping of a token part: \\ , $ | are literal only when escaped."""
    return re.sub(r"([\\,$|])", r"\\\1", value)


def _page_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A page URL compared by path and its parameters, however they are ordered or encoded."""
    parts = urlsplit(url)
    return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _link(bundle: Resource, relation: str) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == relation and isinstance(link.get("url"), str):
            url: str = link["url"]
            return url
    return None


def _batch_entry(entry: Resource, resource_type: str, op: str) -> Resource:
    """The resource of one batch answer entry, or the error its status says (as for a single request)."""
    response: Resource = entry["response"] if isinstance(entry.get("response"), dict) else {}
    match = re.match(r"\s*(\d{3})", str(response.get("status") or ""))
    status = int(match.group(1)) if match else None
    outcome = response.get("outcome") if isinstance(response.get("outcome"), dict) else None
    resource = entry.get("resource")
    if status is not None and status < 300 and isinstance(resource, dict):
        if resource.get("resourceType") != resource_type:
            raise FhirError(status, None, f"FHIR {op} (batch): the answer is not a {resource_type}")
        return resource
    if outcome is None and isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
        outcome = resource
    message = f"FHIR {op} (batch): HTTP {status if status is not None else '?'}{_diagnostics(outcome)}"
    if status in RETRYABLE_STATUS or status is None:
        raise FhirUnavailable(status, outcome, message)
    if status in (401, 403):
        raise FhirAuthError(status, outcome, message)
    if status in (404, 410):
        raise FhirNotFound(status, outcome, message)
    raise FhirError(status, outcome, message)


def json_or_none(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _operation_outcome(content: bytes) -> Resource | None:
    body = json_or_none(content)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def _diagnostics(outcome: Resource | None, limit: int = 500) -> str:
    """': text; text' from an OperationOutcome's issues (diagnostics, else details.text)."""
    if outcome is None:
        return ""
    texts: list[str] = []
    for issue in outcome.get("issue") or ():
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        if not isinstance(details, dict):
            details = {}
        text = issue.get("diagnostics") or details.get("text") or issue.get("code") or ""
        where = issue.get("expression") or issue.get("location")
        if where and isinstance(where, list):
            text = f"{text} ({', '.join(str(w) for w in where)})"
        if text:
            texts.append(str(text))
    joined = "; ".join(texts)
    return f": {joined[:limit]}" if joined else ""


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: FhirUnavailable) -> str:
    return f"HTTP {exc.status}" if exc.status is not None else exc.message.rsplit(": ", 1)[-1]
