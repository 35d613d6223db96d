#!/usr/bin/env bash
# Load run on loopback: the linker's attach path against a fast fake upstream, on its default
# SQLite store and on a throwaway PostgreSQL (scripts/postgres.sh); the floor, an axum +
# reqwest service making only the same two upstream calls, on the system allocator and on
# mimalloc (the linker's allocator); and the fake alone. The linker runs as production
# does: info logs in JSON, an API key, the default comment layout (header on). Rounds
# interleave the services and rotate their order, so that drift on a shared machine hits each
# alike. Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SERVICE_PORT=${SERVICE_PORT:-18080}
FAKE_PORT=${FAKE_PORT:-18081}
FLOOR_PORT=${FLOOR_PORT:-18082}
FLOOR_MI_PORT=${FLOOR_MI_PORT:-18083}
PG_PORT=${PG_PORT:-18086}

command -v wrk >/dev/null || { echo "bench/run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# shellcheck source=bench/setup.sh
source bench/setup.sh
# The same linker on PostgreSQL: a throwaway server on these cores, as the SQLite file is.
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
start_postgres target/bench-postgres BENCH_DATABASE_URL
trap 'cleanup; stop_postgres' EXIT
# Each linker imports (and removes) a token file at its first start.
cp "$work/tokens.json" "$work/tokens-pg.json"

target/release/examples/floor_service "$FLOOR_PORT" "http://127.0.0.1:$FAKE_PORT" >/dev/null &
floor_pid=$!
pids+=("$floor_pid")
target/release/examples/floor_service_mimalloc "$FLOOR_MI_PORT" "http://127.0.0.1:$FAKE_PORT" >/dev/null &
floor_mi_pid=$!
pids+=("$floor_mi_pid")
linker service "$SERVICE_PORT" "sqlite://$work/linker.db" "$work/tokens.json" &
service_pid=$!
pids+=("$service_pid")
linker service-pg "$PG_PORT" "$BENCH_DATABASE_URL" "$work/tokens-pg.json" &
pg_pid=$!
pids+=("$pg_pid")

wait_up "$SERVICE_PORT" "$PG_PORT" "$FLOOR_PORT" "$FLOOR_MI_PORT"

# CPU time of the PostgreSQL server: its postmaster and every backend and helper it started.
pg_ticks() {
  local postmaster total=0 pid
  postmaster=$(head -1 "$pgdata/data/postmaster.pid")
  for pid in "$postmaster" $(pgrep -P "$postmaster"); do
    total=$(( total + $(ticks "$pid" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# load NAME PID PORT: one wrk run; prints a row and appends "NAME rps" to $work/rps.
load() {
  local pg_before pg_after server=""
  pg_before=$(pg_ticks)
  measure "$@"
  pg_after=$(pg_ticks)
  # The linker on PostgreSQL also makes its server work: that CPU is shown beside its own.
  if [ "$1" = linker-pg ]; then
    server=$(awk -v a="$pg_before" -v b="$pg_after" -v n="$requests" -v hz="$hz" \
      'BEGIN {printf "  + PostgreSQL server %.1f µs/attach", (b - a) / hz * 1e6 / n}')
  fi
  row "$1" "$server"
}

# The release build lays out these functions side by side (build.rs); a list older than the
# code names functions the binary no longer has, and then it is time to re-run
# bench/hot-functions.sh.
echo "== hot functions (bench/hot-functions.txt) the binary has: $(nm --defined-only target/release/mcp-asana-linker \
  | awk 'NR == FNR {listed[$1]; next} $3 in listed && !seen[$3]++ {n++} END {print n + 0}' bench/hot-functions.txt -) of $(wc -l < bench/hot-functions.txt)"
echo "== attach, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
services=("linker $service_pid $SERVICE_PORT" "linker-pg $pg_pid $PG_PORT" \
  "floor $floor_pid $FLOOR_PORT" "floor-mimalloc $floor_mi_pid $FLOOR_MI_PORT")
for round in $(seq 1 "$ROUNDS"); do
  echo "-- round $round"
  # Each round starts with the next service, so none is always measured first or last.
  for i in 0 1 2 3; do
    # shellcheck disable=SC2086
    load ${services[$(( (round + i) % 4 ))]}
  done
done
echo "log lines written by the linker: $(wc -l < "$work/service.log"), dropped: $(curl -fsS -H 'Authorization: Bearer bench-key' "http://127.0.0.1:$SERVICE_PORT/metrics" | awk '/^linker_log_lines_dropped_total/ {print $2}')"
echo "peak RSS: linker $(awk '/VmHWM/ {print $2, $3}' "/proc/$service_pid/status"), linker-pg $(awk '/VmHWM/ {print $2, $3}' "/proc/$pg_pid/status"), floor $(awk '/VmHWM/ {print $2, $3}' "/proc/$floor_pid/status"), floor-mimalloc $(awk '/VmHWM/ {print $2, $3}' "/proc/$floor_mi_pid/status")"

echo "== the stores after the run (rows per table)"
for db in "sqlite://$work/linker.db" "$BENCH_DATABASE_URL"; do
  env -i PATH="$PATH" DATABASE_URL="$db" target/release/mcp-asana-linker store check
done

echo "== the fake's stories endpoint called directly"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/story.lua \
  "http://127.0.0.1:$FAKE_PORT/api/1.0/tasks/1234567890/stories" | awk '/Requests\/sec/'

# Each round compares services measured back to back, so the median of the per-round ratios
# is the figure least moved by a noisy neighbour; the mean over rounds is printed beside it.
echo "== linker/floor throughput: $(ratio "$work/rps" linker floor); on mimalloc: $(ratio "$work/rps" linker floor-mimalloc)"
echo "== linker on PostgreSQL / linker on SQLite: $(ratio "$work/rps" linker-pg linker)"
