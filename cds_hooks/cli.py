"""`hofhir`: evaluate a file, serve the CDS Hooks service, run a worker, probe a worker.

The command lives at the edge because `evaluate --format json` prints exactly a CDS Hooks response body.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from cds_hooks.cards import render_response
from cds_hooks.prefetch import DeadlineMissed, PrefetchUnavailable, resolve_prefetch
from hofhir.adapters import files
from hofhir.adapters.settings import Settings, SettingsError
from hofhir.clinical.evaluate import SUPPORTED_HOOKS, Evaluation, evaluate
from hofhir.fhir import read
from hofhir.fhir.read import ClinicalInput, InputError
from hofhir.knowledge import Knowledge, KnowledgeError, knowledge_at

EXIT_BAD_INPUT = 2
EXIT_MISSING_DATA = 3


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


def print_text(evaluation: Evaluation, out: TextIO, colour: bool) -> None:
    reset = "\033[0m" if colour else ""
    pid = evaluation.trace.get("patient")
    who = f"Patient {pid}" if pid else "No Patient resource"
    out.write(
        f"{who}: {evaluation.hook}, {len(evaluation.guidance)} card(s), risk {evaluation.trace.get('riskLevel') or 'none'}\n"
    )
    for g in evaluation.guidance:
        tint = COLOURS.get(g.indicator.value, "") if colour else ""
        level = f" [{g.risk_level}]" if g.risk_level else ""
        out.write(f"\n{tint}{g.indicator.value.upper():8}{reset} {g.topic.value}{level}: {g.summary}\n")
        if g.rules:  # data-unreadable cites none
            out.write(f"         rules: {', '.join(g.rules)}\n")
        for s in g.suggestions:
            out.write(f"         suggests: {s.label}\n")
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
    settings: Settings = args.settings
    k = knowledge_at(settings.knowledge)
    now = _parse_now(args.now)
    inputs = load_inputs(Path(args.file), args.hook, args.patient, k)
    base_url = settings.public_url
    many = len(inputs) > 1
    for item in inputs:
        evaluation = evaluate(item, now, k)
        if args.format == "json":
            body: dict[str, Any] = render_response(evaluation.guidance, base_url)
            if many:  # a folder of several patients: one line per patient, saying whose it is
                body = {"patient": f"Patient/{evaluation.trace.get('patient')}", "response": body}
            sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 if not many else 0) + b"\n")
        else:
            print_text(evaluation, sys.stdout, colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    sys.stdout.flush()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from cds_hooks.app import serve

    serve(args.settings, args.host, args.port)
    return 0


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
    ev.add_argument("--format", choices=("json", "text"), default="text")
    ev.add_argument(
        "--patient",
        metavar="ID",
        help="with an NDJSON folder or multi-patient Bundle: the patient to evaluate",
    )
    ev.set_defaults(func=cmd_evaluate)
    sv = sub.add_parser("serve", help="run the CDS Hooks service (embedded worker when HOFHIR_REDIS_URL is unset)")
    sv.add_argument("--host", help="default HOFHIR_HOST, else 127.0.0.1")
    sv.add_argument("--port", type=int, help="default HOFHIR_PORT, else 8080")
    sv.set_defaults(func=cmd_serve)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = unknown
    try:
        args.settings = Settings.from_env()  # the environment, parsed once, here
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
