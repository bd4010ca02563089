"""The house rules (design.md), checked by import analysis rather than a hand list of files:

- nothing under `hofhir/clinical/` does I/O, reads a clock, or imports an adapter, the worker or the edge;
- `hofhir` never imports `cds_hooks` (nor Flask);
- dependencies point inward (`worker -> adapters -> clinical -> fhir -> knowledge`), never back up;
- no import loops between modules of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = {
    "httpx",
    "requests",
    "redis",
    "socket",
    "subprocess",
    "celery",
    "kombu",
    "flask",
    "werkzeug",
    "urllib",
    "http",
    "os",
    "pathlib",
    "io",
    "shutil",
    "time",
    "sqlite3",
    "threading",
    "prometheus_client",
    "jwt",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "perf_counter", "monotonic"}
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "glob", "rglob", "iterdir"}
FORBIDDEN_IN_CLINICAL = ("hofhir.adapters", "hofhir.worker", "cds_hooks")
# The layers of hofhir from the bottom up; a module may import its own layer or a lower one, never a higher one.
LAYERS = ["hofhir.knowledge", "hofhir.fhir", "hofhir.clinical", "hofhir.adapters", "hofhir.worker"]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count too)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


def project_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_clinical_core_is_found_by_its_folder() -> None:
    files = project_files("hofhir/clinical")
    names = {module_name(p) for p in files}
    # The pieces the design names are all inside the room the purity rule covers.
    for expected in ("hofhir.clinical.facts", "hofhir.clinical.model", "hofhir.clinical.evaluate"):
        assert expected in names
    assert any(n.startswith("hofhir.clinical.rules.") for n in names)


@pytest.mark.parametrize("path", project_files("hofhir/clinical"), ids=lambda p: str(p.relative_to(ROOT)))
def test_clinical_modules_do_no_io_read_no_clock_and_import_no_adapter(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    problems = [
        f"{rel}: imports {m}"
        for m in sorted(imports(path))
        if m.split(".")[0] in IO_MODULES or any(_is_under(m, f) for f in FORBIDDEN_IN_CLINICAL)
    ]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if isinstance(func, ast.Attribute) and name in CLOCK_CALLS:
                problems.append(f"{rel}:{node.lineno}: calls .{name}()")
            if name in FILE_CALLS:
                problems.append(f"{rel}:{node.lineno}: touches files ({name})")
    assert problems == []


def test_the_domain_never_imports_the_web_edge_or_flask() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imports(p) if m.split(".")[0] in ("cds_hooks", "flask", "werkzeug"))
        for p in project_files("hofhir")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_fhir_and_knowledge_layers_do_no_file_io_but_the_knowledge_loader() -> None:
    """fhir/ reads dicts, never files; NDJSON folders are read by adapters/files.py."""
    problems = []
    for path in project_files("hofhir/fhir"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name in FILE_CALLS:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert problems == []


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if _is_under(module, layer):
            return i
    return None


def test_no_arrow_runs_back_up() -> None:
    problems = []
    for path in project_files("hofhir"):
        here = _layer(module_name(path))
        if here is None:
            continue
        for m in imports(path):
            there = _layer(m)
            if there is not None and there > here:
                problems.append(f"{module_name(path)} -> {m}")
    assert problems == []


def test_no_import_loops() -> None:
    files = project_files("hofhir", "cds_hooks")
    names = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        targets = set()
        for m in imports(path):
            while m and m not in names:
                m = m.rpartition(".")[0]
            # a package's __init__ importing its own submodules is its face, not a loop
            if m and m != name and not _is_under(m, name):
                targets.add(m)
        graph[name] = targets
    # Tarjan: any strongly connected component with more than one module is a loop.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert loops == []
