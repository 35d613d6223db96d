#!/usr/bin/env bash
# Writes bench/hot-functions.txt: the functions of the linker that an attach runs, hottest
# first, which build.rs hands to the linker (lld's --symbol-ordering-file) so that a release
# build lays them out side by side. Counts them with callgrind over COUNT attaches over HTTP
# and COUNT over MCP, after a warm-up, the linker configured as production runs it. Re-run it
# after changing the attach path, a dependency or the toolchain, then rebuild; bench/run.sh
# prints how many of the listed functions the binary still has. Loopback only. Needs valgrind
# and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-300}
FAKE_PORT=${FAKE_PORT:-18081}
PORT=${PORT:-18084}
OUT=bench/hot-functions.txt

for tool in valgrind callgrind_control callgrind_annotate python3; do
  command -v "$tool" >/dev/null || { echo "bench/hot-functions.sh: $tool is not installed" >&2; exit 1; }
done
# shellcheck source=bench/setup.sh
source bench/setup.sh

export HOST=127.0.0.1
VGDB_PREFIX="$work/vgdb"
bin=$PWD/target/release/mcp-asana-linker
profile="$work/callgrind.out"
env -i PATH="$PATH" HOST=127.0.0.1 PORT="$PORT" RUST_LOG=info LOG_FORMAT=json \
  MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" \
  TOKEN_STORE_PATH="$work/tokens.json" DATABASE_URL="sqlite://$work/linker.db" LINKER_API_KEY=bench-key \
  valgrind --tool=callgrind --demangle=no --instr-atstart=no --vgdb-prefix="$VGDB_PREFIX" \
  --callgrind-out-file="$profile" "$bin" >/dev/null 2>"$work/linker.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 1 300); do python3 bench/sequential_attach.py "$PORT" 1 2>/dev/null && break; sleep 0.2; done
python3 bench/sequential_attach.py "$PORT" 100
python3 bench/sequential_attach.py --mcp "$PORT" 100
callgrind_control --vgdb-prefix="$VGDB_PREFIX" -i on "$pid" >/dev/null 2>&1
python3 bench/sequential_attach.py "$PORT" "$COUNT"
python3 bench/sequential_attach.py --mcp "$PORT" "$COUNT"
callgrind_control --vgdb-prefix="$VGDB_PREFIX" -d "$pid" >/dev/null 2>&1
kill "$pid"
wait "$pid" 2>/dev/null || true

# callgrind_annotate's rows read "IR (PERCENT)  FILE:FUNCTION [OBJECT]"; keep the linker's
# own functions (not libc's), without callgrind's recursion suffix ('2), each once.
callgrind_annotate --threshold=100 "$(ls -S "$profile"* | head -1)" | python3 -c '
import re, sys
binary = sys.argv[1]
seen = set()
for line in sys.stdin:
    row = re.match(r"\s*[\d,]+ \([^)]*\)\s+(\S+) \[(.*)\]$", line)
    if not row or row.group(2) != binary:
        continue
    name = re.sub(r"'"'"'\d+$", "", row.group(1).rsplit(":", 1)[-1])
    if name not in seen:
        seen.add(name)
        print(name)
' "$bin" > "$OUT"
echo "bench/hot-functions.txt: $(wc -l < "$OUT") functions; rebuild (cargo build --release) to lay them out"
