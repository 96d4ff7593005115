#!/usr/bin/env bash
# The test command: contract and code checks, then the whole test suite against real
# PostgreSQL, a real Kafka-protocol broker, real Envoy, grpcurl, kcat and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"

# System tools the tests drive (Debian packages): kcat (an independent Kafka client) and
# Chromium (the browser the web terminal is tested in), Prometheus (run by `exness up`; its
# promtool checks the alert rules).
need=()
command -v kcat >/dev/null || need+=(kcat)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi

echo "== generated code is up to date with proto/"
bash scripts/generate.sh >/dev/null
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- gen/; then
  git diff --stat -- gen/
  echo "gen/ differs from what proto/ generates: run 'make gen' and commit" >&2
  exit 1
fi
echo "== buf lint"
buf lint
echo "== ruff"
ruff check .
ruff format --check .
echo "== tsc (web terminal)"
npm run --silent check:web
echo "== mypy"
mypy
echo "== web terminal bundle (the browser tests load web/dist)"
npm run --silent build:web >/dev/null
echo "== pytest"
pytest "$@"
