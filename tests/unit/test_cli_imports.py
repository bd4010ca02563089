"""`hofhir evaluate` on a local file loads no network, JWT or HTML code, and no pydantic when its input passes
the element-table check and no HOFHIR_* variable is set (issue 11: the CLI's start-up cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIGNETTE = ROOT.parent / "shared" / "vignettes" / "s02.request.json"

PROBE = """
import contextlib, io, os, sys
from cds_hooks.cli import main
with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
    code = main(["evaluate", sys.argv[1], "--now", "2026-11-21T19:31:04+00:00", "--format", sys.argv[2]])
heavy = ("httpx", "jwt", "redis", "celery", "flask", "markdown_it", "pydantic", "pydantic_settings", "fhir")
loaded = sorted(m for m in heavy if m in sys.modules)
print(code, ",".join(loaded))
"""


def run(fmt: str, **env: str) -> tuple[str, set[str]]:
    assert VIGNETTE.exists(), f"{VIGNETTE} is missing: the tests need ../shared"
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("HOFHIR_")} | env
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(VIGNETTE), fmt],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env=environ,
    ).stdout.split()
    return out[0], set(out[1].split(",")) if len(out) > 1 else set()


def test_evaluate_json_loads_no_network_jwt_or_html_code() -> None:
    code, loaded = run("json")
    assert code == "0"
    assert loaded == set()


def test_evaluate_text_loads_markdown_but_no_network_code() -> None:
    code, loaded = run("text")
    assert code == "0"
    assert loaded == {"markdown_it"}


def test_evaluate_parses_the_settings_once_any_hofhir_variable_is_set() -> None:
    code, loaded = run("json", HOFHIR_PUBLIC_URL="https://cds.example.org")
    assert code == "0"
    assert loaded == {"pydantic", "pydantic_settings"}


def test_evaluate_with_a_bad_setting_still_says_what_to_set() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("HOFHIR_")} | {"HOFHIR_AUTH": "maybe"}
    done = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "evaluate", str(VIGNETTE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hofhir: ") and "HOFHIR_AUTH" in done.stderr
