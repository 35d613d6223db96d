# Sourced by instructions.sh and hot-functions.sh: checks for valgrind's tools, sources
# setup.sh (release build, $work, the fake upstream on $FAKE_PORT), and defines `production`
# and `profile`. Needs PORT, COUNT and FAKE_PORT set.

for tool in valgrind callgrind_control callgrind_annotate python3; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done
# shellcheck source=bench/setup.sh
source bench/setup.sh

# valgrind and callgrind_control find each other by a pipe named after the prefix and HOST.
export HOST=127.0.0.1
VGDB_PREFIX="$work/vgdb"

# production NAME: sets `vars` to the linker's settings as production runs it (info logs in
# JSON, an API key, the default comment layout) on $PORT, with a store and a copy of the
# token file of its own (a linker imports, and removes, the token file at its first start).
production() {
  cp "$work/tokens.json" "$work/tokens-$1.json"
  vars=(PORT="$PORT" RUST_LOG=info LOG_FORMAT=json MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT"
    ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" TOKEN_STORE_PATH="$work/tokens-$1.json"
    DATABASE_URL="sqlite://$work/$1.db" LINKER_API_KEY=bench-key)
}

# attaches KIND N: N attaches on $PORT, one at a time, over HTTP (KIND http) or MCP (mcp).
attaches() {
  if [ "$1" = mcp ]; then
    python3 bench/sequential_attach.py --mcp "$PORT" "$2"
  else
    python3 bench/sequential_attach.py "$PORT" "$2"
  fi
}

# profile NAME KINDS [VALGRIND_FLAG…] [VAR=VALUE…] -- PROGRAM [ARG…]: starts PROGRAM under
# callgrind in a clean environment with the VARs, sends 200 attaches of each kind in KINDS
# ("http", "mcp" or "http mcp"; over MCP, a stateless tools/call) one at a time as a warm-up,
# then counts COUNT of each, and stops it. Sets `profiled` to the profile's file.
profile() {
  local name=$1 kinds=$2 flags=() vars=() pid kind
  shift 2
  while [ "$1" != "--" ]; do
    if [[ $1 == --* ]]; then flags+=("$1"); else vars+=("$1"); fi
    shift
  done
  shift
  env -i PATH="$PATH" HOST=127.0.0.1 "${vars[@]}" valgrind --tool=callgrind --instr-atstart=no \
    --vgdb-prefix="$VGDB_PREFIX" "${flags[@]}" --callgrind-out-file="$work/callgrind.$name" "$@" \
    >/dev/null 2>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do python3 bench/sequential_attach.py "$PORT" 1 2>/dev/null && break; sleep 0.2; done
  for kind in $kinds; do attaches "$kind" 200; done
  callgrind_control --vgdb-prefix="$VGDB_PREFIX" -i on "$pid" >/dev/null 2>&1
  for kind in $kinds; do attaches "$kind" "$COUNT"; done
  callgrind_control --vgdb-prefix="$VGDB_PREFIX" -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # The dump asked for above; the file written at exit holds only the shutdown.
  profiled=$(ls -S "$work/callgrind.$name"* | head -1)
}
