#!/usr/bin/env bash
# Instructions per attach, counted by callgrind: repeatable whatever else the machine does,
# unlike req/s. Runs the linker, the floor and the floor on mimalloc in turn under valgrind,
# sends COUNT attaches one at a time after a warm-up, and counts only those. Loopback only.
# Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-2000}
FAKE_PORT=${FAKE_PORT:-18081}
PORT=${PORT:-18084}

for tool in valgrind callgrind_control callgrind_annotate python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh: $tool is not installed" >&2; exit 1; }
done
# shellcheck source=bench/setup.sh
source bench/setup.sh

# valgrind and callgrind_control find each other by a pipe named after the prefix and HOST.
export HOST=127.0.0.1
VGDB_PREFIX="$work/vgdb"
valgrind=(valgrind --tool=callgrind --instr-atstart=no --vgdb-prefix="$VGDB_PREFIX")

# count NAME [--mcp] [VAR=VALUE…] -- PROGRAM [ARG…]: starts PROGRAM under callgrind in a
# clean environment with the VARs, on $PORT, and prints its instructions per attach (sent as
# MCP tool calls with --mcp).
count() {
  local name=$1 out="$work/callgrind.$1" vars=() pid total mcp=()
  shift
  if [ "$1" = "--mcp" ]; then mcp=(--mcp); shift; fi
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  env -i PATH="$PATH" HOST=127.0.0.1 "${vars[@]}" "${valgrind[@]}" --callgrind-out-file="$out" "$@" \
    >/dev/null 2>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do python3 bench/sequential_attach.py "${mcp[@]}" "$PORT" 1 2>/dev/null && break; sleep 0.2; done
  python3 bench/sequential_attach.py "${mcp[@]}" "$PORT" 200
  callgrind_control --vgdb-prefix="$VGDB_PREFIX" -i on "$pid" >/dev/null 2>&1
  python3 bench/sequential_attach.py "${mcp[@]}" "$PORT" "$COUNT"
  callgrind_control --vgdb-prefix="$VGDB_PREFIX" -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$(ls -S "$out"* | head -1)" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf "%-16s %8d instructions per attach\n" "$name" $(( total / COUNT ))
  if [ -n "${KEEP_PROFILES:-}" ]; then cp "$(ls -S "$out"* | head -1)" "$KEEP_PROFILES/callgrind.$name"; fi
}

echo "== callgrind, $COUNT sequential attaches each"
# Each linker imports (and removes) a token file at its first start.
cp "$work/tokens.json" "$work/tokens-mcp.json"
# As production runs it: info logs in JSON, an API key, the default comment layout.
count linker PORT="$PORT" RUST_LOG=info LOG_FORMAT=json MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" \
  ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" TOKEN_STORE_PATH="$work/tokens.json" \
  DATABASE_URL="sqlite://$work/linker.db" \
  LINKER_API_KEY=bench-key -- target/release/mcp-asana-linker
count linker-mcp --mcp PORT="$PORT" RUST_LOG=info LOG_FORMAT=json MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" \
  ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" TOKEN_STORE_PATH="$work/tokens-mcp.json" \
  DATABASE_URL="sqlite://$work/linker-mcp.db" \
  LINKER_API_KEY=bench-key -- target/release/mcp-asana-linker
count floor -- target/release/examples/floor_service "$PORT" "http://127.0.0.1:$FAKE_PORT"
count floor-mimalloc -- target/release/examples/floor_service_mimalloc "$PORT" "http://127.0.0.1:$FAKE_PORT"
