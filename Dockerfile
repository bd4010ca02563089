# syntax=docker/dockerfile:1
# hofhir: one image for both processes.
#   web:    gunicorn -c python:cds_hooks.gunicorn_conf "cds_hooks.app:create_app()"   (the default CMD)
#   worker: hofhir worker
# Build: docker build -t hofhir:0.1.0 .
# Both stages must use the same base (the virtualenv links to its interpreter); for a release, pin it
# by digest in both lines (python:3.11-slim-bookworm@sha256:...).

# ---- build: resolve and install into a virtualenv; pip and the build backend stay in this stage
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/hofhir
# Dependencies first, from the project metadata alone (stub packages), so a source change does not
# reinstall them: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir hofhir cds_hooks \
 && touch hofhir/__init__.py cds_hooks/__init__.py \
 && /opt/hofhir/bin/pip install . \
 && /opt/hofhir/bin/pip uninstall -y hofhir \
 && rm -rf hofhir cds_hooks build ./*.egg-info
# The code and the knowledge base (package data in hofhir/knowledge/), as a regular (non-editable) install.
COPY hofhir ./hofhir
COPY cds_hooks ./cds_hooks
RUN /opt/hofhir/bin/pip install --no-deps . \
 && /opt/hofhir/bin/python -m compileall -q /opt/hofhir/lib \
 && /opt/hofhir/bin/pip uninstall -y pip setuptools wheel \
 && /opt/hofhir/bin/python -c "import hofhir.knowledge, cds_hooks.gunicorn_conf, hofhir.adapters.metrics" \
 && /opt/hofhir/bin/hofhir --help > /dev/null

# ---- runtime: the interpreter, the virtualenv, nothing to build or install with
FROM python:3.11-slim-bookworm AS runtime
# checkov:skip=CKV_DOCKER_2: Kubernetes ignores HEALTHCHECK; k8s/ defines the probes (web /healthz and /readyz, worker heartbeat files)
LABEL org.opencontainers.image.title="hofhir" \
      org.opencontainers.image.description="CDS Hooks 2.0 decision support for heterotopic ossification" \
      org.opencontainers.image.licenses="Apache-2.0"
# No package manager for Python at run time, and an unprivileged user with a fixed numeric id (so
# Kubernetes can verify runAsNonRoot) and no home or shell.
RUN python -m pip uninstall -y pip setuptools wheel \
 && groupadd --system --gid 10001 hofhir \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin hofhir
COPY --from=build /opt/hofhir /opt/hofhir
ENV PATH=/opt/hofhir/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Everything the processes write goes under /tmp (an emptyDir on Kubernetes; the root fs is read-only):
# gunicorn's per-process metric files (PROMETHEUS_MULTIPROC_DIR, set by cds_hooks.gunicorn_conf) and
# the worker's heartbeat files (HOFHIR_WORKER_HEARTBEAT_DIR, default /tmp/hofhir).
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# gunicorn is PID 1: it receives SIGTERM directly and shuts down gracefully (graceful_timeout).
CMD ["gunicorn", "-c", "python:cds_hooks.gunicorn_conf", "cds_hooks.app:create_app()"]
