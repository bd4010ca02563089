"""schemathesis against the service's own /openapi.json, in-process through WSGI: no generated request gets a 5xx.

Seeded (derandomize) and bounded (max_examples per operation). Generated hook calls are pinned so that they
reach the hook code instead of stopping at the first check: the service id is a real one, `hook` matches it,
`fhirServer` names a loopback port nobody listens on (allowlisted, so an incomplete prefetch is really
fetched and fails as a 412), and the context carries the ids the hook requires; the prefetch values, draft
orders and everything else are drawn at random around FHIR shapes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cds_hooks.app import create_app
from cds_hooks.services import PREFETCH_KEYS
from cds_hooks.settings import Settings
from cds_hooks.validation import HOOK_CONTEXT

STATUSES: Counter[tuple[str, str, int]] = Counter()  # what the run reached (printed with -s on failure)
SERVICES = {f"hofhir-{hook}": hook for hook in HOOK_CONTEXT}
FHIR_SERVER = "http://127.0.0.1:9/fhir"  # port 9 (discard): connection refused, at once

APP = create_app(Settings(auth=False, deadline_ms=2000, fetch_timeout_ms=200, fhir_servers=(FHIR_SERVER,)))
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
TYPES = st.sampled_from(["Patient", "Condition", "Observation", "MedicationRequest", "Procedure", "ServiceRequest"])
CODING = st.fixed_dictionaries(
    {},
    optional={
        "system": st.sampled_from(["http://hl7.org/fhir/sid/icd-10-cm", "http://loinc.org", "http://snomed.info/sct"])
        | JSON,
        "code": st.sampled_from(["S14.109A", "S24.111A", "6768-6", "27130", "I63.9"]) | JSON,
    },
)
RESOURCE = st.fixed_dictionaries(
    {"resourceType": TYPES},
    optional={
        "id": st.text(max_size=6) | JSON,
        "status": st.sampled_from(["active", "final", "completed", "draft"]) | JSON,
        "intent": st.just("order") | JSON,
        "code": st.fixed_dictionaries({}, optional={"coding": st.lists(CODING, max_size=2) | JSON}) | JSON,
        "subject": st.just({"reference": "Patient/p1"}) | JSON,
        "contained": JSON,
        "conclusionCode": JSON,
        "onsetDateTime": st.sampled_from(["2026-01-01", "not a date"]) | JSON,
        "bogusField": JSON,
    },
)
BUNDLE = st.fixed_dictionaries(
    {"resourceType": st.just("Bundle")},
    optional={
        "type": st.sampled_from(["searchset", "collection"]) | JSON,
        "entry": st.lists(st.fixed_dictionaries({"resource": RESOURCE}) | JSON, max_size=4) | JSON,
    },
)
PREFETCH_VALUE = st.none() | RESOURCE | BUNDLE | st.just({"resourceType": "OperationOutcome"})


@schema.hook("flatmap_case")
def realistic_hook_bodies(context: Any, case: Any) -> Any:
    """Real service ids in the path (feedback too); for hook calls a body that passes the first checks."""
    if case.path_parameters is None or "id" not in case.path_parameters:
        return st.just(case)
    if case.operation.path != "/cds-services/{id}" or not isinstance(case.body, dict):
        return st.sampled_from(sorted(SERVICES)).map(lambda sid: _with_id(case, sid))
    return st.sampled_from(sorted(SERVICES)).flatmap(lambda sid: _hook_call(_with_id(case, sid)))


def _with_id(case: Any, service_id: str) -> Any:
    case.path_parameters = {**case.path_parameters, "id": service_id}
    return case


def _hook_call(case: Any) -> Any:
    hook = SERVICES[case.path_parameters["id"]]
    required, optional = HOOK_CONTEXT[hook]
    ids = {"userId": "Practitioner/1", "patientId": "p1", "encounterId": "e1"}
    original = dict(case.body)

    def build(extra: dict[str, Any], prefetch: dict[str, Any], drafts: Any, with_server: bool) -> Any:
        body = dict(original)
        ctx: dict[str, Any] = {name: ids[name] for name in required + optional if name in ids}
        if "draftOrders" in required:
            ctx["draftOrders"] = drafts
        if "selections" in required:
            ctx["selections"] = ["ServiceRequest/sr1"]
        body.update(
            hook=hook, hookInstance=f"schemathesis-{len(STATUSES)}", context={**extra, **ctx}, prefetch=prefetch
        )
        if with_server:
            body["fhirServer"] = FHIR_SERVER
        else:
            body.pop("fhirServer", None)
            body.pop("fhirAuthorization", None)
        case.body = body
        return case

    return st.builds(
        build,
        st.dictionaries(st.text(max_size=6), JSON, max_size=2),
        st.one_of(  # complete (evaluated here) or not (fetched from FHIR_SERVER, which fails: 412)
            st.fixed_dictionaries({key: st.none() | RESOURCE | BUNDLE for key in PREFETCH_KEYS}),
            st.dictionaries(st.sampled_from(list(PREFETCH_KEYS)), PREFETCH_VALUE, max_size=len(PREFETCH_KEYS)),
        ),
        BUNDLE,
        st.booleans(),
    )


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_5xx(case: Any) -> None:
    response = case.call()
    STATUSES[(case.method, case.operation.path, response.status_code)] += 1
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])


def test_the_hook_endpoints_were_really_exercised() -> None:
    """Runs after the fuzz test (file order): the pinned hook calls got past validation to cards and to 412s."""
    hook_calls = {status for (method, path, status) in STATUSES if (method, path) == ("POST", "/cds-services/{id}")}
    assert {200, 412} <= hook_calls, STATUSES
