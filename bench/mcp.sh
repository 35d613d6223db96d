#!/usr/bin/env bash
# The MCP face against the HTTP API, on one linker run as production runs it (info logs in
# JSON, an API key, the default comment layout, its SQLite store) and the fast fake upstream:
# `tools/call attach_context` over stateless Streamable HTTP (2026-07-28, bench/mcp_attach.lua)
# and `POST /asana/attach-context` (bench/attach.lua), back to back in each round, the order
# alternating. Prints the median of the per-round ratios. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SERVICE_PORT=${SERVICE_PORT:-18090}
FAKE_PORT=${FAKE_PORT:-18091}

command -v wrk >/dev/null || { echo "bench/mcp.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# shellcheck source=bench/setup.sh
source bench/setup.sh

linker service "$SERVICE_PORT" "sqlite://$work/linker.db" "$work/tokens.json" &
service_pid=$!
pids+=("$service_pid")

# One call of each kind must succeed (and the tool must not answer with isError) before load.
http_once() { curl -fsS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer bench-key' \
  -d '{"task_gid":"1234567890","context_name":"design_notes"}' "http://127.0.0.1:$SERVICE_PORT/asana/attach-context"; }
mcp_once() { lua_body=$(sed -n "/^wrk.body/,/}}}}'/p" bench/mcp_attach.lua | sed "s/^wrk.body = //; s/^  \.\. //; s/'//g" | tr -d '\n')
  curl -fsS -X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'Authorization: Bearer bench-key' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' \
    -H 'Mcp-Name: attach_context' -d "$lua_body" "http://127.0.0.1:$SERVICE_PORT/mcp"; }
for _ in $(seq 1 100); do http_once >/dev/null 2>&1 && break; sleep 0.1; done
http_once >/dev/null || { echo "bench/mcp.sh: the HTTP attach fails" >&2; tail -5 "$work/service.log" >&2; exit 1; }
answer=$(mcp_once) || { echo "bench/mcp.sh: the MCP attach fails" >&2; exit 1; }
grep -q '"isError":false' <<<"$answer" || { echo "bench/mcp.sh: the MCP attach answered: $answer" >&2; exit 1; }

# load NAME PATH SCRIPT: one wrk run; prints a row and appends "NAME rps" to $work/rps.
load() {
  measure "$1" "$service_pid" "$SERVICE_PORT" "$2" "$3"
  row "$1"
}

echo "== attach over MCP and over HTTP, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq 1 "$ROUNDS"); do
  echo "-- round $round"
  if (( round % 2 )); then
    load mcp /mcp bench/mcp_attach.lua; load http /asana/attach-context bench/attach.lua
  else
    load http /asana/attach-context bench/attach.lua; load mcp /mcp bench/mcp_attach.lua
  fi
done
echo "tool calls counted: $(curl -fsS -H 'Authorization: Bearer bench-key' "http://127.0.0.1:$SERVICE_PORT/metrics" | awk '/^linker_mcp_tool_calls_total/ {printf "%s ", $0}')"
echo "peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$service_pid/status")"

echo "== MCP tools/call / HTTP attach throughput: $(ratio "$work/rps" mcp http)"
