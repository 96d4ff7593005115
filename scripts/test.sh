#!/usr/bin/env bash
# The test command: contract and code checks, then the whole test suite against real
# PostgreSQL, a real Kafka-protocol broker, real Envoy, grpcurl, kcat and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"

# System tools the tests drive (Debian packages): kcat (an independent Kafka client),
# Chromium (the browser the web terminal is tested in), Prometheus (run by `exness up`; its
# promtool checks the alert rules) and protoc-gen-swagger (golang-grpc-gateway: the OpenAPI
# generator the generated-code check runs).
need=()
command -v kcat >/dev/null || need+=(kcat)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v protoc-gen-swagger >/dev/null || need+=(golang-grpc-gateway)
# The Go client test: the Go toolchain, its protoc plugins and the libraries it builds against
# offline (GOPATH mode; the Go module proxy is not used).
command -v go >/dev/null || need+=(golang-go)
command -v protoc-gen-go >/dev/null || need+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || need+=(protoc-gen-go-grpc)
for package in golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev \
  golang-github-golang-protobuf-1-5-dev; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
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
generated=(gen/ clients/python/exness_client/contracts/)
if git rev-parse --git-dir >/dev/null 2>&1 &&
  { ! git diff --quiet -- "${generated[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${generated[@]}")" ]; }; then
  git status --short -- "${generated[@]}"
  echo "gen/ differs from what proto/ generates: run 'make gen' and commit" >&2
  exit 1
fi
echo "== buf lint"
buf lint
echo "== buf breaking (against the latest release in releases/)"
bash scripts/contracts.sh check
echo "== ruff"
ruff check .
ruff format --check .
echo "== tsc (web terminal)"
npm run --silent check:web
echo "== gofmt"
test -z "$(gofmt -l clients/go)" || { gofmt -l clients/go; exit 1; }
echo "== mypy"
mypy
echo "== web terminal bundle (the browser tests load web/dist)"
npm run --silent build:web >/dev/null
echo "== pytest"
pytest --durations=30 "$@"
