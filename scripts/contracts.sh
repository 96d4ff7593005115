#!/usr/bin/env bash
# The contracts' breaking-change gate and release step.
#
#   scripts/contracts.sh check             # buf breaking against the latest image in releases/
#   scripts/contracts.sh release VERSION   # record proto/ as releases/contracts-VERSION.binpb
#
# A release is a buf image of the proto/ module committed under releases/ (git tags may not
# travel with the repository). `make test` runs `check`; see docs/contracts.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-node_modules/.bin/buf}

latest_release() {
  find releases -maxdepth 1 -name 'contracts-*.binpb' | sort -V | tail -n 1
}

case "${1:-}" in
  check)
    against=$(latest_release)
    if [ -z "$against" ]; then
      echo "no released contracts in releases/: nothing to compare with" >&2
      exit 1
    fi
    "$BUF" breaking proto --against "$against"
    echo "no breaking change against $against"
    ;;
  release)
    version=${2:?usage: scripts/contracts.sh release VERSION (e.g. 1.1.0)}
    if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
      echo "VERSION must look like 1.2.3, got $version" >&2
      exit 1
    fi
    out=releases/contracts-$version.binpb
    if [ -e "$out" ]; then
      echo "$out exists: a released version is never rewritten" >&2
      exit 1
    fi
    "$BUF" lint
    if [ -n "$(latest_release)" ]; then "$0" check; fi
    "$BUF" build proto -o "$out"
    echo "recorded $out: commit it"
    ;;
  *)
    echo "usage: $0 check | release VERSION" >&2
    exit 2
    ;;
esac
