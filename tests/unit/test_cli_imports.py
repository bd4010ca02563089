"""`hofhir evaluate` on a local file loads no network, JWT or HTML code (issue 11: the CLI's start-up cost)."""

from __future__ import annotations

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
loaded = sorted(m for m in ("httpx", "jwt", "redis", "celery", "flask", "markdown_it") if m in sys.modules)
print(code, ",".join(loaded))
"""


def run(fmt: str) -> tuple[str, set[str]]:
    assert VIGNETTE.exists(), f"{VIGNETTE} is missing: the tests need ../shared"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(VIGNETTE), fmt], capture_output=True, text=True, cwd=ROOT, check=True
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
