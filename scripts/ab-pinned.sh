#!/bin/bash
# Two Conduit servers side by side, each pinned to CPU 1 with wrk on CPU 0, in alternating rounds:
# requests per second and the server's CPU per response (utime + stime from /proc/PID/stat). The
# way docs/database.md compares two checkouts (A_DIR, B_DIR) or two settings of one (A_ENV, B_ENV).
#
#   A_DIR=../main B_DIR=. A_DB=ab_a B_DB=ab_b scripts/ab-pinned.sh
#
# Both databases must exist on PGURL's server and be seeded alike, e.g.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/ab_a npm run seed
#   psql -h 127.0.0.1 -U postgres -c 'create database ab_b template ab_a'
# Settings (environment): A_DIR, B_DIR (checkouts with node_modules; default: this one), A_ENV,
# B_ENV ("KEY=VALUE ..." for each server; both get CACHE=off unless told), A_DB, B_DB, ROUNDS (3),
# DUR (seconds per round, 5), PATHS (space-separated; SLUG stands for a seeded article's slug),
# FAVORITES=1 (favorite/unfavorite pairs of the first seeded user instead of PATHS; ab-favorite.lua),
# READER (a seeded user's email: PATHS are read with that user's token), ACCEPT_ENCODING (sent
# with PATHS). Besides req/s and CPU per response it prints V8's full collections per 10,000
# responses (from /metrics).
# Ports 3205 and 3206 on 127.0.0.1. Needs Node 24 as `node`, wrk, taskset, ss, psql, curl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
A_DIR=${A_DIR:-$here} B_DIR=${B_DIR:-$here} A_DB=${A_DB:-ab_a} B_DB=${B_DB:-ab_b}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
# shellcheck source=scripts/pinned.sh
. "$here/scripts/pinned.sh"
stop() { for p in 3205 3206; do local id; id=$(pinned_pid $p || true); [ -n "$id" ] && kill "$id" || true; done; }
trap stop EXIT
# The rate limits on, as in production, with bounds no run reaches.
limits="RATE_LIMIT_MAX=100000000 RATE_LIMIT_LOGIN_MAX=100000000 RATE_LIMIT_REGISTER_MAX=100000000 RATE_LIMIT_PASSWORD_MAX=100000000"
pinned_start "$A_DIR" 3205 "$PGURL/$A_DB" "CACHE=off $limits ${A_ENV:-}"
pinned_start "$B_DIR" 3206 "$PGURL/$B_DB" "CACHE=off $limits ${B_ENV:-}"
pinned_ready 3205
pinned_ready 3206
majors() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^nodejs_gc_duration_seconds_count\{kind="major"\}/{print $2}'; }
login() { # email: the user's token, from server A
  curl -s -X POST -H 'content-type: application/json' -d "{\"user\":{\"email\":\"$1\",\"password\":\"password123\"}}" \
    http://127.0.0.1:3205/api/users/login | python3 -c 'import sys, json; print(json.load(sys.stdin)["user"]["token"])'
}
run() { # port label path
  local id c0 c1 g0 g1 out reqs
  id=$(pinned_pid "$1"); c0=$(pinned_cpu "$id"); g0=$(majors "$1")
  if [ "${FAVORITES:-}" = 1 ]; then out=$(taskset -c 0 wrk -t1 -c32 -d"${DUR:-5}"s -s "$here/scripts/ab-favorite.lua" "http://127.0.0.1:$1" 2>&1)
  else out=$(taskset -c 0 wrk -t1 -c32 -d"${DUR:-5}"s -s "$here/scripts/ab-headers.lua" "http://127.0.0.1:$1$3" 2>&1); fi
  c1=$(pinned_cpu "$id"); g1=$(majors "$1"); reqs=$(echo "$out" | awk '/requests in/{print $1}')
  # USER_HZ is 100: a tick is 10,000 µs.
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  echo "$2 $3 req/s=$(echo "$out" | awk '/Requests\/sec/{print $2}') cpu_us_per_resp=$(( (c1 - c0) * 10000 / reqs ))" \
    "major_gc_per_10k=$(awk -v g="$g1" -v h="$g0" -v n="$reqs" 'BEGIN { printf "%.1f", (g - h) * 10000 / n }') non2xx=${non2xx:-0}"
}
if [ "${FAVORITES:-}" = 1 ]; then
  TOKEN=$(login "$(psql "$PGURL/$A_DB" -Atc 'select email from users order by id limit 1')")
  SLUGS=$(psql "$PGURL/$A_DB" -Atc "select string_agg(slug, ',') from (select slug from articles where slug ~ '^[a-z0-9-]+\$' order by id limit 64) s")
  export TOKEN SLUGS
  paths=favorite
else
  TOKEN=${READER:+$(login "$READER")}
  export TOKEN ACCEPT_ENCODING=${ACCEPT_ENCODING:-}
  slug=$(psql "$PGURL/$A_DB" -Atc "select slug from articles where slug ~ '^[a-z0-9-]+\$' order by id limit 1")
  paths=${PATHS:-/api/articles/SLUG /api/articles?limit=20&offset=100 /api/tags}
  paths=${paths//SLUG/$slug}
fi
for path in $paths; do
  DUR=2 run 3205 warm "$path" >/dev/null; DUR=2 run 3206 warm "$path" >/dev/null
  for _ in $(seq 1 "${ROUNDS:-3}"); do run 3205 A "$path"; run 3206 B "$path"; done
done
