"""The web process as it runs in the image: gunicorn with cds_hooks.gunicorn_conf, two workers.

/metrics must count every request whichever worker served it, and keep counting after a worker dies.
The first test runs the real app; the others exercise the gunicorn configuration itself with a
one-function WSGI app written to a temporary folder, so they do not depend on the app's routes.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import REPO

pytestmark = pytest.mark.e2e

COUNTER = "hofhir_http_requests_total"
MAX_REQUESTS = 400  # bounded: stop even if the kernel keeps handing connections to one worker


@dataclass
class Web:
    process: subprocess.Popen[str]
    port: int
    metrics_dir: Path

    def get(self, path: str) -> tuple[int, str]:
        # A new connection each time: keep-alive would pin every request to one worker.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def counts_by_pid(self) -> dict[int, float]:
        """COUNTER's total per process, read from each process's own metric file."""
        totals: dict[int, float] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            pid = int(path.stem.split("_")[-1])
            for metric in MultiProcessCollector.merge([str(path)]):
                for sample in metric.samples:
                    if sample.name == COUNTER:
                        totals[pid] = totals.get(pid, 0.0) + sample.value
        return totals

    def worker_pids(self) -> set[int]:
        """The master's live children (gunicorn's workers), from /proc."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                pids.add(int(stat.parent.name))
        return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], tmp_path: Path, ready_path: str, pythonpath: Path | None = None
) -> Iterator[Web]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **env,
        "HOFHIR_BIND": f"127.0.0.1:{port}",
        "HOFHIR_WEB_WORKERS": "2",
        "HOFHIR_WEB_THREADS": "2",
        "HOFHIR_WEB_GRACEFUL_TIMEOUT": "5",
        "HOFHIR_AUTH": "off",
        "HOFHIR_WORKER_HEARTBEAT_DIR": str(tmp_path / "heartbeat"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:cds_hooks.gunicorn_conf"]
    if pythonpath is not None:
        command += ["--pythonpath", str(pythonpath)]
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen([*command, app], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    web = Web(process, port, metrics_dir)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gunicorn exited:\n{(tmp_path / 'gunicorn.log').read_text()}"
            try:
                if web.get(ready_path)[0] == 200 and len(web.worker_pids()) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{(tmp_path / 'gunicorn.log').read_text()}"
            time.sleep(0.2)
        yield web
        # SIGTERM is what Kubernetes sends: gunicorn must finish gracefully and exit 0.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "gunicorn.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def scrape(web: Web) -> dict[tuple[tuple[str, str], ...], float]:
    status, body = web.get("/metrics")
    assert status == 200
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == COUNTER
    }


def hit_until_both_workers_served(web: Web, path: str) -> int:
    sent = 0
    while sent < MAX_REQUESTS:
        status, _ = web.get(path)
        assert status == 200, (path, status)
        sent += 1
        if sent >= 20 and sent % 10 == 0 and len([v for v in web.counts_by_pid().values() if v > 0]) >= 2:
            return sent
    pytest.fail(f"{MAX_REQUESTS} requests all went to one worker: {web.counts_by_pid()}")


def test_metrics_sum_counters_across_two_workers(tmp_path: Path, free_env: dict[str, str]) -> None:
    if importlib.util.find_spec("cds_hooks.app") is None:
        pytest.skip("cds_hooks.app (the Flask app factory) does not exist yet")
    with gunicorn("cds_hooks.app:create_app()", free_env, tmp_path, ready_path="/healthz") as web:
        before = scrape(web)
        sent = hit_until_both_workers_served(web, "/cds-services")
        after = scrape(web)
    # Scrapes may count themselves; everything else between the two scrapes is our discovery calls.
    delta = {
        labels: value - before.get(labels, 0.0)
        for labels, value in after.items()
        if "metrics" not in dict(labels).get("service", "")
    }
    assert sum(delta.values()) == sent, delta
    assert all(dict(labels)["status"] == "200" for labels, value in delta.items() if value), delta


# ------------------------------------------- the gunicorn configuration, with a one-function app

PROBE_APP = """
import os
from hofhir.adapters import metrics


def app(environ, start_response):
    body, content_type = str(os.getpid()).encode(), "text/plain"
    if environ["PATH_INFO"] == "/metrics":
        body, content_type = metrics.render_metrics()
    elif environ["PATH_INFO"] == "/":
        metrics.HTTP_REQUESTS.labels(service="probe", status="200").inc()
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.fixture
def probe_app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "ops_probe_app.py").write_text(PROBE_APP)
    return folder


def test_config_counts_across_workers_and_after_one_dies(
    tmp_path: Path, free_env: dict[str, str], probe_app: Path
) -> None:
    # A metric file left by an earlier run must not be counted again: the master wipes the folder.
    stale = tmp_path / "metrics" / "counter_1.db"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    with gunicorn("ops_probe_app:app", free_env, tmp_path, "/ready", pythonpath=probe_app) as web:
        assert not stale.exists()
        sent = hit_until_both_workers_served(web, "/")
        assert scrape(web) == {(("service", "probe"), ("status", "200")): sent}
        # A worker that dies (OOM kill, timeout) is replaced; what it counted stays counted.
        victim = max(web.counts_by_pid(), key=lambda pid: web.counts_by_pid()[pid])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in web.worker_pids() or len(web.worker_pids()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.2)
        for _ in range(10):
            assert web.get("/")[0] == 200
        assert scrape(web) == {(("service", "probe"), ("status", "200")): sent + 10}


def parse_printed_config(text: str) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_config_reads_its_settings_from_the_environment(free_env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **free_env,
        "HOFHIR_BIND": "127.0.0.1:9999",
        "HOFHIR_WEB_WORKERS": "3",
        "HOFHIR_WEB_THREADS": "7",
        "HOFHIR_WEB_TIMEOUT": "41",
        "HOFHIR_WEB_GRACEFUL_TIMEOUT": "13",
        "HOFHIR_LOG_LEVEL": "WARNING",
        "HOFHIR_AUTH": "off",  # --print-config builds the app too
    }
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:cds_hooks.gunicorn_conf", "--print-config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    settings = parse_printed_config(out)
    assert settings["bind"] == "['127.0.0.1:9999']"
    assert (settings["workers"], settings["threads"], settings["worker_class"]) == ("3", "7", "gthread")
    assert (settings["timeout"], settings["graceful_timeout"]) == ("41", "13")
    assert settings["loglevel"] == "warning"
    assert settings["wsgi_app"] == "cds_hooks.app:create_app()"
    assert settings["worker_tmp_dir"] in {"/dev/shm", "None"}
    defaults = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:cds_hooks.gunicorn_conf", "--print-config"],
        cwd=tmp_path,
        env={**free_env, "HOFHIR_AUTH": "off"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    default_settings = parse_printed_config(defaults)
    assert default_settings["bind"] == "['0.0.0.0:8080']"
    assert (default_settings["workers"], default_settings["graceful_timeout"]) == ("2", "20")
