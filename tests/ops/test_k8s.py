"""The Kubernetes manifests: every overlay renders, validates, passes checkov and our own rules.

Variants: overlays/dev, overlays/prod, and base + components/redis + components/keda together.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest
import yaml

from tests.ops.conftest import (
    K8S,
    KEDA_SCHEMA_DIR,
    OLDEST_KUBERNETES,
    REPO,
    VARIANTS,
    Manifest,
    run_checkov,
    tool,
)

if TYPE_CHECKING:
    from hofhir.adapters.settings import Settings

NAMESPACES = {"dev": "hofhir-dev", "prod": "hofhir", "all-components": "hofhir-all"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# Where Prometheus scrapes from: the one source that both the web's and the workers' policies admit.
MONITORING_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
# The container port each hofhir Deployment serves GET /metrics on (the web: its HTTP port).
METRICS_PORT_NAMES = {"hofhir-web": "http", "hofhir-worker": "metrics", "hofhir-worker-writeback": "metrics"}
# The worker Deployments: each one's HOFHIR_WORKER_ROLE, and the one NetworkPolicy that lets Prometheus in.
WORKER_ROLES = {"hofhir-worker": "evaluate", "hofhir-worker-writeback": "writeback"}
WORKER_INGRESS = {
    "hofhir-worker": "hofhir-worker-ingress",
    "hofhir-worker-writeback": "hofhir-worker-writeback-ingress",
}

# Every checkov check we skip, where, and why (the reason is also in the manifest, next to the
# annotation that tells checkov). A new skip fails this test until it is listed here.
#   CKV_K8S_35 (secrets as files, not environment variables): hofhir's settings contract is HOFHIR_*
#     environment variables; redis-server takes its password only as an argument.
#   CKV_K8S_43 (image by digest) and CKV_K8S_15 (imagePullPolicy Always), dev only: dev runs the tag
#     it just built (kind/minikube load it locally); prod pins a digest and passes both.
EXPECTED_SKIPS: dict[str, set[tuple[str, str]]] = {
    "dev": {
        ("CKV_K8S_35", "Deployment.hofhir-dev.hofhir-web"),
        ("CKV_K8S_35", "Deployment.hofhir-dev.hofhir-worker"),
        ("CKV_K8S_35", "Deployment.hofhir-dev.hofhir-worker-writeback"),
        ("CKV_K8S_35", "StatefulSet.hofhir-dev.hofhir-redis"),
        ("CKV_K8S_43", "Deployment.hofhir-dev.hofhir-web"),
        ("CKV_K8S_43", "Deployment.hofhir-dev.hofhir-worker"),
        ("CKV_K8S_43", "Deployment.hofhir-dev.hofhir-worker-writeback"),
        ("CKV_K8S_43", "StatefulSet.hofhir-dev.hofhir-redis"),
        ("CKV_K8S_15", "Deployment.hofhir-dev.hofhir-web"),
        ("CKV_K8S_15", "Deployment.hofhir-dev.hofhir-worker"),
        ("CKV_K8S_15", "Deployment.hofhir-dev.hofhir-worker-writeback"),
        ("CKV_K8S_15", "StatefulSet.hofhir-dev.hofhir-redis"),
    },
    "prod": {
        ("CKV_K8S_35", "Deployment.hofhir.hofhir-web"),
        ("CKV_K8S_35", "Deployment.hofhir.hofhir-worker"),
        ("CKV_K8S_35", "Deployment.hofhir.hofhir-worker-writeback"),
    },
    "all-components": {
        ("CKV_K8S_35", "Deployment.hofhir-all.hofhir-web"),
        ("CKV_K8S_35", "Deployment.hofhir-all.hofhir-worker"),
        ("CKV_K8S_35", "Deployment.hofhir-all.hofhir-worker-writeback"),
        ("CKV_K8S_35", "StatefulSet.hofhir-all.hofhir-redis"),
    },
}

# A workload that breaks most of our rules, to show that checkov and KEDA's schema do catch things.
BROKEN_DEPLOYMENT: Manifest = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "broken", "namespace": "broken"},
    "spec": {
        "selector": {"matchLabels": {"app": "broken"}},
        "template": {
            "metadata": {"labels": {"app": "broken"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:latest", "securityContext": {"privileged": True}}]},
        },
    },
}


# ---------------------------------------------------------------------------------------- helpers


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Does a label selector (matchLabels form, or a Service's plain map) select these labels?"""
    assert "matchExpressions" not in selector, "keep selectors to matchLabels: easy to read and check"
    match = selector.get("matchLabels", selector)
    return all(labels.get(k) == v for k, v in match.items())


def pod_labels(workload: Manifest) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def secret_example_keys() -> set[str]:
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    return set(example["stringData"])


def keda_validate(objects: list[Manifest]) -> list[dict[str, Any]]:
    if not (KEDA_SCHEMA_DIR / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        pytest.fail(f"KEDA's schema is not installed: cd {KEDA_SCHEMA_DIR} && npm ci")
    node = tool("node", "install Node.js (make services)")
    result = subprocess.run(
        [node, "validate.mjs"],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        cwd=KEDA_SCHEMA_DIR,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: list[dict[str, Any]] = json.loads(result.stdout)
    return out


# ------------------------------------------------------------------ rendering and schema validation


@pytest.mark.parametrize("variant", VARIANTS)
def test_renders_every_object_into_its_namespace(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert {"ServiceAccount", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACES[variant], doc["metadata"]["name"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_validates_strictly_against_kubernetes(rendered: dict[str, list[Manifest]], variant: str, version: str) -> None:
    validated = 0
    for doc in rendered[variant]:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # not a Kubernetes kind: KEDA's own schema checks it below
        kubernetes_validate.validate(doc, version, strict=True)
        validated += 1
    assert validated >= 10


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Manifest]]) -> None:
    web = copy.deepcopy(named(rendered["prod"], "Deployment", "hofhir-web"))
    web["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, OLDEST_KUBERNETES, strict=True)


@pytest.mark.parametrize("variant", ["prod", "all-components"])
def test_keda_objects_validate_against_kedas_schema(rendered: dict[str, list[Manifest]], variant: str) -> None:
    keda = [d for d in rendered[variant] if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in keda} == {"ScaledObject", "TriggerAuthentication"}
    results = keda_validate(keda)
    assert [r["errors"] for r in results] == [[] for _ in keda], results


def test_kedas_schema_rejects_an_unquoted_trigger_value(rendered: dict[str, list[Manifest]]) -> None:
    scaled = copy.deepcopy(named(rendered["prod"], "ScaledObject", "hofhir-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 20  # what `listLength: 20` in YAML gives
    [result] = keda_validate([scaled])
    assert any("listLength" in e and "string" in e for e in result["errors"]), result


# -------------------------------------------------------------------------------------- checkov


@pytest.fixture(scope="session")
def checkov_k8s(rendered_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over every rendered variant and one broken Deployment (file name = variant)."""
    folder = tmp_path_factory.mktemp("checkov")
    for path in rendered_dir.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    (folder / "broken.yaml").write_text(yaml.safe_dump(BROKEN_DEPLOYMENT))
    report = run_checkov(["--directory", str(folder), "--framework", "kubernetes"], cwd=folder)
    assert report["summary"]["parsing_errors"] == 0
    return report


def checks_for(report: dict[str, Any], kind: str, variant: str) -> list[dict[str, Any]]:
    return [c for c in report["results"][kind] if Path(c["file_path"]).stem == variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkov_passes(checkov_k8s: dict[str, Any], variant: str) -> None:
    failed = checks_for(checkov_k8s, "failed_checks", variant)
    assert [(c["check_id"], c["resource"], c["check_name"]) for c in failed] == []
    assert len(checks_for(checkov_k8s, "passed_checks", variant)) > 100


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkov_skips_only_the_named_checks_with_reasons(checkov_k8s: dict[str, Any], variant: str) -> None:
    skipped = checks_for(checkov_k8s, "skipped_checks", variant)
    assert {(c["check_id"], c["resource"]) for c in skipped} == EXPECTED_SKIPS[variant]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20 and reason != "No comment provided", check


def test_checkov_catches_a_broken_workload(checkov_k8s: dict[str, Any]) -> None:
    failed = {c["check_id"] for c in checks_for(checkov_k8s, "failed_checks", "broken")}
    # liveness, readiness, CPU limit, privileged, privilege escalation, read-only root, digest
    assert {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_11", "CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_22"} <= failed


def test_no_secret_is_committed_under_k8s(tmp_path: Path) -> None:
    # A copy of k8s/ next to a planted key: the planted one must be found, nothing else.
    shutil.copytree(K8S, tmp_path / "k8s")
    (tmp_path / "planted.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n"
        "  aws_access_key_id: AKIAIOSFODNN7EXAMPLQ\n"
    )
    report = run_checkov(["--directory", str(tmp_path), "--framework", "secrets"], cwd=tmp_path)
    found = {Path(c["file_path"]).name for c in report["results"]["failed_checks"]}
    assert found == {"planted.yaml"}


# ------------------------------------------------------------------------------------ our rules


@pytest.mark.parametrize("variant", VARIANTS)
def test_selectors_match_labels(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    pods = {w["metadata"]["name"]: pod_labels(w) for w in workloads(docs)}
    for workload in workloads(docs):
        assert selects(workload["spec"]["selector"], pod_labels(workload)), workload["metadata"]["name"]
    for service in of_kind(docs, "Service"):
        targets = [n for n, labels in pods.items() if selects(service["spec"]["selector"], labels)]
        assert len(targets) == 1, (service["metadata"]["name"], targets)
        workload = next(w for w in workloads(docs) if w["metadata"]["name"] == targets[0])
        port_names = {p["name"] for c in containers(workload) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        targets = [n for n, labels in pods.items() if selects(pdb["spec"]["selector"], labels)]
        assert targets == [pdb["metadata"]["name"]], (pdb["metadata"]["name"], targets)
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        if selector:  # {} is every pod of the namespace
            assert any(selects(selector, labels) for labels in pods.values()), policy["metadata"]["name"]
    deployments = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    for scaler in of_kind(docs, "HorizontalPodAutoscaler") + of_kind(docs, "ScaledObject"):
        target = scaler["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment" and target["name"] in deployments


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_has_probes_requests_and_limits(rendered: dict[str, list[Manifest]], variant: str) -> None:
    for workload in workloads(rendered[variant]):
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} has no {probe}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"].get(bound, {})), f"{where} {bound}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_restricted_pod_security_everywhere(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    for namespace in of_kind(docs, "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"], name
            assert context.get("runAsNonRoot", True) is True and context.get("runAsUser", 10001) >= 10000
            assert context.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp is not an emptyDir"
    for account in of_kind(docs, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]
    for workload in workloads(docs):
        assert workload["spec"]["template"]["spec"]["serviceAccountName"] in {
            a["metadata"]["name"] for a in of_kind(docs, "ServiceAccount")
        }


def minimum_replicas(docs: list[Manifest], workload: Manifest) -> int:
    name = workload["metadata"]["name"]
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return int(hpa["spec"].get("minReplicas", 1))
    for scaled in of_kind(docs, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaled["spec"].get("minReplicaCount", 0))
    return int(workload["spec"].get("replicas", 1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_pod_disruption_budgets_allow_a_drain(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert {p["metadata"]["name"] for p in budgets} == {"hofhir-web", *WORKER_ROLES}
    for pdb in budgets:
        workload = named(docs, "Deployment", pdb["metadata"]["name"])
        replicas = minimum_replicas(docs, workload)
        spec = pdb["spec"]
        if "maxUnavailable" in spec:
            value = spec["maxUnavailable"]
            # A percentage is rounded up by Kubernetes; 0 or 0% would forbid every eviction.
            allowed = -(-replicas * int(value[:-1]) // 100) if isinstance(value, str) else int(value)
        else:
            value = spec["minAvailable"]
            needed = -(-replicas * int(value[:-1]) // 100) if isinstance(value, str) else int(value)
            allowed = replicas - needed
        assert allowed >= 1, f"{pdb['metadata']['name']}: no pod may be evicted at {replicas} replicas"
        # A crash-looping pod must not hold a node drain hostage.
        assert spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


def gunicorn_setting(name: str) -> int:
    # In a subprocess: importing the config sets PROMETHEUS_MULTIPROC_DIR, which must not leak here.
    code = f"import cds_hooks.gunicorn_conf as c; print(c.{name})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    )
    return int(out.stdout.strip())


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def hofhir_config(docs: list[Manifest]) -> Manifest:
    [config] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("hofhir-config-")]
    return config


@pytest.mark.parametrize("variant", VARIANTS)
def test_web_probes_and_graceful_shutdown(rendered: dict[str, list[Manifest]], variant: str) -> None:
    web = named(rendered[variant], "Deployment", "hofhir-web")
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["gunicorn", "-c", "python:cds_hooks.gunicorn_conf"]
    assert container["command"][3] == "cds_hooks.app:create_app()"
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    # The pod must outlive preStop + gunicorn's graceful shutdown, or requests are cut mid-answer.
    grace = web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(sleep[1]) + gunicorn_setting("graceful_timeout")
    assert "replicas" not in web["spec"], "the HorizontalPodAutoscaler owns the web replica count"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", WORKER_ROLES)
def test_worker_probes_read_the_heartbeat(rendered: dict[str, list[Manifest]], variant: str, name: str) -> None:
    docs = rendered[variant]
    worker = named(docs, "Deployment", name)
    [container] = worker["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["hofhir", "worker"]
    alive = ["hofhir", "probe", "worker", "--alive", "--max-age", "60"]
    assert container["startupProbe"]["exec"]["command"] == alive
    assert container["livenessProbe"]["exec"]["command"] == alive
    assert container["readinessProbe"]["exec"]["command"] == ["hofhir", "probe", "worker", "--ready"]
    # The heartbeat folder is on the writable /tmp emptyDir.
    config = hofhir_config(docs)["data"]
    assert config["HOFHIR_WORKER_HEARTBEAT_DIR"].startswith("/tmp/")
    # Celery's soft shutdown, then the hand-back of unfinished tasks, must end before SIGKILL.
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(config["HOFHIR_SOFT_SHUTDOWN_S"]) + 15
    # The worker listens on one port: its metrics (test_pods_serve_metrics_where_prometheus_scrapes).
    assert [p["name"] for p in container["ports"]] == ["metrics"]


def container_port(container: dict[str, Any], port: int | str) -> dict[str, Any]:
    """The container's port entry that a number or a port name refers to (a NetworkPolicy may use either)."""
    found = [p for p in container.get("ports", []) if port in (p["containerPort"], p.get("name"))]
    assert len(found) == 1, (container["name"], port, container.get("ports"))
    entry: dict[str, Any] = found[0]
    return entry


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_serve_metrics_where_prometheus_scrapes(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == set(METRICS_PORT_NAMES)
    for name, port_name in METRICS_PORT_NAMES.items():
        template = deployments[name]["spec"]["template"]
        [container] = template["spec"]["containers"]
        port = container_port(container, port_name)
        assert port["protocol"] == "TCP", name
        # Annotation-based discovery reads these; a port that is not the served one scrapes nothing.
        annotations = template["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations.get("prometheus.io/path") == "/metrics", name
        assert annotations.get("prometheus.io/port") == str(port["containerPort"]), name
    for name in WORKER_ROLES:
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        [port] = container["ports"]  # the metrics port, named, and nothing else
        assert port == {"name": "metrics", "containerPort": port["containerPort"], "protocol": "TCP"}, name
        # `hofhir worker` serves /metrics only when HOFHIR_WORKER_METRICS_PORT is set, on that port: it is
        # set on the worker container itself (the ConfigMap is shared with the web) to the declared port.
        setting = env_of(container).get("HOFHIR_WORKER_METRICS_PORT", {})
        assert setting.get("value") == str(port["containerPort"]), f"{name} HOFHIR_WORKER_METRICS_PORT: {setting}"
        assert port["containerPort"] != 8080, "the web's port: keep them apart so a policy names one of them"
        # The per-process metric files must land on the writable /tmp emptyDir (the worker's default does).
        folder = env_of(container).get("PROMETHEUS_MULTIPROC_DIR", {}).get("value") or hofhir_config(docs)["data"].get(
            "PROMETHEUS_MULTIPROC_DIR", "/tmp/hofhir-worker-metrics"
        )
        assert folder.startswith("/tmp/"), folder
    assert "HOFHIR_WORKER_METRICS_PORT" not in hofhir_config(docs)["data"]


def test_every_setting_the_manifests_set_is_read_by_the_code(rendered: dict[str, list[Manifest]]) -> None:
    # A misspelt name (HOFHIR_WORKER_METRIC_PORT) would validate everywhere and silently do nothing.
    # What the code reads: the one Settings class's fields (HOFHIR_ + the field name), and literal names
    # read elsewhere (gunicorn_conf reads its own before the app exists).
    from hofhir.adapters.settings import PREFIX, Settings

    read: set[str] = {PREFIX + name.upper() for name in Settings.model_fields}
    for path in [*(REPO / "hofhir").rglob("*.py"), *(REPO / "cds_hooks").rglob("*.py")]:
        read |= set(re.findall(r"\"(HOFHIR_[A-Z0-9_]+)\"", path.read_text()))
    for docs in rendered.values():
        for name in ("hofhir-web", *WORKER_ROLES):
            for container in containers(named(docs, "Deployment", name)):
                assert {v for v in env_of(container) if v.startswith("HOFHIR_")} <= read, name
        assert set(hofhir_config(docs)["data"]) <= read


@pytest.mark.parametrize("variant", VARIANTS)
def test_environment_references_resolve(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    config_maps = {c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")}
    example_keys = secret_example_keys()
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            defined: set[str] = set()
            for entry in container.get("env", []):
                # $(VAR) expands only from variables defined earlier in the list.
                for ref in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                    assert ref in defined, f"{entry['name']} uses $({ref}) before it is defined"
                secret = entry.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert secret["name"] == "hofhir-secrets"
                    assert secret["key"] in example_keys, f"{secret['key']} missing from secret.example.yaml"
                defined.add(entry["name"])
            for arg in container.get("args", []):
                for ref in re.findall(r"\$\((\w+)\)", arg):
                    assert ref in defined
            if workload["metadata"]["labels"]["app.kubernetes.io/name"] == "hofhir":
                settings = set(env_of(container)) | set(hofhir_config(docs)["data"])
                assert "HOFHIR_REDIS_URL" in settings, "web and workers need the broker"
                assert "HOFHIR_AUTH" not in settings, "authentication stays on in every overlay"
    for trigger_auth in of_kind(docs, "TriggerAuthentication"):
        for ref in trigger_auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "hofhir-secrets" and ref["key"] in example_keys
    # The dev placeholders cover every key dev reads; the example file lists placeholders only.
    for secret in of_kind(docs, "Secret"):
        assert set(secret["data"]) <= example_keys
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert all(v.count("<") >= 1 for v in example["stringData"].values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policies(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    deny = policies["hofhir-default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    web_pods = pod_labels(named(docs, "Deployment", "hofhir-web"))
    ingress_to_web = [
        s
        for s in policies.values()
        if "Ingress" in s["policyTypes"] and selects(s["podSelector"], web_pods) and s["podSelector"]
    ]
    assert len(ingress_to_web) == 1
    sources = [peer for rule in ingress_to_web[0]["ingress"] for peer in rule["from"]]
    assert sources and all(set(peer) == {"namespaceSelector"} for peer in sources)
    assert [p["port"] for rule in ingress_to_web[0]["ingress"] for p in rule["ports"]] == [8080]
    # Policies for every pod of the namespace let nothing in: each way in names the pods it opens.
    for name, spec in policies.items():
        if not spec["podSelector"] and "Ingress" in spec["policyTypes"]:
            assert not spec.get("ingress"), name
    # Prometheus scrapes each worker Deployment from where it scrapes the web, and nothing else reaches
    # them: one policy each, one source (the monitoring namespace), one port (the worker's `metrics` port).
    assert MONITORING_PEER in sources
    for worker_name, policy_name in WORKER_INGRESS.items():
        worker = named(docs, "Deployment", worker_name)
        [worker_container] = worker["spec"]["template"]["spec"]["containers"]
        ingress_to_workers = {
            name: spec
            for name, spec in policies.items()
            if "Ingress" in spec["policyTypes"]
            and selects(spec["podSelector"], pod_labels(worker))
            and spec.get("ingress")
        }
        assert list(ingress_to_workers) == [policy_name], worker_name
        [rule] = ingress_to_workers[policy_name]["ingress"]
        assert rule.get("from") == [MONITORING_PEER], rule  # no `from` would admit every source
        [allowed] = rule.get("ports") or [{}]  # no `ports` would admit every port
        assert "port" in allowed and allowed.get("protocol", "TCP") == "TCP" and "endPort" not in allowed, allowed
        assert container_port(worker_container, allowed["port"]).get("name") == "metrics"
    redis = [w for w in workloads(docs) if w["kind"] == "StatefulSet"]
    for statefulset in redis:
        labels = pod_labels(statefulset)
        for spec in policies.values():
            if "Ingress" not in spec["policyTypes"] or not spec["podSelector"]:
                continue
            if not selects(spec["podSelector"], labels):
                continue
            for rule in spec["ingress"]:
                for peer in rule["from"]:
                    hofhir_pods = peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "hofhir"}
                    keda = peer.get("namespaceSelector", {}).get("matchLabels") == {
                        "kubernetes.io/metadata.name": "keda"
                    }
                    assert (hofhir_pods and "namespaceSelector" not in peer) or keda, peer
                assert [p["port"] for p in rule["ports"]] == [6379]


def test_operations_guide_lists_every_network_policy_and_the_metrics_ports(
    rendered: dict[str, list[Manifest]],
) -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    network = guide.split("\n## Network\n", 1)[1].split("\n## ", 1)[0]
    for docs in rendered.values():
        for policy in of_kind(docs, "NetworkPolicy"):
            assert f"`{policy['metadata']['name']}`" in network, policy["metadata"]["name"]
        for name, port_name in METRICS_PORT_NAMES.items():
            [container] = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
            port = str(container_port(container, port_name)["containerPort"])
            assert re.search(rf"\b{port}\b", network), f"{name}: port {port} is not in the Network section"


def test_the_example_issuers_file_is_what_the_app_reads() -> None:
    from cds_hooks.auth import settings_from_env

    settings = settings_from_env({"HOFHIR_AUTH_ISSUERS": f"@{K8S / 'base' / 'issuers.json'}"})
    assert settings.enabled and list(settings.issuers) == ["https://ehr.example.org"]


def test_redis_component_is_durable_and_never_evicts(rendered: dict[str, list[Manifest]]) -> None:
    redis = named(rendered["dev"], "StatefulSet", "hofhir-redis")
    assert redis["spec"]["replicas"] == 1
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--appendonly"] == "yes" and pairs["--maxmemory-policy"] == "noeviction"
    assert pairs["--requirepass"] == "$(REDIS_PASSWORD)"
    assert env_of(container)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"
    [claim] = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    web = named(rendered["dev"], "Deployment", "hofhir-web")
    url = env_of(web["spec"]["template"]["spec"]["containers"][0])["HOFHIR_REDIS_URL"]["value"]
    assert url == "redis://:$(REDIS_PASSWORD)@hofhir-redis:6379/0"


def worker_settings(docs: list[Manifest], deployment: Manifest) -> Settings:
    """The Settings a worker container starts with: hofhir-config, then its own literal `env` values (Secrets
    and $(VAR) references left out: no queue depends on them), read by the code's own Settings."""
    from hofhir.adapters.settings import Settings

    [container] = deployment["spec"]["template"]["spec"]["containers"]
    environ = dict(hofhir_config(docs)["data"])
    for entry in container.get("env", []):
        if "value" in entry and "$(" not in entry["value"]:
            environ[entry["name"]] = entry["value"]
    # The pods read the issuers from the mounted ConfigMap; here, from the file it is generated from.
    assert environ["HOFHIR_AUTH_ISSUERS"] == "@/etc/hofhir/auth/issuers.json"
    environ["HOFHIR_AUTH_ISSUERS"] = f"@{K8S / 'base' / 'issuers.json'}"
    return Settings.from_env(environ)


def worker_queues_and_pool(docs: list[Manifest], deployment: Manifest) -> tuple[set[str], str]:
    """What `hofhir worker` consumes and on which pool, as the code derives it from the pod's settings."""
    from hofhir.worker.app import _role_options

    options = _role_options(worker_settings(docs, deployment))
    queues = set(options[options.index("-Q") + 1].split(","))
    pool = options[options.index("--pool") + 1] if "--pool" in options else "prefork"
    return queues, pool


def routed_queues() -> set[str]:
    """Every queue the code sends tasks to: the default queue and each task route's."""
    from hofhir.adapters.settings import Settings
    from hofhir.worker.app import make_celery

    conf = make_celery(Settings.from_env({})).conf
    return {conf.task_default_queue, *(route["queue"] for route in conf.task_routes.values())}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_worker_deployment_runs_its_own_role_and_queue(rendered: dict[str, list[Manifest]], variant: str) -> None:
    from hofhir.worker.app import QUEUE, WRITEBACK_QUEUE

    docs = rendered[variant]
    # No third worker (the default role `all` would take both queues on processes).
    runs_worker = {
        d["metadata"]["name"]
        for d in of_kind(docs, "Deployment")
        if any(c.get("command") == ["hofhir", "worker"] for c in containers(d))
    }
    assert runs_worker == set(WORKER_ROLES)
    # The role is each container's own: in the shared ConfigMap it would give both Deployments one role.
    assert "HOFHIR_WORKER_ROLE" not in hofhir_config(docs)["data"]
    consumed: dict[str, set[str]] = {}
    for name, role in WORKER_ROLES.items():
        deployment = named(docs, "Deployment", name)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert env_of(container)["HOFHIR_WORKER_ROLE"] == {"name": "HOFHIR_WORKER_ROLE", "value": role}
        assert worker_settings(docs, deployment).worker_role == role
        consumed[name], pool = worker_queues_and_pool(docs, deployment)
        assert pool == ("threads" if role == "writeback" else "prefork"), (name, pool)
    # Hook evaluations (CPU) on processes only in hofhir-worker, write-back (I/O) only in the threads worker.
    assert consumed == {"hofhir-worker": {QUEUE}, "hofhir-worker-writeback": {WRITEBACK_QUEUE}}
    # Every queue the code routes a task to has its consumer.
    assert set().union(*consumed.values()) == routed_queues()
    # Credentials only where the work needs them: the FHIR server's for write-back; evaluations get their
    # data from the web pods, and Subscription notifications are checked by the web pods.
    secrets = {
        name: {
            e["valueFrom"]["secretKeyRef"]["key"]
            for c in containers(named(docs, "Deployment", name))
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for name in WORKER_ROLES
    }
    redis_keys = {"redis-url", "redis-password"}
    assert secrets["hofhir-worker"] <= redis_keys, secrets
    assert secrets["hofhir-worker-writeback"] - redis_keys == {"fhir-token"}, secrets
    threads = named(docs, "Deployment", "hofhir-worker-writeback")["spec"]["template"]["spec"]["containers"][0]
    assert worker_settings(docs, named(docs, "Deployment", "hofhir-worker-writeback")).writeback_concurrency == int(
        env_of(threads)["HOFHIR_WRITEBACK_CONCURRENCY"]["value"]
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_worker_budget_and_policy_selects_one_deployments_pods(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    docs = rendered[variant]
    pods = {name: pod_labels(named(docs, "Deployment", name)) for name in WORKER_ROLES}
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    for name, deployment_pods in pods.items():
        deployment = named(docs, "Deployment", name)
        budget = named(docs, "PodDisruptionBudget", name)
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        selectors = {
            "Deployment": deployment["spec"]["selector"],
            "PodDisruptionBudget": budget["spec"]["selector"],
            "NetworkPolicy": policies[WORKER_INGRESS[name]]["podSelector"],
            **{f"topologySpread {i}": c["labelSelector"] for i, c in enumerate(spread)},
        }
        for what, selector in selectors.items():
            # Its own pods, and not the other worker's: overlapping Deployment selectors make two
            # controllers fight over pods; an overlapping budget would count the other's pods.
            assert [n for n, labels in pods.items() if selects(selector, labels)] == [name], (what, name)
        assert selects(deployment["spec"]["selector"], deployment_pods)


EGRESS_ANYWHERE = [None, [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]


def egress_rules(docs: list[Manifest], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every egress rule of every NetworkPolicy that selects pods with these labels."""
    return [
        rule
        for policy in of_kind(docs, "NetworkPolicy")
        if "Egress" in policy["spec"]["policyTypes"] and selects(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("egress", [])
    ]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", WORKER_ROLES)
def test_workers_may_reach_dns_redis_and_https(rendered: dict[str, list[Manifest]], variant: str, name: str) -> None:
    # Default deny covers egress too: each worker needs DNS and its broker; the write-back worker also the
    # FHIR server and its SMART token endpoint over HTTPS, at addresses not known in advance; the
    # evaluation worker nothing more.
    docs = rendered[variant]
    rules = egress_rules(docs, pod_labels(named(docs, "Deployment", name)))

    def allowed(port: int, protocol: str = "TCP") -> list[dict[str, Any]]:
        return [r for r in rules if any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in r["ports"])]

    assert any(r.get("to") is None for r in allowed(53, "UDP")) and any(r.get("to") is None for r in allowed(53))
    if WORKER_ROLES[name] == "writeback":
        assert any(r.get("to") in EGRESS_ANYWHERE for r in allowed(443)), "no HTTPS egress to the FHIR server"
    else:  # evaluation workers call out to nothing but Redis (and DNS)
        assert allowed(443) == [], "an evaluation worker may call out over HTTPS"
    redis = [w for w in workloads(docs) if w["kind"] == "StatefulSet"]
    if redis:  # components/redis: to the Redis pods only, on 6379
        [statefulset] = redis
        to_redis = [peer for r in allowed(6379) for peer in r.get("to") or []]
        assert any(selects(peer["podSelector"], pod_labels(statefulset)) for peer in to_redis if "podSelector" in peer)
    else:  # an external Redis (prod): 6379 or TLS on 6380
        assert allowed(6379) and allowed(6380)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_web_may_call_out_over_https(rendered: dict[str, list[Manifest]], variant: str) -> None:
    """Prefetch from the EHRs' FHIR servers and the issuers' JWKS: addresses not known in advance."""
    docs = rendered[variant]
    rules = egress_rules(docs, pod_labels(named(docs, "Deployment", "hofhir-web")))
    https = [r for r in rules if any(p["port"] == 443 for p in r["ports"])]
    assert any(r.get("to") in EGRESS_ANYWHERE for r in https)


@pytest.mark.parametrize("variant", ["prod", "all-components"])
def test_keda_scales_each_worker_on_its_own_queue(rendered: dict[str, list[Manifest]], variant: str) -> None:
    docs = rendered[variant]
    scaled_objects = of_kind(docs, "ScaledObject")
    assert sorted(s["spec"]["scaleTargetRef"]["name"] for s in scaled_objects) == sorted(WORKER_ROLES)
    for scaled in scaled_objects:
        target = named(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        [trigger] = scaled["spec"]["triggers"]
        # The Redis list KEDA measures is the one queue the Deployment consumes (Celery's Redis transport
        # keeps a queue's waiting messages in a list named after it).
        [queue], _ = worker_queues_and_pool(docs, target)
        assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == queue, scaled["metadata"]["name"]
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
        assert trigger["metadata"]["listLength"].isdigit() and int(trigger["metadata"]["listLength"]) >= 1
        named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert scaled["spec"]["minReplicaCount"] >= 1, "a task must not wait for a worker to start"
        assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["fallback"]["replicas"] >= 1
        # KEDA owns the count; a fixed one in the Deployment would fight it on every apply.
        assert "replicas" not in target["spec"], target["metadata"]["name"]
        # The managed Redis of prod speaks TLS only; the in-cluster one does not.
        assert trigger["metadata"]["enableTLS"] == ("true" if variant == "prod" else "false")


def test_prod_pins_the_image_scales_up_and_uses_an_external_redis(rendered: dict[str, list[Manifest]]) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    for workload in workloads(prod):
        for container in containers(workload):
            assert re.search(r"@sha256:[0-9a-f]{64}$", container["image"]), container["image"]
    for workload in workloads(dev):
        for container in containers(workload):
            assert not container["image"].endswith(":latest") and ":" in container["image"]
    assert of_kind(prod, "StatefulSet") == [] and of_kind(prod, "Secret") == []
    for name in ("hofhir-web", *WORKER_ROLES):
        container = named(prod, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        ref = env_of(container)["HOFHIR_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "hofhir-secrets", "key": "redis-url"}
        assert minimum_replicas(prod, named(prod, "Deployment", name)) > minimum_replicas(
            dev, named(dev, "Deployment", name)
        )
    ingress = named(prod, "Ingress", "hofhir")["spec"]
    assert ingress["tls"] and ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]
    # EHRs sign the URL they call into the JWT: the service must know it as the Ingress serves it.
    assert hofhir_config(prod)["data"]["HOFHIR_PUBLIC_URL"] == f"https://{ingress['rules'][0]['host']}"
