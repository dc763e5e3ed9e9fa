#!/usr/bin/env bash
# socket.io (npm) as a peer of the load harness.
#
#   scripts/peers/socketio.sh install   npm install the pinned version (bench/peers/socketio)
#   scripts/peers/socketio.sh start     run the server in the foreground on HOST:PORT (default
#                                       127.0.0.1, a free port), logging disconnects on stdout
#
# `tether-bench` starts the server itself (node bench/peers/socketio/server.js) and stops it with
# SIGTERM at the end; install is the only step it asks of you (or does itself with --install-peers).
set -euo pipefail
dir="$(cd "$(dirname "$0")/../.." && pwd)/bench/peers/socketio"
case "${1:-}" in
install)
  command -v node >/dev/null || { echo "socketio.sh: needs node and npm (Debian: nodejs npm)" >&2; exit 1; }
  [ -d "$dir/node_modules/socket.io" ] && exit 0
  cd "$dir" && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
  ;;
start)
  exec node "$dir/server.js"
  ;;
*)
  echo "usage: $0 install | start" >&2; exit 2 ;;
esac
