"""The container image, checked without a Docker engine: the Dockerfile's rules, checkov's
Dockerfile checks, and the package the image installs (built here from the same files the
Dockerfile copies) carrying the knowledge base and the gunicorn configuration."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.ops.conftest import REPO, run_checkov

DOCKERFILE = REPO / "Dockerfile"


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            out.append([])
        assert out, "instructions before the first FROM"
        out[-1].append((instruction.upper(), args.strip()))
    return out


def test_dockerfile_is_multi_stage_with_a_lean_non_root_runtime() -> None:
    build, runtime = stages()
    assert build[0][1].endswith(" AS build") and runtime[0][1].endswith(" AS runtime")
    assert build[0][1].split()[0] == runtime[0][1].split()[0], "the virtualenv needs the same interpreter"
    assert "slim" in runtime[0][1]
    runtime_runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    for build_tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert build_tool not in runtime_runs, build_tool
    assert "pip uninstall -y pip setuptools wheel" in runtime_runs  # no installer left at run time
    assert ("COPY", "--from=build /opt/hofhir /opt/hofhir") in runtime
    [user] = [args for instruction, args in runtime if instruction == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, "numeric, so Kubernetes can verify runAsNonRoot"
    assert runtime.index(("USER", user)) > max(i for i, (ins, _) in enumerate(runtime) if ins == "RUN")
    [cmd] = [args for instruction, args in runtime if instruction == "CMD"]
    assert cmd.startswith("["), "exec form: gunicorn is PID 1 and receives SIGTERM itself"
    assert shlex.split(cmd.strip("[]").replace(",", " ")) == [
        "gunicorn",
        "-c",
        "python:cds_hooks.gunicorn_conf",
        "cds_hooks.app:create_app()",
    ]
    assert ("EXPOSE", "8080") in runtime
    assert not any(instruction == "ENTRYPOINT" for instruction, _ in runtime)


def test_dockerignore_lets_in_only_what_the_image_installs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: nothing enters the build context unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "hofhir", "cds_hooks"}
    copied = {
        source.rstrip("/").removeprefix("./")
        for stage in stages()
        for instruction, args in stage
        if instruction == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]  # the last one is the destination
    }
    assert copied == allowed


def test_checkov_passes_the_dockerfile() -> None:
    report = run_checkov(["--file", str(DOCKERFILE), "--framework", "dockerfile"], cwd=REPO)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    skipped = {
        c["check_id"]: c["check_result"].get("suppress_comment", "") for c in report["results"]["skipped_checks"]
    }
    # CKV_DOCKER_2 (HEALTHCHECK): Kubernetes ignores it; the probes live in k8s/. Nothing else skipped.
    assert set(skipped) == {"CKV_DOCKER_2"} and "Kubernetes" in skipped["CKV_DOCKER_2"]
    assert len(report["results"]["passed_checks"]) > 20


def test_the_installed_package_carries_the_knowledge_base(tmp_path: Path) -> None:
    # The build context the Dockerfile sees, then the same non-editable build it runs.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    for package in ("hofhir", "cds_hooks"):
        shutil.copytree(REPO / package, context / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.fail(f"building the wheel needs setuptools and wheel in this venv:\n{result.stderr}")
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("hofhir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    knowledge = sorted(p.name for p in (REPO / "hofhir" / "knowledge").iterdir() if p.suffix in {".toml", ".json"})
    assert knowledge, "the knowledge base is empty"
    for name in knowledge:
        assert f"hofhir/knowledge/{name}" in names, name
    assert {"cds_hooks/gunicorn_conf.py", "hofhir/adapters/metrics.py"} <= names
    # The preview page and its example patients (package-data), and nothing listed that does not exist.
    for folder, pattern in (("cds_hooks/ui", "*"), ("cds_hooks/examples", "*.json")):
        shipped = sorted(p.name for p in (REPO / folder).glob(pattern) if p.is_file() and p.suffix != ".py")
        assert shipped and all(f"{folder}/{name}" in names for name in shipped), folder
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hofhir = " in zipfile.ZipFile(wheel).read(entry_points).decode()
