#!/usr/bin/env bash
# PostgreSQL from Debian, for the River comparison of docs/benchmarks.md ("## Jobs").
#
#   scripts/river/postgres.sh install          apt-get install postgresql, without starting
#                                              the distribution's cluster service
#   scripts/river/postgres.sh start DIR PORT   initdb a cluster in DIR (if empty) and run it on
#                                              127.0.0.1:PORT only (no other address, socket in DIR);
#                                              prints the connection URL
#   scripts/river/postgres.sh stop DIR         stop the cluster started with DIR
#
# The cluster trusts local connections of user postgres: it listens on loopback only and lives as
# long as the benchmark. As root, the server runs as the postgres user (initdb refuses root).
set -euo pipefail

bindir() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
install)
  if bindir >/dev/null; then exit 0; fi
  [ "$(id -u)" = 0 ] || { echo "postgres.sh install: needs root (apt-get)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package scripts from starting the default cluster: policy-rc.d
  # exit 101 forbids service starts during the install (Debian policy 9.3.3).
  added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added=1
  fi
  trap '[ -n "$added" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bindir >/dev/null || { echo "postgres.sh: pg_ctl not found after install" >&2; exit 1; }
  ;;
start)
  dir="${2:?start DIR PORT}" port="${3:?start DIR PORT}"
  bin="$(bindir)" || { echo "postgres.sh: PostgreSQL not installed (run: $0 install)" >&2; exit 1; }
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    runuser -u postgres -- test -x "$dir" \
      || { echo "postgres.sh: user postgres cannot reach $dir: make its parents searchable (chmod o+x)" >&2; exit 1; }
  fi
  chmod 700 "$dir"
  if [ ! -s "$dir/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; exit 1; }
  fi
  # fsync stays on: River's numbers are those of a durable queue, as tether's are.
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  dir="${2:?stop DIR}"
  bin="$(bindir)" || exit 0
  [ -s "$dir/postmaster.pid" ] || exit 0
  as_pg "$bin/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null || true
  ;;
*)
  echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
