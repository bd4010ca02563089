"""Prefetch per CDS Hooks 2.0.1: use what came, fetch what is absent or failed, 412 when it cannot be had.

- key present with a resource or Bundle: used as is;
- key present with null: the CDS Client found no data (nothing to fetch);
- key absent, or present with an OperationOutcome (a failed prefetch): fetched from `fhirServer` with
  `fhirAuthorization`, under the call's deadline; without a fhirServer, or when the server fails,
  the required data cannot be had and the service answers 412.

Which fhirServer we fetch from (SSRF): an issuer with a `fhir_servers` list may only name a server on it;
otherwise a server on `HOFHIR_FHIR_SERVERS` is trusted, and any other is fetched only when its host
resolves to public addresses (loopback, private, link-local, reserved and multicast are refused). A refused
server answers 412, like an unreachable one: the data cannot be had from it, and a client that sends the
prefetch itself is still served (an EHR inside a hospital network often names a private fhirServer it never
expects us to call). The address is checked when the call is made; the fetch resolves the name again (a
DNS answer that changes in between is not caught here).

Size: the prefetch (and draft orders) may hold at most `max_entries` resources in all (413 past it).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from cds_hooks.errors import HttpError
from cds_hooks.services import PREFETCH_KEYS, prefetch_templates
from hofhir.knowledge import Knowledge

if TYPE_CHECKING:
    from hofhir.adapters.fhirclient import FhirClient

TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class DeadlineMissed(Exception):
    """Fetching absent prefetch ran past the hook call's deadline."""


class PrefetchUnavailable(HttpError):
    def __init__(self, message: str) -> None:
        super().__init__(412, message)


def _base(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class FhirServerPolicy:
    """Which fhirServer this call may make us fetch from.

    `issuer_servers`: the caller's issuer's `fhir_servers` (None when it has no list);
    `trusted`: HOFHIR_FHIR_SERVERS, servers any caller without an issuer list may name, private or not.
    """

    issuer_servers: tuple[str, ...] | None = None
    trusted: tuple[str, ...] = ()
    resolve: Any = socket.getaddrinfo

    def check(self, server: str) -> tuple[str, ...] | None:
        """Raises PrefetchUnavailable for a server this call may not name. Returns the addresses the fetch
        must connect to (those checked here: a name that resolves elsewhere later is never followed), or
        None for a server named by configuration (the issuer's list, HOFHIR_FHIR_SERVERS)."""
        base = _base(server)
        if self.issuer_servers is not None:
            if base not in {_base(u) for u in self.issuer_servers}:
                raise PrefetchUnavailable(
                    "the fhirServer is not one this caller's issuer may name; send the prefetch in the request"
                )
            return None
        if base in {_base(u) for u in self.trusted}:
            return None
        host = urlsplit(server).hostname
        if not host:
            raise PrefetchUnavailable("the fhirServer URL has no host")
        addresses = self._addresses(host)
        for address in addresses:
            if not all(a.is_global and not a.is_multicast for a in _embedded(address)):
                raise PrefetchUnavailable(
                    "the fhirServer is on a loopback, private or link-local address that is not allowlisted "
                    "(HOFHIR_FHIR_SERVERS); send the prefetch in the request"
                )
        return tuple(dict.fromkeys(str(a) for a in addresses))

    def _addresses(self, host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        try:
            infos = self.resolve(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise PrefetchUnavailable("the fhirServer host name does not resolve") from exc
        out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for info in infos:
            try:
                out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except (ValueError, IndexError, TypeError):
                continue
        if not out:
            raise PrefetchUnavailable("the fhirServer host name does not resolve")
        return out


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and any IPv4 address it carries (mapped, 6to4, Teredo, NAT64): all must be public."""
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        out += [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        out += list(address.teredo or ())
        if address in _NAT64:
            out.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return out


def fhir_server_policy(
    issuers: Mapping[str, Any], claims: Mapping[str, Any], trusted: Iterable[str] = ()
) -> FhirServerPolicy:
    """The policy for a call authenticated with `claims` (empty when authentication is off)."""
    iss = claims.get("iss")
    config = issuers.get(iss) if isinstance(iss, str) else None
    servers = getattr(config, "fhir_servers", None)
    return FhirServerPolicy(issuer_servers=servers, trusted=tuple(trusted))


class TooManyEntries(HttpError):
    def __init__(self, count: int, cap: int) -> None:
        super().__init__(
            413,
            f"the request holds more than {cap} prefetch and draft-order resources (counted {count}); "
            f"the limit is HOFHIR_MAX_PREFETCH_ENTRIES={cap}",
            "prefetch",
        )


def count_entries(values: Iterable[Any]) -> int:
    """Resources in prefetch values and draft orders: a Bundle counts its entries, a resource counts one."""
    total = 0
    for value in values:
        if not isinstance(value, dict):
            continue
        entries = value.get("entry")
        total += len(entries) if value.get("resourceType") == "Bundle" and isinstance(entries, list) else 1
    return total


def check_entries(request: dict[str, Any], prefetch: dict[str, Any], cap: int | None) -> None:
    if cap is None:
        return
    context = request.get("context")
    drafts = context.get("draftOrders") if isinstance(context, dict) else None
    count = count_entries([*prefetch.values(), drafts])
    if count > cap:
        raise TooManyEntries(count, cap)


def fill_template(template: str, request: dict[str, Any]) -> str:
    """Replace prefetch tokens ({{context.patientId}}, {{userPractitionerId}} …) with the request's values."""
    context = request.get("context")
    context = context if isinstance(context, dict) else {}
    user = context.get("userId")
    user = user if isinstance(user, str) else ""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            found = context.get(name.split(".", 1)[1])
            if isinstance(found, str | int):
                return str(found)
            raise PrefetchUnavailable(f"prefetch token {{{{{name}}}}} has no value in the request context")
        for kind in ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"):
            if name == f"user{kind}Id" and user.startswith(f"{kind}/"):
                return user.split("/", 1)[1]
        raise PrefetchUnavailable(f"prefetch token {{{{{name}}}}} cannot be filled from this request")

    return TOKEN.sub(value, template)


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def missing_keys(prefetch: dict[str, Any]) -> list[str]:
    """Keys the rules need that are absent or came back as a failed prefetch (an OperationOutcome)."""
    return [key for key in PREFETCH_KEYS if key not in prefetch or _failed(prefetch[key])]


def fetch(client: FhirClient, query: str, deadline: float) -> Any:
    """Run one filled prefetch template: a read (Type/id) or a search (Type?params) gathered into one Bundle."""
    path, _, qs = query.partition("?")
    if not qs and "/" in path:
        rtype, rid = path.split("/", 1)
        return client.read(rtype, rid, deadline=deadline)
    resources = client.search(path, parse_qsl(qs, keep_blank_values=True), deadline=deadline)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def resolve_prefetch(
    request: dict[str, Any],
    k: Knowledge,
    deadline: float | None = None,
    attempt_timeout_s: float = 2.0,
    *,
    servers: FhirServerPolicy | None = None,
    max_entries: int | None = None,
) -> dict[str, Any]:
    """The complete prefetch for a request; raises PrefetchUnavailable (412) when data cannot be had and
    TooManyEntries (413) past `max_entries`. `servers` decides which fhirServer may be fetched from
    (None: any, for the local CLI)."""
    given = request.get("prefetch") or {}
    prefetch = dict(given) if isinstance(given, dict) else {}
    check_entries(request, prefetch, max_entries)
    wanted = missing_keys(prefetch)
    if not wanted:
        return prefetch
    server = request.get("fhirServer")
    if not isinstance(server, str) or not server:
        raise PrefetchUnavailable(
            f"required prefetch missing or failed ({', '.join(wanted)}) and the request names no fhirServer"
        )
    connect_to = servers.check(server) if servers is not None else None
    auth = request.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    deadline = deadline if deadline is not None else time.monotonic() + 5.0
    templates = prefetch_templates(k)
    # The HTTP client loads only when something must be fetched: `hofhir evaluate` on a full request never needs it.
    from hofhir.adapters.fhirclient import BearerToken, FhirClient, FhirDeadlineExceeded, FhirError

    try:
        client = FhirClient(
            server,
            auth=BearerToken(token) if token else None,
            timeout=attempt_timeout_s,
            retries=1,
            connect_to=connect_to,
        )
    except ValueError as exc:
        raise PrefetchUnavailable(f"fhirServer is not usable: {exc}") from exc
    with client:
        for key in wanted:
            query = fill_template(templates[key], request)
            try:
                prefetch[key] = fetch(client, query, deadline)
            except FhirDeadlineExceeded as exc:
                raise DeadlineMissed(key) from exc
            except (FhirError, ValueError) as exc:  # ValueError: an id in the context that is not a FHIR id
                raise PrefetchUnavailable(f"could not fetch prefetch '{key}' from the fhirServer: {exc}") from exc
    check_entries(request, prefetch, max_entries)
    return prefetch
