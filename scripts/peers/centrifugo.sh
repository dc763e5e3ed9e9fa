#!/usr/bin/env bash
# Centrifugo (the Go real-time server) as a peer of the load harness.
#
#   scripts/peers/centrifugo.sh install          go install the pinned version into $(go env GOPATH)/bin
#                                                (or GOBIN); minutes on a cold module and build cache
#   scripts/peers/centrifugo.sh start HOST PORT  run it in the foreground with bench/peers/centrifugo/config.json
#                                                on HOST:PORT (exec: the pid is Centrifugo's)
#
# `tether-bench` runs start itself and stops the server with SIGTERM; install is the only step it asks
# of you (or does itself with --install-peers).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
version=v6.9.1

bin() {
  command -v centrifugo 2>/dev/null && return 0
  local d
  d="$(go env GOBIN)"; [ -n "$d" ] || d="$(go env GOPATH | cut -d: -f1)/bin"
  [ -x "$d/centrifugo" ] && { echo "$d/centrifugo"; return 0; }
  return 1
}

case "${1:-}" in
install)
  bin >/dev/null && exit 0
  command -v go >/dev/null || { echo "centrifugo.sh: needs go" >&2; exit 1; }
  go install "github.com/centrifugal/centrifugo/v6@$version"
  bin >/dev/null || { echo "centrifugo.sh: centrifugo not found after go install" >&2; exit 1; }
  ;;
start)
  host="${2:?start HOST PORT}" port="${3:?start HOST PORT}"
  exe="$(bin)" || { echo "centrifugo.sh: not installed (run: $0 install)" >&2; exit 1; }
  exec "$exe" --config "$here/bench/peers/centrifugo/config.json" \
    --http_server.address "$host" --http_server.port "$port"
  ;;
*)
  echo "usage: $0 install | start HOST PORT" >&2; exit 2 ;;
esac
