#!/usr/bin/env bash
# The no-op job workload through tether and through River, on this machine in one run, and the ratio
# (docs/benchmarks.md, "## Jobs"). Needs root for the PostgreSQL install (Debian's package).
#
#   bench/river/run.sh [JOBS]      default 5000 jobs per run
#
# tether: `go test -bench Throughput` of cmd/tether-worker: JOBS no-op jobs created, then 1, 4 and 16
# tether-worker processes (4 jobs at once each) run them. River: bench/river (its own module) with
# 1, 4 and 16 River clients (own pool each, MaxWorkers 4), once with FetchCooldown 1ms (tuned for
# throughput) and once with River's defaults (FetchCooldown 100ms: a client fetches at most every
# 100ms, so its rate is bounded by MaxWorkers/100ms; run with JOBS/5 jobs to stay short).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
jobs="${1:-5000}"
port="${RIVER_PG_PORT:-55432}"

bash "$here/scripts/river/postgres.sh" install
tmp="$(mktemp -d)"
chmod 755 "$tmp"
trap 'bash "$here/scripts/river/postgres.sh" stop "$tmp/pg"; rm -rf "$tmp"' EXIT
db="$(bash "$here/scripts/river/postgres.sh" start "$tmp/pg" "$port")"
(cd "$here/bench/river" && go build -o "$tmp/river-bench" .)

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== tether: $jobs no-op jobs"
(cd "$here" && go test -run '^$' -bench Throughput -benchtime "${jobs}x" -timeout 30m ./cmd/tether-worker/) \
  | tee "$tmp/tether.txt" | grep -E '^Benchmark'
echo "== river (FetchCooldown 1ms): $jobs no-op jobs"
for w in 1 4 16; do
  "$tmp/river-bench" --db "$db" --jobs "$jobs" --workers "$w" --concurrency 4 --fetch-cooldown 1ms | tee -a "$tmp/river.txt"
done
echo "== river (defaults): $((jobs / 5)) no-op jobs"
for w in 1 4 16; do
  "$tmp/river-bench" --db "$db" --jobs "$((jobs / 5))" --workers "$w" --concurrency 4 | tee -a "$tmp/river-default.txt"
done

echo "== jobs/s (ratio tether / river)"
printf '%-8s %10s %16s %10s %16s %10s\n' workers tether river-tuned ratio river-default ratio
for w in 1 4 16; do
  t=$(grep -E "workers=$w-" "$tmp/tether.txt" | grep -oE '[0-9.]+ jobs/s' | cut -d' ' -f1)
  r=$(grep "\"workers\":$w}" "$tmp/river.txt" | grep -oE '"jobs_per_sec":[0-9.]+' | cut -d: -f2)
  d=$(grep "\"workers\":$w}" "$tmp/river-default.txt" | grep -oE '"jobs_per_sec":[0-9.]+' | cut -d: -f2)
  awk -v w="$w" -v t="$t" -v r="$r" -v d="$d" 'BEGIN { printf "%-8s %10.0f %16.0f %10.2f %16.0f %10.2f\n", w, t, r, t / r, d, t / d }'
done
