#!/usr/bin/env bash
# Writes bench/hot-functions.txt: the functions of the linker that an attach runs, hottest
# first, then every other function it runs from its start, which build.rs hands to the linker
# (lld's --symbol-ordering-file) so that a release build lays them out side by side. Counts
# the first with callgrind over COUNT attaches over HTTP and COUNT over MCP, after a warm-up,
# and the second over a fresh start and one attach, the linker configured as production runs
# it. Re-run it after changing the attach path, a dependency or the toolchain, then rebuild;
# bench/run.sh prints how many of the listed functions the binary still has. Loopback only.
# Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-300}
FAKE_PORT=${FAKE_PORT:-18081}
PORT=${PORT:-18084}
OUT=${OUT:-bench/hot-functions.txt}

# shellcheck source=bench/callgrind.sh
source bench/callgrind.sh

bin=$PWD/target/release/mcp-asana-linker
production linker
profile linker "http mcp" --demangle=no "${vars[@]}" -- "$bin"
callgrind_annotate --threshold=100 "$profiled" > "$work/attach.txt"
# Startup code (settings, store, migrations, router) runs once, but spread over the whole
# program it would keep pages of code resident that nothing needs afterwards: the kernel maps
# 64 KiB around every page of a program that is touched.
production startup
profile startup "" --demangle=no --instr-atstart=yes "${vars[@]}" -- "$bin"
callgrind_annotate --threshold=100 "$profiled" > "$work/startup.txt"

# callgrind_annotate's rows read "IR (PERCENT)  FILE:FUNCTION [OBJECT]"; keep the linker's
# own functions (not libc's), without callgrind's recursion suffix ('2), each once: the
# attach path's first, hottest first, then the rest of what ran since the start.
cat "$work/attach.txt" "$work/startup.txt" | python3 -c '
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
echo "$OUT: $(wc -l < "$OUT") functions; rebuild (cargo build --release) to lay them out"
