#!/usr/bin/env bash
# Nchan (nginx + libnginx-mod-nchan, Debian) as a peer of the load harness.
#
#   scripts/peers/nchan.sh install          apt-get install nginx and the module, without starting
#                                           the distribution's nginx service
#   scripts/peers/nchan.sh start DIR PORT   run nginx with bench/peers/nchan/nginx.conf on
#                                           127.0.0.1:PORT, runtime files in DIR; prints its pid
#   scripts/peers/nchan.sh stop DIR         stop the nginx started with DIR
#
# `tether-bench` runs start and stop itself; install is the only step it asks of you (or does itself
# with --install-peers).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
conf_src="$here/bench/peers/nchan/nginx.conf"

module_path() {
  for p in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
    [ -f "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

case "${1:-}" in
install)
  if command -v nginx >/dev/null && module_path >/dev/null; then exit 0; fi
  [ "$(id -u)" = 0 ] || { echo "nchan.sh install: needs root (apt-get)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package scripts from starting nginx on 0.0.0.0:80: policy-rc.d
  # exit 101 forbids service starts during the install (Debian policy 9.3.3).
  added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added=1
  fi
  trap '[ -n "$added" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx libnginx-mod-nchan >/dev/null
  module_path >/dev/null || { echo "nchan.sh: module not found after install" >&2; exit 1; }
  ;;
start)
  dir="${2:?start DIR PORT}" port="${3:?start DIR PORT}"
  mod="$(module_path)" || { echo "nchan.sh: nchan module not installed (run: $0 install)" >&2; exit 1; }
  mkdir -p "$dir/logs" "$dir/tmp"
  sed -e "s|@MODULE@|$mod|" -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" \
      -e "s|@LISTEN@|${NCHAN_LISTEN:-127.0.0.1}|g" "$conf_src" >"$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  for _ in $(seq 100); do [ -s "$dir/nginx.pid" ] && break; sleep 0.05; done
  cat "$dir/nginx.pid"
  ;;
stop)
  dir="${2:?stop DIR}"
  [ -s "$dir/nginx.pid" ] || exit 0
  pid="$(cat "$dir/nginx.pid")"
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
  kill -TERM "$pid" 2>/dev/null || true
  ;;
*)
  echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
