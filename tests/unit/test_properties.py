"""Property tests (hypothesis): odd input never crashes the reader or the rules, and every card is valid.

- any JSON value as a CDS Hooks request, or inside one (prefetch, draft orders);
- FHIR-shaped dicts with random fields and value types;
- valid R4 resources with random codes, dates and statuses (so the rules, not only the validator, run);
- real sample files truncated at a random byte, or pruned at random inside their JSON structure.

The only exception allowed out of the library is hofhir.fhir.read.InputError, and for a request that is
not a JSON object it is required. Example counts are bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cds_hooks.cards import render_response
from cds_hooks.cli import main as cli_main
from hofhir.clinical.evaluate import EVERY_HOOK_TOPICS, HOOK_TOPICS, SUPPORTED_HOOKS, Evaluation, evaluate
from hofhir.fhir.models import CLINICAL_TYPES
from hofhir.fhir.read import InputError, bundle_resources, from_hook_request, from_resources, loads
from hofhir.knowledge import Knowledge, default_knowledge
from hofhir.knowledge.terminology import ICD10CM
from tests import builders as b
from tests.contract import card_problems, response_problems

KB: Knowledge = default_knowledge()
NOW = b.NOW
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = Path("/work/shared/fhir-samples")
VIGNETTES = Path("/work/shared/vignettes")

# ---------- strategies ----------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


def _codes() -> list[tuple[str, str]]:
    """(system alias, code) pairs the rules care about, from the knowledge base, plus ICD prefixes."""
    pairs: set[tuple[str, str]] = set()
    for vs in KB.terminology.valuesets.values():
        pairs |= vs.exact
        pairs |= {(ICD10CM, p + suffix) for p in vs.prefixes for suffix in ("", "1", "9A", "XA")}
    return sorted(pairs)


CODES = _codes()
SYSTEMS = [*sorted({s for s, _ in CODES}), "urn:oid:2.16.840.1.113883.6.90", "http://example.org/local", "", "x"]
CODING = st.one_of(
    st.sampled_from(CODES).map(lambda sc: {"system": sc[0], "code": sc[1]}),
    st.fixed_dictionaries(
        {},
        optional={
            "system": st.sampled_from(SYSTEMS) | JSON,
            "code": st.sampled_from([c for _, c in CODES]) | JSON,
            "display": st.sampled_from(["Baclofen 10 MG", "heterotopic", "indomethacin", "CPM", "left hip"]) | JSON,
        },
    ),
)
CONCEPT = st.fixed_dictionaries(
    {}, optional={"coding": st.lists(CODING, max_size=3) | JSON, "text": st.text(max_size=30)}
)
DATES = st.sampled_from(
    [
        "2026-11-01",
        "2026",
        "2026-02",
        "2026-13-45",
        "not a date",
        "",
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00",
        "2026-11-20T10:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31",
    ]
) | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat)
REFERENCE = st.fixed_dictionaries(
    {}, optional={"reference": st.sampled_from(["Patient/pt-1", "Patient/other", "urn:uuid:1", "", "Patient/"]) | JSON}
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "code": CONCEPT,
    "medicationCodeableConcept": CONCEPT,
    "valueCodeableConcept": CONCEPT,
    "clinicalStatus": CONCEPT,
    "verificationStatus": CONCEPT,
    "subject": REFERENCE,
    "patient": REFERENCE,
    "onsetDateTime": DATES,
    "abatementDateTime": DATES,
    "recordedDate": DATES,
    "effectiveDateTime": DATES,
    "issued": DATES,
    "performedDateTime": DATES,
    "authoredOn": DATES,
    "occurrenceDateTime": DATES,
    "birthDate": DATES,
    "deceasedDateTime": DATES,
    "onsetPeriod": st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES}),
    "effectivePeriod": st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES}),
    "performedPeriod": st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES}),
    "valueQuantity": st.fixed_dictionaries(
        {},
        optional={
            "value": st.floats(allow_nan=False, allow_infinity=False) | st.integers() | JSON,
            "unit": st.sampled_from(["Cel", "[degF]", "U/L", "mg/dL", "{score}"]) | JSON,
            "code": st.sampled_from(["Cel", "[degF]", "U/L", "degF"]) | JSON,
        },
    ),
    "referenceRange": st.lists(
        st.fixed_dictionaries({}, optional={"low": JSON, "high": st.fixed_dictionaries({"value": JSON})}), max_size=2
    )
    | JSON,
    "interpretation": st.lists(CONCEPT, max_size=2) | JSON,
    "bodySite": st.lists(CONCEPT, max_size=2) | CONCEPT | JSON,
    "reasonCode": st.lists(CONCEPT, max_size=2) | JSON,
    "conclusionCode": st.lists(CONCEPT, max_size=2) | JSON,
    "component": st.lists(st.fixed_dictionaries({"code": CONCEPT}), max_size=2) | JSON,
    "contained": st.lists(st.fixed_dictionaries({"resourceType": st.just("Medication"), "code": CONCEPT}), max_size=1)
    | JSON,
    "status": st.sampled_from(
        ["active", "completed", "final", "draft", "stopped", "cancelled", "not-done", "entered-in-error", "revoked"]
    )
    | JSON,
    "gender": st.sampled_from(["male", "female", "other", "unknown"]) | JSON,
    "deceasedBoolean": JSON,
    "valueBoolean": JSON,
    "valueString": JSON,
    "conclusion": st.sampled_from(["stable", "not stable", "increased uptake"]) | JSON,
    "intent": st.sampled_from(["order", "proposal", "plan"]) | JSON,
    "id": st.sampled_from(["pt-1", "x", ""]) | JSON,
}
RESOURCE_TYPES = [*sorted(CLINICAL_TYPES), "Encounter", "OperationOutcome"]  # what the rules read, and two they do not


@st.composite
def fhir_shaped(draw: st.DrawFn, any_type: bool = True) -> dict[str, Any]:
    """A dict that looks like FHIR: a resourceType and some of the fields the reader looks at, any values.

    any_type=False keeps resourceType a known type name (the other fields stay arbitrary).
    """
    rtype = draw(st.sampled_from(RESOURCE_TYPES) | JSON) if any_type else draw(st.sampled_from(RESOURCE_TYPES))
    keys = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=6, unique=True))
    out: dict[str, Any] = {"resourceType": rtype}
    for key in keys:
        out[key] = draw(FIELD_VALUES[key])
    if draw(st.booleans()):
        out["subject"] = {"reference": "Patient/pt-1"}
    return out


def searchset(resources: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    entry = st.one_of(
        st.fixed_dictionaries({"resource": resources}, optional={"fullUrl": st.text(max_size=10), "search": JSON}),
        JSON,
    )
    return st.fixed_dictionaries({"resourceType": st.just("Bundle"), "type": st.just("searchset")}).flatmap(
        lambda bundle: st.lists(entry, max_size=5).map(lambda entries: {**bundle, "entry": entries})
    )


DAYS = st.none() | st.floats(min_value=-30, max_value=3000, allow_nan=False)
SMALL_DAYS = st.floats(min_value=-2, max_value=400, allow_nan=False)
ICD = st.sampled_from([c for s, c in CODES if s == ICD10CM])
SNOMED = st.sampled_from([c for s, c in CODES if s.endswith("snomed.info/sct")])
CPT = st.sampled_from([c for s, c in CODES if s.endswith("go/cpt")])
LOINC = st.sampled_from([c for s, c in CODES if s.endswith("loinc.org")])
MED_TEXT = st.sampled_from(
    [
        "Indomethacin 25 MG Oral Capsule",
        "Enoxaparin sodium 40 MG/0.4 ML",
        "Baclofen 10 MG Oral Tablet",
        "Etidronate Disodium 400 MG",
        "Alendronate 70 MG",
        "Aspirin 81 MG",
        "Lisinopril 10 MG",
    ]
)


@st.composite
def valid_resource(draw: st.DrawFn) -> dict[str, Any]:
    """A valid R4 resource from the builders, with codes, dates and statuses drawn at random."""
    kind = draw(st.sampled_from(["condition", "observation", "procedure", "medication", "service", "report"]))
    if kind == "condition":
        return b.condition(
            draw(st.none() | ICD),
            draw(st.none() | SNOMED),
            days_ago=draw(DAYS),
            clinical_status=draw(st.sampled_from([None, "active", "recurrence", "inactive", "resolved", "remission"])),
            verification=draw(
                st.sampled_from([None, "confirmed", "provisional", "unconfirmed", "refuted", "entered-in-error"])
            ),
            abated_days_ago=draw(st.none() | SMALL_DAYS),
            body_site=draw(st.sampled_from([None, "Left hip", "Right hip", "Posterior hip"])),
        )
    if kind == "observation":
        return b.observation(
            draw(st.none() | LOINC),
            draw(st.none() | st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)),
            draw(st.sampled_from([None, "Cel", "[degF]", "U/L", "IU/L", "mg/dL", "{score}"])),
            draw(DAYS),
            draw(st.none() | st.floats(min_value=0, max_value=500)),
            draw(st.none() | st.floats(min_value=0, max_value=500)),
            snomed=draw(st.none() | SNOMED),
            value_boolean=draw(st.none() | st.booleans()),
            value_concept=draw(st.sampled_from([None, b.SNOMED_ABSENT, "373066001"])),
            status=draw(st.sampled_from(["final", "preliminary", "amended", "cancelled", "entered-in-error"])),
        )
    if kind == "procedure":
        return b.procedure(
            draw(st.none() | CPT),
            draw(st.none() | SNOMED),
            days_ago=draw(DAYS),
            status=draw(st.sampled_from(["completed", "in-progress", "not-done", "stopped", "entered-in-error"])),
            body_site=draw(st.sampled_from([None, "Left hip", "anterior"])),
        )
    if kind == "medication":
        return b.medication_request(
            draw(st.none() | st.sampled_from(["197817", "5781", "1292", "67108", "1191", "46041"])),
            draw(st.none() | MED_TEXT),
            draw(DAYS),
            draw(st.sampled_from(["active", "completed", "stopped", "cancelled", "draft", "on-hold", "unknown"])),
        )
    if kind == "service":
        return b.service_request(
            draw(st.none() | CPT),
            draw(st.none() | LOINC),
            text=draw(st.none() | st.sampled_from(["Passive range of motion", "Biopsy of heterotopic bone", "CPM"])),
            status=draw(st.sampled_from(["draft", "active", "completed", "revoked", "entered-in-error"])),
            days_ago=draw(DAYS),
            body_site=draw(st.sampled_from([None, "Posterior hip", "medial"])),
            reason_icd=draw(st.none() | ICD),
        )
    return b.diagnostic_report(
        draw(st.none() | LOINC),
        draw(st.none() | CPT),
        conclusion=draw(st.sampled_from([None, "stable", "not stable", "increased uptake, active"])),
        days_ago=draw(SMALL_DAYS),
    )


PATIENT = st.builds(
    b.patient,
    st.sampled_from([None, "male", "female", "other", "unknown"]),
    st.none() | st.integers(min_value=0, max_value=110),
    deceased=st.booleans(),
)

# ---------- checks ----------


def check(evaluation: Evaluation, hook: str) -> None:
    """The response invariants every evaluation must keep."""
    body = render_response(evaluation.guidance)
    for rendered in body["cards"]:
        assert card_problems(rendered) == [], rendered
    assert response_problems(body) == []
    found = {g.topic for g in evaluation.guidance}
    assert found <= HOOK_TOPICS[hook] | EVERY_HOOK_TOPICS
    if evaluation.trace["deceased"]:
        assert evaluation.guidance == []
    orjson.dumps(evaluation.as_dict())  # the trace travels as JSON


def evaluate_request(request: Any, now: datetime = NOW) -> Evaluation | None:
    """from_hook_request + evaluate; None when a documented InputError says the request is unusable."""
    try:
        inputs = from_hook_request(request, KB.terminology)
    except InputError:
        return None
    if inputs.hook not in SUPPORTED_HOOKS:
        with pytest.raises(InputError):
            evaluate(inputs, now, KB)
        return None
    evaluation = evaluate(inputs, now, KB)
    check(evaluation, inputs.hook)
    return evaluation


# ---------- properties ----------


@FAST
@given(JSON)
def test_any_json_value_as_a_request_raises_at_most_input_error(value: Any) -> None:
    if isinstance(value, dict):
        evaluate_request(value)
    else:
        with pytest.raises(InputError):
            from_hook_request(value, KB.terminology)


@FAST
@given(
    hook=st.sampled_from(SUPPORTED_HOOKS) | st.text(max_size=10),
    context=JSON | st.fixed_dictionaries({"patientId": JSON, "draftOrders": JSON, "selections": JSON}),
    prefetch=JSON | st.dictionaries(st.sampled_from(["patient", "conditions", "x"]), JSON, max_size=3),
)
def test_any_json_inside_a_request_raises_at_most_input_error(hook: Any, context: Any, prefetch: Any) -> None:
    evaluate_request({"hook": hook, "context": context, "prefetch": prefetch})


CONTAINED_TRUE = {
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/pt-1"},
    "medicationCodeableConcept": {"text": "Indomethacin 25 MG Oral Capsule"},
    "contained": True,
}
CONCLUSION_CODE_NUMBER = {
    "resourceType": "DiagnosticReport",
    "status": "final",
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "78315"}]},
    "subject": {"reference": "Patient/pt-1"},
    "conclusionCode": 5,
}


def _bundle_of(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hook=st.sampled_from(SUPPORTED_HOOKS),
    patient=fhir_shaped() | PATIENT,
    bundles=st.lists(searchset(fhir_shaped()), max_size=4),
    drafts=searchset(fhir_shaped()),
)
# Found by fuzzing (issue 10): a TypeError in the reader, a 500 over HTTP.
@example(hook="patient-view", patient={}, bundles=[_bundle_of(CONTAINED_TRUE, CONCLUSION_CODE_NUMBER)], drafts={})
@example(hook="order-sign", patient={}, bundles=[], drafts=_bundle_of(CONTAINED_TRUE, CONCLUSION_CODE_NUMBER))
def test_fhir_shaped_dicts_in_a_request_never_crash(
    hook: str, patient: dict[str, Any], bundles: list[dict[str, Any]], drafts: dict[str, Any]
) -> None:
    drafts = {**drafts, "type": "collection"}
    request = {
        "hook": hook,
        "context": {"patientId": "pt-1", "draftOrders": drafts},
        "prefetch": {"patient": patient, **{f"k{i}": bundle for i, bundle in enumerate(bundles)}},
    }
    assert evaluate_request(request) is not None


def test_numeric_coding_system_in_a_prefetch_bundle_does_not_crash() -> None:
    stroke = b.condition("I63.9")
    stroke["code"]["coding"][0]["system"] = 1  # invalid FHIR: must be left out, not crash the request
    evaluation = evaluate_request(b.request("patient-view", [b.patient(), stroke]))
    assert evaluation is not None
    assert evaluation.guidance == []


@FAST
@given(
    hook=st.sampled_from(SUPPORTED_HOOKS),
    resources=st.lists(fhir_shaped(any_type=False) | PATIENT, max_size=8),
    patient_id=st.sampled_from([None, "pt-1", "missing"]),
)
def test_fhir_shaped_dicts_through_from_resources_never_crash(
    hook: str, resources: list[dict[str, Any]], patient_id: str | None
) -> None:
    inputs = from_resources(resources, KB.terminology, hook, patient_id)
    check(evaluate(inputs, NOW, KB), hook)


@FAST
@given(resources=st.lists(fhir_shaped(any_type=True), max_size=4))
def test_from_resources_with_any_resource_type_value_never_crashes(resources: list[dict[str, Any]]) -> None:
    # e.g. {"resourceType": []}: a list of dicts is what from_resources accepts, whatever their values
    check(evaluate(from_resources(resources, KB.terminology), NOW, KB), "patient-view")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hook=st.sampled_from(SUPPORTED_HOOKS),
    patient=PATIENT,
    resources=st.lists(valid_resource(), min_size=1, max_size=10),
    drafts=st.lists(valid_resource(), max_size=3),
)
def test_valid_resources_with_random_codes_dates_and_statuses(
    hook: str, patient: dict[str, Any], resources: list[dict[str, Any]], drafts: list[dict[str, Any]]
) -> None:
    evaluation = evaluate_request(b.request(hook, [patient, *resources], drafts))
    assert evaluation is not None
    assert evaluation.trace["rejected"] == []  # the builders only make valid R4


def _sample_files() -> list[Path]:
    hl7 = SAMPLES / "hl7-r4-examples"
    picks = [
        hl7 / "Condition-stroke.json",
        hl7 / "Bundle-bundle-transaction.json",
        hl7 / "Bundle-bundle-example.json",
        hl7 / "Observation-example-genetics-1.json",
        hl7 / "MedicationRequest-medrx0302.json",
        hl7 / "Patient-example.json",
        SAMPLES / "synthea-r4-bundles" / "Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json",
    ]
    missing = [str(p) for p in picks if not p.exists()]
    assert not missing, f"sample data missing (the tests need ../shared): {missing}"
    return picks + sorted(VIGNETTES.glob("*.request.json"))


SAMPLE_FILES = _sample_files()
SAMPLE_BYTES = {p: p.read_bytes() for p in SAMPLE_FILES}


def evaluate_document(data: Any, now: datetime = NOW) -> None:
    """Route a JSON document as the CLI does: a CDS Hooks request, a Bundle or a single resource."""
    if not isinstance(data, dict):
        return
    if "hook" in data and "resourceType" not in data:
        evaluate_request(data, now)
        return
    if not isinstance(data.get("resourceType"), str):
        return  # the CLI answers "not FHIR" (an InputError) before reading it
    resources = bundle_resources(data) if data.get("resourceType") == "Bundle" else [data]
    check(evaluate(from_resources(resources, KB.terminology), now, KB), "patient-view")


def _vignette_now(path: Path) -> datetime:
    """A vignette is evaluated at its own `now` (its dates are relative to it); everything else at NOW."""
    if path.name.endswith(".request.json"):
        expect = path.with_name(path.name.replace(".request.json", ".expect.json"))
        return datetime.fromisoformat(orjson.loads(expect.read_bytes())["now"])
    return NOW


@FAST
@given(path=st.sampled_from(SAMPLE_FILES), cut=st.floats(min_value=0, max_value=1))
def test_truncated_sample_files_raise_at_most_input_error(path: Path, cut: float) -> None:
    raw = SAMPLE_BYTES[path]
    truncated = raw[: int(len(raw) * cut)]
    try:
        data = loads(truncated)
    except InputError:
        return
    evaluate_document(data, _vignette_now(path))


def prune(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """Drop a random part of a JSON structure: list tails, dict keys, or whole subtrees."""
    if isinstance(value, dict):
        keys = [k for k in value if rng.random() > 0.15]
        return {k: prune(value[k], rng, depth + 1) for k in keys}
    if isinstance(value, list):
        kept = value[: rng.randint(0, len(value))] if rng.random() < 0.3 else value
        return [prune(v, rng, depth + 1) for v in kept]
    if rng.random() < 0.05:
        return rng.choice([None, "", 0, -1, [], {}, "2026-99-99", True])
    return value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(SAMPLE_FILES), rng=st.randoms(use_true_random=False))
def test_structurally_pruned_sample_files_never_crash(path: Path, rng: random.Random) -> None:
    evaluate_document(prune(orjson.loads(SAMPLE_BYTES[path]), rng), _vignette_now(path))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("truncated")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(SAMPLE_FILES), cut=st.floats(min_value=0, max_value=1))
def test_cli_on_truncated_files_exits_cleanly(scratch: Path, path: Path, cut: float) -> None:
    raw = SAMPLE_BYTES[path]
    target = scratch / "input.json"
    target.write_bytes(raw[: int(len(raw) * cut)])
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["evaluate", str(target), "--format", "json", "--now", "2026-11-21T00:00:00Z"])
    assert code in (0, 2, 3), err.getvalue()
    if code == 0:
        out.flush()
        body = orjson.loads(out.buffer.getvalue())
        assert response_problems(body) == []
    else:
        assert err.getvalue().startswith("hofhir: ")
