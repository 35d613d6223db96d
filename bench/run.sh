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

up() { curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer bench-key' \
  -d '{"task_gid":"1234567890","context_name":"design_notes"}' "http://127.0.0.1:$1/asana/attach-context" 2>/dev/null; }
for port in "$SERVICE_PORT" "$PG_PORT" "$FLOOR_PORT" "$FLOOR_MI_PORT"; do
  for _ in $(seq 1 100); do up "$port" && break; sleep 0.1; done
  up "$port" || { echo "bench/run.sh: nothing answers attach on port $port" >&2; tail -5 "$work/service.log" >&2; exit 1; }
done

# CPU time (user + system) a process has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
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
  local before after out rps n pg_before pg_after server=""
  before=$(ticks "$2")
  pg_before=$(pg_ticks)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/attach.lua \
    "http://127.0.0.1:$3/asana/attach-context")
  after=$(ticks "$2")
  pg_after=$(pg_ticks)
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench/run.sh: some attaches to $1 failed:" >&2; grep "Non-2xx" <<<"$out" >&2
    tail -5 "$work/service.log" >&2; exit 1
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  # The linker on PostgreSQL also makes its server work: that CPU is shown beside its own.
  if [ "$1" = linker-pg ]; then
    server=$(awk -v a="$pg_before" -v b="$pg_after" -v n="$n" -v hz="$hz" \
      'BEGIN {printf "  + PostgreSQL server %.1f µs/attach", (b - a) / hz * 1e6 / n}')
  fi
  printf "%-16s %10s req/s  p50 %8s  p99 %8s  CPU %6.1f µs/attach%s\n" "$1" "$rps" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk -v a="$before" -v b="$after" -v n="$n" -v hz="$hz" 'BEGIN {print (b - a) / hz * 1e6 / n}')" "$server"
  echo "$1 $rps" >> "$work/rps"
}

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
awk '
  { rps[$1, ++n[$1]] = $2; sum[$1] += $2 }
  function median(values, count,   i, j, t) {
    for (i = 2; i <= count; i++)
      for (j = i; j > 1 && values[j - 1] > values[j]; j--) { t = values[j]; values[j] = values[j - 1]; values[j - 1] = t }
    return count % 2 ? values[(count + 1) / 2] : (values[count / 2] + values[count / 2 + 1]) / 2
  }
  END {
    for (i = 1; i <= n["linker"]; i++) {
      floor[i] = 100 * rps["linker", i] / rps["floor", i]
      mimalloc[i] = 100 * rps["linker", i] / rps["floor-mimalloc", i]
      pg[i] = 100 * rps["linker-pg", i] / rps["linker", i]
    }
    printf "== linker/floor throughput: median of rounds %.1f %% (mean %.1f %%); on mimalloc: median %.1f %% (mean %.1f %%)\n",
      median(floor, n["linker"]), 100 * sum["linker"] / sum["floor"],
      median(mimalloc, n["linker"]), 100 * sum["linker"] / sum["floor-mimalloc"]
    printf "== linker on PostgreSQL / linker on SQLite: median of rounds %.1f %% (mean %.1f %%)\n",
      median(pg, n["linker"]), 100 * sum["linker-pg"] / sum["linker"]
  }' "$work/rps"
