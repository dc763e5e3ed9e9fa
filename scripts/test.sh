#!/usr/bin/env bash
# Runs every test of the project, Go and SDKs, installing what they need on
# a fresh machine (README's test command, `make test`, and CI run this).
#
# As root it installs, where missing: iproute2 and nftables (the silent-peer
# tests' network namespaces and drop rules), Nchan and socket.io (the load
# harness's peers, whose drivers are tested too), and Debian's chromium (the
# browser tests of the TypeScript SDK). Without root, tests that need what
# is missing skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  [ "$(id -u)" = 0 ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${apt_updated:-}" ]; then apt-get update -qq; apt_updated=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  apt_install nftables iproute2 || echo "test: nftables/iproute2 not installed; silent-peer tests will skip" >&2
fi
if [ "$(id -u)" = 0 ]; then
  scripts/peers/nchan.sh install || echo "test: Nchan not installed; its bench tests will skip" >&2
fi
if command -v npm >/dev/null; then
  scripts/peers/socketio.sh install || echo "test: socket.io not installed; its bench tests will skip" >&2
fi
# Centrifugo is not installed here: `go install` of it took 4 minutes on a cold cache on the
# 2-core machine (docs/benchmarks.md); its driver test runs where scripts/peers/centrifugo.sh install was run.

go version
go vet ./...
go test -race ./...

# The SDKs: the TypeScript client runs its Node and headless Chromium tests
# against a real tether binary built from this checkout.
if [ -f clients/js/package.json ]; then
  clients/js/scripts/deps.sh
  (cd clients/js && npm test)
fi
