#!/usr/bin/env bash
# Load run on loopback: the linker's attach path against a fast fake upstream; the floor, an
# axum + reqwest service making only the same two upstream calls; and the fake alone.
# Needs wrk (Debian: apt-get install wrk). Bounded: DURATION seconds each.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SERVICE_PORT=${SERVICE_PORT:-18080}
FAKE_PORT=${FAKE_PORT:-18081}
FLOOR_PORT=${FLOOR_PORT:-18082}

command -v wrk >/dev/null || { echo "bench/run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin mcp-asana-linker --example fake_upstream --example floor_service

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# A token valid for a day, so the run measures the attach path, not refreshes.
expires=$(( $(date +%s) + 86400 ))
cat > "$work/tokens.json" <<JSON
{"version":1,"access_token":"bench-access","refresh_token":"bench-refresh","expires_at":$expires,
 "user":{"gid":"1","name":"Bench","email":null}}
JSON
chmod 600 "$work/tokens.json"

target/release/examples/fake_upstream "$FAKE_PORT" >/dev/null &
pids+=($!)
target/release/examples/floor_service "$FLOOR_PORT" "http://127.0.0.1:$FAKE_PORT" >/dev/null &
floor_pid=$!
pids+=("$floor_pid")
(cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$SERVICE_PORT" RUST_LOG=warn \
  MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" \
  ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" \
  TOKEN_STORE_PATH="$work/tokens.json" LINKER_API_KEY=bench-key COMMENT_HEADER=false \
  "$OLDPWD/target/release/mcp-asana-linker" 2>"$work/service.log") &
service_pid=$!
pids+=("$service_pid")

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$SERVICE_PORT/health" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$FAKE_PORT/contexts/x" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer bench-key' \
  -d '{"task_gid":"1234567890","context_name":"design_notes"}' \
  "http://127.0.0.1:$SERVICE_PORT/asana/attach-context" >/dev/null

echo "== attach via the linker (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/attach.lua \
  "http://127.0.0.1:$SERVICE_PORT/asana/attach-context" | tee "$work/attach.txt"
echo "peak RSS of the linker: $(grep VmHWM "/proc/$service_pid/status" | awk '{print $2, $3}')"

echo "== floor: axum + reqwest making only the two upstream calls"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/attach.lua \
  "http://127.0.0.1:$FLOOR_PORT/asana/attach-context" | tee "$work/floor.txt"
echo "peak RSS of the floor service: $(grep VmHWM "/proc/$floor_pid/status" | awk '{print $2, $3}')"

echo "== the fake's stories endpoint called directly"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/story.lua \
  "http://127.0.0.1:$FAKE_PORT/api/1.0/tasks/1234567890/stories"

linker=$(awk '/Requests\/sec/ {print $2}' "$work/attach.txt")
floor=$(awk '/Requests\/sec/ {print $2}' "$work/floor.txt")
echo "== linker/floor throughput: $(awk -v l="$linker" -v f="$floor" 'BEGIN {printf "%.1f %%", 100 * l / f}')"

if grep -q "Non-2xx" "$work/attach.txt"; then
  echo "bench/run.sh: some attaches failed; see the linker log:" >&2
  tail -5 "$work/service.log" >&2
  exit 1
fi
