# Sourced by scripts/ab-pinned.sh and scripts/connections-burst.sh: a Conduit server pinned to
# CPU 1 (the load runs on CPU 0), and what they read of it.

# pinned_start DIR PORT DATABASE_URL "KEY=VALUE ...": starts the service's process in DIR from its
# sources (`npm start` runs the same, built), in the background, with production settings and the
# given ones after them.
pinned_start() {
  # shellcheck disable=SC2086 # $4 is a list of settings
  (cd "$1" && env NODE_ENV=production METRICS_PORT=api JWT_SECRET=pinned-secret-0123456789abcdef-0123456789 \
    DATABASE_URL="$3" LOG_LEVEL=warn PORT="$2" $4 \
    setsid taskset -c 1 node --env-file=src/runtime.env --import ./src/telemetry/tracing.ts src/main.ts > "/tmp/pinned-$2.log" 2>&1 &)
}

# pinned_ready PORT: waits up to 60 s for /readyz, or prints the log's tail and fails.
pinned_ready() {
  local i
  for i in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/readyz" > /dev/null && return 0; sleep 0.5; done
  echo "the server on $1 did not get ready:" >&2
  tail -5 "/tmp/pinned-$1.log" >&2
  return 1
}

# pinned_pid PORT: the pid listening on the port. Reads all of ss's lines (a process listens on
# HTTP_LISTENERS sockets): stopping at the first would end ss with SIGPIPE, which pipefail turns
# into the caller's exit.
pinned_pid() {
  ss -Hltnp "sport = :$1" | awk '!found && match($0, /pid=[0-9]+/) { found = 1; print substr($0, RSTART + 4, RLENGTH - 4) }'
}

# pinned_cpu PID: its user + system CPU time in ticks (USER_HZ is 100: a tick is 10,000 µs).
pinned_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
