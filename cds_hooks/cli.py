"""`hofhir`: evaluate a file (text, json or an html report), send it to a running service, serve, run a worker, probe.

The command lives at the edge because `evaluate --format json` prints exactly a CDS Hooks response body.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from cds_hooks.cards import render_response
from cds_hooks.examples import bundle_entries, latest_date, request_from_resources, shift_dates
from cds_hooks.prefetch import DeadlineMissed, PrefetchUnavailable, resolve_prefetch
from hofhir.adapters import PREFIX, SettingsError, files
from hofhir.clinical.evaluate import SUPPORTED_HOOKS, Evaluation, chart_facts, evaluate
from hofhir.clinical.timeline import build_timeline, quiet_reason
from hofhir.fhir import read
from hofhir.fhir.read import ClinicalInput, InputError
from hofhir.knowledge import Knowledge, KnowledgeError, knowledge_at

if TYPE_CHECKING:
    from hofhir.adapters.settings import Settings

EXIT_BAD_INPUT = 2
EXIT_MISSING_DATA = 3
EXIT_UNREACHABLE = 4
EXIT_REFUSED = 5


class MissingData(Exception):
    """Required prefetch is absent and no FHIR server is named to fetch it from."""


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--now {value!r} is not an ISO date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_inputs(path: Path, hook: str | None, patient: str | None, k: Knowledge) -> list[ClinicalInput]:
    """One ClinicalInput per patient in FILE: a CDS Hooks request, a FHIR Bundle or resource, or an NDJSON folder."""
    if hook is not None and hook not in SUPPORTED_HOOKS:
        raise InputError(f"unknown hook {hook!r}; use one of {', '.join(SUPPORTED_HOOKS)}")
    if path.is_dir():
        resources, rejected = files.ndjson_resources(path)
        patients = [r["id"] for r in resources if r.get("resourceType") == "Patient" and isinstance(r.get("id"), str)]
        chosen = [patient] if patient else patients or [None]
        if patient and patient not in patients:
            raise InputError(f"no Patient/{patient} in {path}")
        out = []
        for pid in chosen:
            item = read.from_resources(resources, k.terminology, hook or "patient-view", pid)
            item.rejected = rejected + item.rejected
            out.append(item)
        return out
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    data = read.loads(raw)
    if not isinstance(data, dict):
        raise InputError("expected a JSON object (a CDS Hooks request, a FHIR Bundle or a FHIR resource)")
    if "hook" in data and "resourceType" not in data:
        if hook and hook != data.get("hook"):
            raise InputError(f"--hook {hook} does not match the request's hook {data.get('hook')!r}")
        if data.get("hook") not in SUPPORTED_HOOKS:
            raise InputError(f"unknown hook {data.get('hook')!r}; hofhir answers {', '.join(SUPPORTED_HOOKS)}")
        prefetch = data.get("prefetch")
        if prefetch is not None and not isinstance(prefetch, dict):
            raise InputError("'prefetch' must be an object")
        try:  # the service's own resolution: absent or failed keys fetched from fhirServer, else an error
            prefetch = resolve_prefetch(data, k)
        except (PrefetchUnavailable, DeadlineMissed) as exc:
            raise MissingData(
                str(exc) if isinstance(exc, PrefetchUnavailable) else "fetching prefetch timed out"
            ) from exc
        return [read.from_hook_request(data, k.terminology, prefetch)]
    rtype = data.get("resourceType")
    if not isinstance(rtype, str):
        raise InputError("not FHIR: no resourceType, and not a CDS Hooks request (no hook)")
    resources = read.bundle_resources(data) if rtype == "Bundle" else [data]
    return [read.from_resources(resources, k.terminology, hook or "patient-view", patient)]


COLOURS = {"warning": "\033[33m", "critical": "\033[31m", "info": "\033[36m"}
BOLD, DIM = "\033[1m", "\033[2m"


def print_text(evaluation: Evaluation, out: TextIO, colour: bool, quiet_reason: str | None = None) -> None:
    """Per card: the summary, the "why" bullets (wrapped), the suggestions; with no card, the reason."""
    from cds_hooks.render_html import markdown_sections  # markdown-it loads only for the formats that print text

    reset = "\033[0m" if colour else ""
    bold = BOLD if colour else ""
    dim = DIM if colour else ""
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 110))
    pid = evaluation.trace.get("patient")
    who = f"Patient {pid}" if pid else "No Patient resource"
    out.write(
        f"{bold}{who}{reset}: {evaluation.hook}, {len(evaluation.guidance)} card(s), "
        f"risk {evaluation.trace.get('riskLevel') or 'none'}\n"
    )
    if not evaluation.guidance and quiet_reason:
        out.write(f"  {quiet_reason}\n")
    for g in evaluation.guidance:
        tint = COLOURS.get(g.indicator.value, "") if colour else ""
        level = f" [{g.risk_level}]" if g.risk_level else ""
        out.write(f"\n{tint}{bold}{g.indicator.value.upper():8}{reset} {bold}{g.summary}{reset}\n")
        rules = f" · rules {', '.join(g.rules)}" if g.rules else ""  # data-unreadable cites none
        out.write(f"{dim}         {g.topic.value}{level}{rules}{reset}\n")
        why = markdown_sections(g.detail).get("Why", [])
        if why:
            out.write("         Why:\n")
        for line in why:
            out.write(
                textwrap.fill(
                    line, width, initial_indent="         • ", subsequent_indent="           ", break_on_hyphens=False
                )
                + "\n"
            )
        for sug in g.suggestions:
            rtype = sug.resource.get("resourceType", "resource")
            out.write(
                textwrap.fill(
                    f"{sug.label} (creates a {rtype})",
                    width,
                    initial_indent="         → ",
                    subsequent_indent="           ",
                )
                + "\n"
            )
    rejected = evaluation.trace.get("rejected") or []
    if rejected:
        out.write(f"\n{len(rejected)} resource(s) left out as invalid FHIR:\n")
        for r in rejected[:10]:
            out.write(f"  - {r['resource']}: {r['reason']}\n")
    dropped = evaluation.trace.get("dropped") or []
    if dropped:
        out.write(f"\n{len(dropped)} invalid element(s) left out of resources that were used:\n")
        for d in dropped[:10]:
            out.write(f"  - {d['resource']} {d['path']}: {d['reason']}\n")


def cmd_evaluate(args: argparse.Namespace) -> int:
    settings: Settings | None = args.settings  # None: no HOFHIR_* variable is set, so every default holds
    k = knowledge_at(settings.knowledge if settings else None)
    now = _parse_now(args.now)
    inputs = load_inputs(Path(args.file), args.hook, args.patient, k)
    base_url = settings.public_url if settings else None
    many = len(inputs) > 1
    sections: list[tuple[str, list[dict[str, Any]], str, list[str], str | None]] = []
    for item in inputs:
        evaluation = evaluate(item, now, k)
        if args.format == "json":
            body: dict[str, Any] = render_response(evaluation.guidance, base_url)
            if many:  # a folder of several patients: one line per patient, saying whose it is
                body = {"patient": f"Patient/{evaluation.trace.get('patient')}", "response": body}
            sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 if not many else 0) + b"\n")
            continue
        reason = quiet_reason(evaluation, k)
        if args.format == "text":
            print_text(evaluation, sys.stdout, sys.stdout.isatty() and not os.environ.get("NO_COLOR"), reason)
            continue
        from cds_hooks import timeline_svg  # the picture is drawn for the html report only

        timeline = build_timeline(chart_facts(item, k, now), evaluation, k)
        cards = render_response(evaluation.guidance, base_url)["cards"]
        banner = _banner(item.patient, evaluation, now)
        sections.append((banner, cards, timeline_svg.render(timeline), timeline.sentences(), reason))
    if args.format == "html":
        from cds_hooks.render_html import report_page

        page = report_page(f"HO guidance report as of {now.date().isoformat()}", sections)
        if args.output and args.output != "-":
            Path(args.output).write_text(page, encoding="utf-8")
        else:
            sys.stdout.write(page)
    sys.stdout.flush()
    return 0


def _banner(patient: dict[str, Any] | None, evaluation: Evaluation, now: datetime) -> str:
    patient = patient or {}
    names = patient.get("name") or []
    name = ""
    if names and isinstance(names[0], dict):
        name = " ".join([*(str(g) for g in names[0].get("given") or []), str(names[0].get("family", ""))]).strip()
    parts = [
        name or f"Patient/{patient.get('id', 'unknown')}",
        str(patient.get("gender") or ""),
        f"born {patient['birthDate']}" if patient.get("birthDate") else "",
        f"hook {evaluation.hook}",
        f"as of {now.date().isoformat()}",
    ]
    return " · ".join(p for p in parts if p)


def cmd_send(args: argparse.Namespace) -> int:
    """POST a request (or a Bundle / resource / NDJSON folder turned into one) to a running service."""
    import httpx

    path = Path(args.file)
    if path.is_dir():
        resources, _ = files.ndjson_resources(path)
        body: dict[str, Any] = request_from_resources(resources, args.hook or "patient-view")
    else:
        try:
            data = read.loads(path.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        if not isinstance(data, dict):
            raise InputError("expected a JSON object (a CDS Hooks request, a FHIR Bundle or a FHIR resource)")
        if "hook" in data and "resourceType" not in data:
            body = data
        elif data.get("resourceType") == "Bundle":
            body = request_from_resources(bundle_entries(data), args.hook or "patient-view")
        elif isinstance(data.get("resourceType"), str):
            body = request_from_resources([data], args.hook or "patient-view")
        else:
            raise InputError("not FHIR: no resourceType, and not a CDS Hooks request (no hook)")
    if args.shift_to_now:
        anchor = _parse_now(args.recorded_at) if args.recorded_at else latest_date(body)
        if anchor is not None:
            body = shift_dates(body, datetime.now(UTC) - anchor)
    url = args.url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("HOFHIR_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(timeout=args.timeout) as client:
            if "/cds-services/" not in url:  # a base URL: the service that answers this hook
                url = f"{url}/cds-services/{_service_for(client, url, str(body.get('hook')), headers)}"
            answer = client.post(url, content=orjson.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        sys.stderr.write(f"hofhir send: cannot reach {url}: {exc}\n")
        return EXIT_UNREACHABLE
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    if answer.status_code >= 400:
        sys.stderr.write(f"hofhir send: HTTP {answer.status_code} from {url}\n")
        for issue in (payload or {}).get("issue", []) if isinstance(payload, dict) else []:
            where = f" (at {', '.join(issue.get('expression', []))})" if issue.get("expression") else ""
            sys.stderr.write(f"  {issue.get('severity', 'error')}: {issue.get('diagnostics', '')}{where}\n")
        if answer.status_code == 401:
            sys.stderr.write("  the service wants a JWT: set HOFHIR_TOKEN, or run it with HOFHIR_AUTH=off locally\n")
        return EXIT_REFUSED
    sys.stdout.buffer.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _service_for(client: Any, base: str, hook: str, headers: dict[str, str]) -> str:
    answer = client.get(f"{base}/cds-services", headers=headers)
    answer.raise_for_status()
    for service in answer.json().get("services", []):
        if service.get("hook") == hook:
            return str(service["id"])
    raise InputError(f"{base} has no service for the hook {hook!r}")


def cmd_serve(args: argparse.Namespace) -> int:
    from cds_hooks.server import serve

    return serve(args.settings, args.host, args.port, args.workers)


def cmd_worker(args: argparse.Namespace) -> int:
    from hofhir.worker.app import run_worker

    return run_worker(args.settings, args.extra or [])


def cmd_probe(args: argparse.Namespace) -> int:
    from hofhir.worker.app import probe

    return probe(args.settings, ready=args.ready, max_age=args.max_age)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hofhir",
        description="Heterotopic ossification clinical decision support (CDS Hooks 2.0, FHIR R4).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser(
        "evaluate", help="evaluate a CDS Hooks request, a FHIR Bundle or resource, or a folder of NDJSON"
    )
    ev.add_argument("file", metavar="FILE")
    ev.add_argument(
        "--hook", help=f"one of {', '.join(SUPPORTED_HOOKS)} (default: the request's hook, else patient-view)"
    )
    ev.add_argument("--now", metavar="ISO-DATETIME", help="evaluate as of this time (default: now)")
    ev.add_argument(
        "--format",
        choices=("json", "text", "html"),
        default="text",
        help="text: cards with their why; json: the CDS Hooks response; html: a self-contained report page",
    )
    ev.add_argument("-o", "--output", metavar="FILE", help="with --format html: write the page here (default stdout)")
    ev.add_argument(
        "--patient",
        metavar="ID",
        help="with an NDJSON folder or multi-patient Bundle: the patient to evaluate",
    )
    ev.set_defaults(func=cmd_evaluate)
    sv = sub.add_parser("serve", help="run the CDS Hooks service (embedded worker when HOFHIR_REDIS_URL is unset)")
    sv.add_argument("--host", help="default HOFHIR_HOST, else 127.0.0.1")
    sv.add_argument("--port", type=int, help="default HOFHIR_PORT, else 8080")
    sv.add_argument("--workers", type=int, help="gunicorn worker processes with Redis (embedded mode: always 1)")
    sv.set_defaults(func=cmd_serve)
    se = sub.add_parser(
        "send", help="POST a CDS Hooks request (or a Bundle / NDJSON made into one) to a running service"
    )
    se.add_argument("url", metavar="URL", help="the service URL (…/cds-services/ID) or its base URL")
    se.add_argument("file", metavar="FILE")
    se.add_argument("--hook", help="for a Bundle or NDJSON: the hook to call (default patient-view)")
    se.add_argument("--shift-to-now", action="store_true", help="move every date so the record ends today")
    se.add_argument(
        "--recorded-at",
        metavar="ISO-DATETIME",
        help="with --shift-to-now: the moment the record describes (default: its latest date)",
    )
    se.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    se.epilog = "A JWT for a service with auth on is read from HOFHIR_TOKEN."
    se.set_defaults(func=cmd_send)
    wk = sub.add_parser("worker", help="run a Celery worker (needs HOFHIR_REDIS_URL)")
    wk.epilog = "Other options are passed to `celery worker` (e.g. --hostname, --pool, --concurrency)."
    wk.set_defaults(func=cmd_worker)
    pr = sub.add_parser("probe", help="Kubernetes probes: `hofhir probe worker --alive|--ready`")
    pr.add_argument("target", choices=("worker",))
    group = pr.add_mutually_exclusive_group()
    group.add_argument("--alive", action="store_true", default=True)
    group.add_argument("--ready", action="store_true")
    pr.add_argument("--max-age", type=float, default=60.0, help="seconds since the last heartbeat")
    pr.set_defaults(func=cmd_probe)
    return parser


def _settings(command: Any) -> Settings | None:
    """The environment's Settings; None for `evaluate` when no HOFHIR_* variable is set (all defaults).

    `evaluate` then never imports pydantic-settings (a fifth of its start-up); a test checks that the
    defaults it relies on (knowledge and public_url unset) are the Settings defaults.
    """
    if command is cmd_evaluate and not any(name.upper().startswith(PREFIX) for name in os.environ):
        return None
    from hofhir.adapters.settings import Settings

    return Settings.from_env()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = unknown
    try:
        args.settings = _settings(args.func)  # the environment, parsed once, here
        code: int = args.func(args)
        return code
    except SettingsError as exc:  # one line saying what to set, not a traceback
        sys.stderr.write(f"hofhir: {exc}\n")
        return EXIT_BAD_INPUT
    except MissingData as exc:
        sys.stderr.write(f"hofhir: {exc}\n")
        return EXIT_MISSING_DATA
    except (InputError, KnowledgeError) as exc:
        sys.stderr.write(f"hofhir: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hofhir evaluate ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
