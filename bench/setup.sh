# Sourced by run.sh, mcp.sh and instructions.sh: builds the release binaries, makes $work (removed on
# exit, after the processes listed in $pids are stopped) with a token file valid for a day,
# so runs measure the attach path, not refreshes, and starts the fake upstream on $FAKE_PORT.

echo "building (release)…"
# The linker on its own, as `cargo run --release` and the Dockerfile build it: built with the
# examples, its dependencies would take the features the dev-dependencies ask for.
cargo build --release --quiet --bin mcp-asana-linker
cargo build --release --quiet --example fake_upstream --example floor_service --example floor_service_mimalloc

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

expires=$(( $(date +%s) + 86400 ))
cat > "$work/tokens.json" <<JSON
{"version":1,"access_token":"bench-access","refresh_token":"bench-refresh","expires_at":$expires,
 "user":{"gid":"1","name":"Bench","email":null}}
JSON
chmod 600 "$work/tokens.json"

target/release/examples/fake_upstream "$FAKE_PORT" >/dev/null &
pids+=($!)

# linker NAME PORT DATABASE_URL TOKEN_FILE [VAR=VALUE…]: the linker ($LINKER_BIN, default
# this tree's release build) as production runs it, with the VARs on top. Run in the
# background, it replaces its subshell (exec), so $! is the linker's own pid.
linker() {
  local bin=${LINKER_BIN:-$PWD/target/release/mcp-asana-linker}
  cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$2" \
    RUST_LOG=info LOG_FORMAT=json MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" \
    ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" \
    DATABASE_URL="$3" TOKEN_STORE_PATH="$4" LINKER_API_KEY=bench-key "${@:5}" \
    "$bin" 2>"$work/$1.log"
}

# CPU time (user + system) a process has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME PID PORT [PATH SCRIPT]: drives PATH (default attach) on PORT with wrk and
# SCRIPT (default bench/attach.lua) for DURATION seconds, fails on any non-2xx answer, and
# sets out (wrk's report), rps, requests and cpu_us (PID's CPU time per request).
measure() {
  local before after
  before=$(ticks "$2")
  out=$(wrk -t"${THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${DURATION:-10}s" --latency \
    -s "${5:-bench/attach.lua}" "http://127.0.0.1:$3${4:-/asana/attach-context}")
  after=$(ticks "$2")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench: some attaches to $1 failed:" >&2; grep "Non-2xx" <<<"$out" >&2; exit 1
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu_us=$(awk -v a="$before" -v b="$after" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.1f", (b - a) / hz * 1e6 / n}')
}

# ratio FILE A B: from FILE's "NAME req/s" lines (one per service per round, in round order),
# A's requests/s as a percentage of B's: the median of the per-round ratios, and the mean.
ratio() {
  awk -v a="$2" -v b="$3" '
    $1 == a { x[++na] = $2; sa += $2 }
    $1 == b { y[++nb] = $2; sb += $2 }
    END {
      n = na < nb ? na : nb
      for (i = 1; i <= n; i++) r[i] = 100 * x[i] / y[i]
      for (i = 2; i <= n; i++)
        for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
      median = n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
      printf "median of rounds %.1f %% (mean %.1f %%)", median, 100 * sa / sb
    }' "$1"
}

# row NAME [EXTRA]: prints the last measure's row and appends "NAME rps" to $work/rps.
row() {
  printf "%-16s %10s req/s  p50 %8s  p99 %8s  CPU %6.1f µs/attach%s\n" "$1" "$rps" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$cpu_us" "${2:-}"
  echo "$1 $rps" >> "$work/rps"
}

# up PORT: one attach on PORT succeeds.
up() { curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer bench-key' \
  -d '{"task_gid":"1234567890","context_name":"design_notes"}' "http://127.0.0.1:$1/asana/attach-context" 2>/dev/null; }

# wait_up PORT…: waits up to 10 s for each PORT to attach, and fails if one does not.
wait_up() {
  local port
  for port in "$@"; do
    for _ in $(seq 1 100); do up "$port" && break; sleep 0.1; done
    up "$port" || { echo "bench: nothing answers attach on port $port" >&2; tail -5 "$work"/*.log >&2; exit 1; }
  done
}
