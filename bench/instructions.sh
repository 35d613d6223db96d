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

# shellcheck source=bench/callgrind.sh
source bench/callgrind.sh

# count NAME KIND [VAR=VALUE…] -- PROGRAM [ARG…]: profiles PROGRAM (see `profile`) and prints
# its instructions per attach.
count() {
  local name=$1 total
  profile "$@"
  total=$(callgrind_annotate "$profiled" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf "%-16s %8d instructions per attach\n" "$name" $(( total / COUNT ))
  if [ -n "${KEEP_PROFILES:-}" ]; then cp "$profiled" "$KEEP_PROFILES/callgrind.$name"; fi
}

echo "== callgrind, $COUNT sequential attaches each"
production linker
count linker http "${vars[@]}" -- target/release/mcp-asana-linker
production linker-mcp
count linker-mcp mcp "${vars[@]}" -- target/release/mcp-asana-linker
count floor http -- target/release/examples/floor_service "$PORT" "http://127.0.0.1:$FAKE_PORT"
count floor-mimalloc http -- target/release/examples/floor_service_mimalloc "$PORT" "http://127.0.0.1:$FAKE_PORT"
