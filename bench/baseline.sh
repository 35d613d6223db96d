#!/usr/bin/env bash
# The linker against an earlier build of itself and the floor, on this machine. How close a
# service comes to the floor depends on the machine as well as on the code (the same binary
# made 98.5 % of the floor on the 2-core AMD VM of 2026-11-25 and about 90 % on the Intel one
# of 2026-11-26), so a target set on one machine is checked here against the build it was set
# on. BASELINE_REV (default 10fc541, the code issue #11 was filed against) is
# built once under target/baseline/ and run with BASELINE_ENV (default RUST_LOG=warn
# COMMENT_HEADER=false, as its own bench ran it), beside the linker as production runs it and
# the floor, in ROUNDS rounds of DURATION seconds, their order rotated each round. Loopback
# only; needs wrk and git.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-8}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BASELINE_REV=${BASELINE_REV:-10fc541}
BASELINE_ENV=${BASELINE_ENV:-RUST_LOG=warn COMMENT_HEADER=false}
SERVICE_PORT=${SERVICE_PORT:-18280}
FAKE_PORT=${FAKE_PORT:-18281}
FLOOR_PORT=${FLOOR_PORT:-18282}
BASELINE_PORT=${BASELINE_PORT:-18283}

command -v wrk >/dev/null || { echo "bench/baseline.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
rev=$(git rev-parse --short "$BASELINE_REV^{commit}")
baseline=$PWD/target/baseline/$rev
if [ ! -x "$baseline/mcp-asana-linker" ]; then
  echo "building $rev (release, once)…"
  rm -rf "$baseline/src"
  mkdir -p "$baseline/src"
  git archive "$rev" | tar -x -C "$baseline/src"
  (cd "$baseline/src" && CARGO_TARGET_DIR="$baseline/target" cargo build --release --quiet --bin mcp-asana-linker)
  cp "$baseline/target/release/mcp-asana-linker" "$baseline/mcp-asana-linker"
fi
# shellcheck source=bench/setup.sh
source bench/setup.sh
cp "$work/tokens.json" "$work/tokens-baseline.json"

target/release/examples/floor_service "$FLOOR_PORT" "http://127.0.0.1:$FAKE_PORT" >/dev/null &
floor_pid=$!
pids+=("$floor_pid")
linker service "$SERVICE_PORT" "sqlite://$work/linker.db" "$work/tokens.json" &
service_pid=$!
pids+=("$service_pid")
# shellcheck disable=SC2086
LINKER_BIN=$baseline/mcp-asana-linker linker baseline "$BASELINE_PORT" "sqlite://$work/baseline.db" \
  "$work/tokens-baseline.json" $BASELINE_ENV &
baseline_pid=$!
pids+=("$baseline_pid")

wait_up "$SERVICE_PORT" "$BASELINE_PORT" "$FLOOR_PORT"

echo "== attach, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "   linker: this tree, as production runs it; baseline: $rev with $BASELINE_ENV"
services=("linker $service_pid $SERVICE_PORT" "baseline $baseline_pid $BASELINE_PORT" "floor $floor_pid $FLOOR_PORT")
for round in $(seq 1 "$ROUNDS"); do
  echo "-- round $round"
  # Each round starts with the next service, so none is always measured first or last.
  for i in 0 1 2; do
    service=${services[$(( (round + i) % 3 ))]}
    # shellcheck disable=SC2086
    measure $service
    row "${service%% *}"
  done
done
hwm() { awk '/VmHWM/ {print $2, $3}' "/proc/$1/status"; }
echo "peak RSS: linker $(hwm "$service_pid"), baseline $(hwm "$baseline_pid"), floor $(hwm "$floor_pid")"
echo "== linker/floor throughput: $(ratio "$work/rps" linker floor)"
echo "== baseline/floor throughput: $(ratio "$work/rps" baseline floor)"
echo "== linker/baseline throughput: $(ratio "$work/rps" linker baseline)"
