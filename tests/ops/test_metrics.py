"""hofhir.adapters.metrics: the names operators' dashboards and alerts rely on, and both exposition modes."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hofhir.adapters import metrics
from tests.ops.conftest import REPO

# name -> (type, labels): what docs/operations.md and the alerts there are written against.
CONTRACT = {
    "hofhir_http_requests": ("counter", ("service", "status")),
    "hofhir_hook_latency_seconds": ("histogram", ("hook",)),
    "hofhir_deadline_misses": ("counter", ("service",)),
    "hofhir_inline_fallbacks": ("counter", ("reason",)),
    "hofhir_cards": ("counter", ("topic", "indicator")),
    "hofhir_feedback": ("counter", ("topic", "outcome", "reason")),
    "hofhir_notifications": ("counter", ("kind",)),
    "hofhir_writeback": ("counter", ("result",)),
    "hofhir_dead_letter_size": ("gauge", ()),
    "hofhir_task_duration_seconds": ("histogram", ("task",)),
    "hofhir_build_info": ("gauge", ("version", "knowledge_version")),
}


def families(body: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def sample_value(body: bytes, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_every_metric_of_the_contract_is_exposed_with_its_labels() -> None:
    exposed = {}
    for family in text_string_to_metric_families(metrics.render_metrics()[0].decode()):
        exposed[family.name] = family.type
    for name, (kind, _labels) in CONTRACT.items():
        assert exposed.get(name) == kind, name
    declared = {
        m._name: (m._type, tuple(m._labelnames))
        for m in vars(metrics).values()
        if hasattr(m, "_labelnames") and hasattr(m, "_name")
    }
    for name, (kind, labels) in CONTRACT.items():
        assert declared[name] == (kind, labels), name


def test_operations_guide_names_only_real_metrics_and_all_of_them() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    mentioned = set(re.findall(r"\b(hofhir_[a-z_]+)\b", guide))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    exposed = {name + ("_total" if kind == "counter" else "") for name, (kind, _) in CONTRACT.items()}
    for name in mentioned:
        base = next((name.removesuffix(s) for s in suffixes if name.endswith(s) and name not in exposed), name)
        assert name in exposed or base in exposed or base + "_total" in exposed, name
    assert exposed <= mentioned, exposed - mentioned


def test_counting_shows_in_the_text_format() -> None:
    before = metrics.render_metrics()[0]
    labels = {"service": "ops-test-service", "status": "503"}
    start = sample_value(before, "hofhir_http_requests_total", labels) or 0.0
    metrics.HTTP_REQUESTS.labels(**labels).inc()
    metrics.HTTP_REQUESTS.labels(**labels).inc()
    metrics.HOOK_LATENCY.labels(hook="ops-test-hook").observe(0.42)
    body, content_type = metrics.render_metrics()
    assert content_type.startswith("text/plain")
    assert sample_value(body, "hofhir_http_requests_total", labels) == start + 2
    # 0.42 s lands in the 0.5 s bucket (the hook budget) but not in the 0.4 s one.
    assert sample_value(body, "hofhir_hook_latency_seconds_bucket", {"hook": "ops-test-hook", "le": "0.4"}) == 0
    assert sample_value(body, "hofhir_hook_latency_seconds_bucket", {"hook": "ops-test-hook", "le": "0.5"}) == 1


def test_latency_buckets_resolve_the_500_ms_budget() -> None:
    buckets = metrics.HOOK_LATENCY_BUCKETS
    assert list(buckets) == sorted(buckets) and 0.5 in buckets
    assert len([b for b in buckets if 0.1 <= b <= 1.0]) >= 6


def test_values_read_from_outside_are_refreshed_at_each_scrape() -> None:
    lengths = iter([7, 3])
    failures = []

    def read_dead_letters() -> None:
        metrics.DEAD_LETTER_SIZE.set(next(lengths))

    def broken_source() -> None:
        failures.append(1)
        raise ConnectionError("redis unreachable")

    metrics.before_render(read_dead_letters)
    metrics.before_render(broken_source)
    try:
        assert sample_value(metrics.render_metrics()[0], "hofhir_dead_letter_size", {}) == 7
        assert sample_value(metrics.render_metrics()[0], "hofhir_dead_letter_size", {}) == 3
        assert len(failures) == 2  # tried at every scrape, never breaking it
    finally:
        metrics._before_render.remove(read_dead_letters)
        metrics._before_render.remove(broken_source)
        metrics.DEAD_LETTER_SIZE.set(0)


def test_openmetrics_is_served_when_asked_for() -> None:
    body, content_type = metrics.render_metrics("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_metrics_server_for_processes_without_a_web_app() -> None:
    server = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
            assert "hofhir_dead_letter_size" in families(response.read())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def run_in_multiprocess_mode(folder: Path, code: str) -> str:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", "from hofhir.adapters import metrics\n" + code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_multiprocess_mode_sums_counters_and_keeps_the_latest_dead_letter_size(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet-created"  # the module creates it rather than failing
    run_in_multiprocess_mode(
        folder, "metrics.WRITEBACKS.labels(result='created').inc(2)\nmetrics.DEAD_LETTER_SIZE.set(5)"
    )
    run_in_multiprocess_mode(
        folder, "metrics.WRITEBACKS.labels(result='created').inc(3)\nmetrics.DEAD_LETTER_SIZE.set(1)"
    )
    body = run_in_multiprocess_mode(folder, "import sys\nsys.stdout.write(metrics.render_metrics()[0].decode())")
    raw = body.encode()
    assert sample_value(raw, "hofhir_writeback_total", {"result": "created"}) == 5
    # One list in Redis, read by whichever process: the latest reading, not a sum over processes.
    assert sample_value(raw, "hofhir_dead_letter_size", {}) == 1
    assert len(list(folder.glob("counter_*.db"))) == 2
