#!/usr/bin/env bash
# Start or stop a 3-node NATS JetStream cluster on loopback, for running
# several tether nodes on one machine (README: "More than one node").
#
#   scripts/nats-cluster.sh start [dir]   # builds nats-server at the version go.mod pins
#   scripts/nats-cluster.sh stop  [dir]
#
# Clients: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
# NATS_CLUSTER_PORT_OFFSET=N adds N to every port (client 4222-4224, route
# 6222-6224, monitor 8222-8224), to run beside other clusters on one host.
# Every node syncs JetStream writes to disk before acknowledging them
# (sync_interval: always); see docs/architecture.md for why.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
dir=${2:-./nats-cluster}
off=${NATS_CLUSTER_PORT_OFFSET:-0}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  go build -o "$dir/nats-server" github.com/nats-io/nats-server/v2
  for i in 1 2 3; do
    routes=()
    for j in 1 2 3; do
      [ "$i" = "$j" ] || routes+=("nats-route://127.0.0.1:$((6221 + off + j))")
    done
    cat >"$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4221 + off + i))
http: 127.0.0.1:$((8221 + off + i))
jetstream {
  store_dir: "$dir/n$i"
  sync_interval: always
}
cluster {
  name: tether
  listen: 127.0.0.1:$((6221 + off + i))
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
    "$dir/nats-server" -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
  for i in 1 2 3; do
    for _ in $(seq 1 60); do
      curl -sf "http://127.0.0.1:$((8221 + off + i))/healthz" >/dev/null && break
      sleep 0.5
    done
    curl -sf "http://127.0.0.1:$((8221 + off + i))/healthz" >/dev/null || { echo "n$i not healthy; see $dir/n$i.log" >&2; exit 1; }
  done
  echo "NATS cluster up: nats://127.0.0.1:$((4222 + off)),nats://127.0.0.1:$((4223 + off)),nats://127.0.0.1:$((4224 + off)) (logs and data in $dir)"
  ;;
stop)
  for i in 1 2 3; do
    if [ -f "$dir/n$i.pid" ]; then
      kill "$(cat "$dir/n$i.pid")" 2>/dev/null || true
      rm -f "$dir/n$i.pid"
    fi
  done
  echo "stopped; data left in $dir (rm -rf it to start afresh)"
  ;;
*)
  echo "usage: $0 start|stop [dir]" >&2
  exit 2
  ;;
esac
