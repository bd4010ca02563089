"""The house rules (design.md): the domain never imports the web edge or Flask; the clinical modules are
pure (no I/O, no clock read: the clock is passed in)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "hofhir/facts.py",
    "hofhir/guidance.py",
    "hofhir/evaluate.py",
    "hofhir/findings.py",
    "hofhir/clock.py",
    "hofhir/terminology.py",
    *[str(p.relative_to(ROOT)) for p in (ROOT / "hofhir" / "rules").glob("*.py")],
]
IO_MODULES = {"httpx", "requests", "redis", "socket", "subprocess", "celery", "flask", "urllib", "http"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "perf_counter", "monotonic"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_domain_never_imports_the_web_edge_or_flask() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imports(p) if m.split(".")[0] in ("cds_hooks", "flask", "werkzeug"))
        for p in (ROOT / "hofhir").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_clinical_modules_do_no_io_and_read_no_clock() -> None:
    problems: list[str] = []
    for rel in PURE:
        path = ROOT / rel
        problems += [f"{rel}: imports {m}" for m in imports(path) if m.split(".")[0] in IO_MODULES | {"time"}]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS:
                problems.append(f"{rel}:{node.lineno}: calls .{node.func.attr}()")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                problems.append(f"{rel}:{node.lineno}: opens a file")
    assert problems == []
