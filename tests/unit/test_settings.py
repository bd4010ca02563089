"""One Settings for web, worker and CLI: parsed once at the entrypoints, one line and exit 2 when wrong."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cds_hooks.app import create_app
from cds_hooks.cli import main
from hofhir.adapters.settings import Settings, SettingsError, env_name

ROOT = Path(__file__).resolve().parents[2]
ISSUERS = json.dumps({"https://ehr.example.org": {"jwks_url": "https://ehr.example.org/jwks"}})


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.redis_url, s.auth, s.deadline_ms) == ("127.0.0.1", 8080, None, True, 350)
    assert (s.deadline_fallback, s.run_ahead_ttl_s, s.cors_origins) == ("inline", 120, ("*",))
    assert (s.worker_concurrency, s.task_time_limit_s, s.max_deliveries, s.soft_shutdown_s) == (2, 120, 3, 25)
    assert (s.fhir_key_id, s.fhir_key_alg, s.fhir_timeout_s) == ("hofhir", "RS384", 10.0)
    assert s.broker is None and s.backend is None
    # `hofhir evaluate` with no HOFHIR_* variable skips parsing and relies on these two defaults.
    assert s.knowledge is None and s.public_url is None


def test_every_variable_is_read(tmp_path: Path) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(ISSUERS)
    env = {
        "HOFHIR_HOST": "0.0.0.0",
        "HOFHIR_PORT": "9000",
        "HOFHIR_REDIS_URL": "redis://r:6379/0",
        "HOFHIR_RESULT_BACKEND": "redis://results:6379/1",
        "HOFHIR_AUTH": "ON",
        "HOFHIR_AUTH_ISSUERS": f"@{issuers}",
        "HOFHIR_AUTH_ALGORITHMS": "es384, RS256",
        "HOFHIR_AUTH_LEEWAY_SECONDS": "5",
        "HOFHIR_AUTH_MAX_TOKEN_LIFETIME_SECONDS": "300",
        "HOFHIR_AUTH_ALLOW_HTTP_LOCALHOST": "on",
        "HOFHIR_DEADLINE_MS": "500",
        "HOFHIR_DEADLINE_FALLBACK": "empty",
        "HOFHIR_CORS_ORIGINS": "https://a.example, https://b.example",
        "HOFHIR_RUN_AHEAD_TTL_S": "30",
        "HOFHIR_FHIR_BASE_URL": "https://fhir.example/r4",
        "HOFHIR_FHIR_TIMEOUT_S": "2.5",
        "HOFHIR_MAX_DELIVERIES": "5",
        "HOFHIR_WORKER_METRICS_PORT": "9100",
        "HOFHIR_LOG_LEVEL": "debug",
        "HOFHIR_KNOWLEDGE": "",  # empty is unset
    }
    s = Settings.from_env(env)
    assert (s.host, s.port, s.auth, s.auth_allow_http_localhost) == ("0.0.0.0", 9000, True, True)
    assert s.auth_issuers == json.loads(ISSUERS)
    assert s.auth_algorithms == ("ES384", "RS256")
    assert (s.auth_leeway_seconds, s.auth_max_token_lifetime_seconds) == (5, 300)
    assert (s.deadline_ms, s.deadline_fallback, s.run_ahead_ttl_s) == (500, "empty", 30)
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert (s.fhir_base_url, s.fhir_timeout_s, s.max_deliveries) == ("https://fhir.example/r4", 2.5, 5)
    assert (s.worker_metrics_port, s.log_level, s.knowledge) == (9100, "DEBUG", None)
    assert (s.broker, s.backend) == ("redis://r:6379/0", "redis://results:6379/1")


def test_the_process_environment_reads_the_same_as_a_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "HOFHIR_DEADLINE_MS": "120",
        "HOFHIR_CORS_ORIGINS": "a,b",
        "HOFHIR_AUTH": "off",
        "HOFHIR_AUTH_ISSUERS": ISSUERS,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"HOFHIR_DEADLINE_MS": "abc"}, "HOFHIR_DEADLINE_MS must be a whole number, not 'abc'"),
        ({"HOFHIR_AUTH_ISSUERS": "{bad"}, "HOFHIR_AUTH_ISSUERS is not valid JSON"),
        ({"HOFHIR_AUTH": "yes please"}, "HOFHIR_AUTH must be 'on' or 'off'"),
        ({"HOFHIR_DEADLINE_FALLBACK": "later"}, "HOFHIR_DEADLINE_FALLBACK must be 'inline' or 'empty'"),
        ({"HOFHIR_FHIR_TIMEOUT_S": "soon"}, "HOFHIR_FHIR_TIMEOUT_S must be a number"),
        ({"HOFHIR_PORT": "0"}, "HOFHIR_PORT should be greater than or equal to 1"),
        ({"HOFHIR_AUTH_ISSUERS": "@/nonexistent/issuers.json"}, "HOFHIR_AUTH_ISSUERS: cannot read"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"HOFHIR_DEADLINE_MS": "abc"}, ["HOFHIR_DEADLINE_MS", "whole number"]),
        ({"HOFHIR_AUTH_ISSUERS": "{bad"}, ["HOFHIR_AUTH_ISSUERS", "not valid JSON"]),
        ({}, ["HOFHIR_AUTH_ISSUERS", "HOFHIR_AUTH=off"]),  # auth on (the default) and no issuer: both ways out
    ],
)
def test_hofhir_serve_with_a_bad_setting_exits_2_with_one_line(
    env: dict[str, str], words: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("HOFHIR_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hofhir: "), err
    assert all(w in err for w in words), err


def test_the_real_command_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOFHIR_DEADLINE_MS": "abc", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr == "hofhir: HOFHIR_DEADLINE_MS must be a whole number, not 'abc'\n"


def test_the_worker_and_the_cli_exit_2_too(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOFHIR_MAX_DELIVERIES", "many")
    assert main(["worker"]) == 2
    assert main(["probe", "worker"]) == 2
    assert capsys.readouterr().err.count("HOFHIR_MAX_DELIVERIES must be a whole number") == 2


def test_create_app_refuses_auth_on_without_an_issuer_in_one_line() -> None:
    with pytest.raises(SettingsError, match=r"set HOFHIR_AUTH_ISSUERS \(or HOFHIR_AUTH=off for local use only\)"):
        create_app(Settings.from_env({}))


def test_an_unwritable_replay_file_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    env = {"HOFHIR_AUTH_ISSUERS": ISSUERS, "HOFHIR_REPLAY_DB": str(blocked / "replay.sqlite")}
    with pytest.raises(SettingsError, match=r"^HOFHIR_REPLAY_DB: cannot open .*writable file"):
        create_app(Settings.from_env(env))


def test_the_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in readme]
    assert missing == []


# Entrypoints read the environment (once); everything below them gets Settings. The exceptions read
# variables that belong to other programs: gunicorn's config file, prometheus_client's multiprocess folder,
# Celery's REMAP_SIGTERM and the NO_COLOR convention.
ENVIRONMENT_READERS = {
    "cds_hooks/cli.py",
    "cds_hooks/gunicorn_conf.py",
    "hofhir/adapters/metrics.py",
    "hofhir/worker/app.py",
}


def test_nothing_below_the_entrypoints_reads_the_environment() -> None:
    readers = set()
    for path in sorted([*ROOT.glob("hofhir/**/*.py"), *ROOT.glob("cds_hooks/**/*.py")]):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.add(rel)
    assert readers - ENVIRONMENT_READERS == set()
    assert "hofhir/adapters/settings.py" not in readers  # pydantic-settings reads it, in Settings.from_env()
