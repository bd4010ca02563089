# Two commands do all the set-up on a fresh machine:
#   make run    install and start the service (embedded mode unless HOFHIR_REDIS_URL is set)
#   make test   install everything the tests need, then ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint typecheck unit install install-dev services ops-tools bench bench-tools docs clean
OPS_VENV ?= .venv-ops

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian and npm packages the integration tests need (Redis server, Node.js for the test FHIR engine).
services:
	bash tools/ensure-services.sh

# Local use: JWT checks are off unless you configure issuers (HOFHIR_AUTH=on HOFHIR_AUTH_ISSUERS=...).
# Only for `make run`: the tests set what they need themselves.
HOFHIR_AUTH ?= off
run: export HOFHIR_AUTH := $(HOFHIR_AUTH)

run: install
	$(BIN)/hofhir serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check hofhir cds_hooks tests benchmarks tools
	$(BIN)/ruff format --check hofhir cds_hooks tests benchmarks tools

typecheck: install-dev
	$(BIN)/mypy

# checkov in its own virtualenv: its pinned libraries (packaging, urllib3, ...) clash with ours.
$(OPS_VENV)/.installed:
	$(PYTHON) -m venv $(OPS_VENV)
	$(OPS_VENV)/bin/pip install -q --upgrade pip
	$(OPS_VENV)/bin/pip install -q 'checkov==3.3.30'
	touch $@

# KEDA's ScaledObject schema for tests/ops (npm; Node comes with `make services`).
tests/ops/keda/node_modules/.package-lock.json: tests/ops/keda/package-lock.json
	cd tests/ops/keda && npm ci --no-audit --no-fund --loglevel=error

ops-tools: services $(OPS_VENV)/.installed tests/ops/keda/node_modules/.package-lock.json

test: install-dev services ops-tools lint typecheck
	$(BIN)/python -m pytest

unit: install-dev
	$(BIN)/python -m pytest tests/unit

# Load generators for benchmarks/run.py (Debian packages): wrk (closed-loop throughput), h2load from
# nghttp2-client (fixed-rate open loop).
bench-tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null || { apt-get update -q && apt-get install -y -q wrk nghttp2-client; }

# Every speed figure from one run (about four minutes): a table, and benchmarks/results.json.
bench: install-dev services bench-tools
	$(BIN)/python benchmarks/run.py

docs: install-dev
	$(BIN)/python -m hofhir.knowledge.catalogue_doc > docs/rules.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
