#!/bin/bash
# A burst of clients onto one fresh Conduit process: the process pinned to CPU 1, wrk on CPU 0,
# a 3 s warm-up at 50 connections, then ROUNDS rounds of `wrk -t2 -cC -dDURs --timeout 5s` on a
# cached list page, each opening all C connections at once. Prints per round: req/s, p50, p99,
# the slowest answer, wrk's socket errors (timeouts: no answer in 5 s), CPU per response
# (/proc/PID/stat) and RSS. How docs/connections.md compares HTTP_LISTENERS settings:
#
#   ENV="HTTP_LISTENERS=1" scripts/connections-burst.sh; ENV="HTTP_LISTENERS=512" scripts/connections-burst.sh
#
# Settings (environment): ENV ("KEY=VALUE ..." for the service), DB (a seeded database on PGURL's
# server, default ab_a: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/ab_a npm run seed`),
# C (1000), ROUNDS (2), DUR (8), PORT (3207). Needs Node 24 as `node`, wrk, taskset, ss, curl.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/pinned.sh
. "$here/scripts/pinned.sh"
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432} PORT=${PORT:-3207}
URL="http://127.0.0.1:$PORT/api/articles?limit=20"
pinned_start "$here" "$PORT" "$PGURL/${DB:-ab_a}" "RATE_LIMIT=off ${ENV:-}"
pinned_ready "$PORT"
pid=$(pinned_pid "$PORT")
trap 'kill "$pid"' EXIT
taskset -c 0 wrk -t2 -c50 -d3s "$URL" > /dev/null
for r in $(seq 1 "${ROUNDS:-2}"); do
  sleep 2
  c0=$(pinned_cpu "$pid")
  out=$(taskset -c 0 wrk -t2 -c"${C:-1000}" -d"${DUR:-8}"s --timeout 5s --latency "$URL" 2>&1)
  c1=$(pinned_cpu "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  # USER_HZ is 100: a tick is 10,000 µs.
  echo "round $r: req/s=$(echo "$out" | awk '/Requests\/sec/ {print $2}') p50=$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "p99=$(echo "$out" | awk '$1 == "99%" {print $2}') slowest=$(echo "$out" | awk '/Latency/ {print $4}')" \
    "errors=[$(echo "$out" | grep -o 'Socket errors.*' || true)] cpu_us_per_resp=$(((c1 - c0) * 10000 / reqs))" \
    "rss=$(($(awk '{print $2}' "/proc/$pid/statm") * 4 / 1024))MB"
done
