#!/usr/bin/env bash
# Installs and starts what the integration tests talk to, when it is not already there:
# a Redis server on 127.0.0.1:6379, Node.js/npm for the test FHIR engine (tests/fhirserver), and Debian's
# Chromium for the browser test (Playwright drives /usr/bin/chromium; it downloads no browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "ensure-services: need root to apt-get install $*" >&2; return 1; fi
  if [ "$apt_updated" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server redis-tools; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
if [ -f tests/fhirserver/package.json ] && [ ! -d tests/fhirserver/node_modules ]; then
  (cd tests/fhirserver && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
