# Sourced by run.sh, mcp.sh and instructions.sh: builds the release binaries, makes $work (removed on
# exit, after the processes listed in $pids are stopped) with a token file valid for a day,
# so runs measure the attach path, not refreshes, and starts the fake upstream on $FAKE_PORT.

echo "building (release)…"
cargo build --release --quiet --bin mcp-asana-linker --example fake_upstream \
  --example floor_service --example floor_service_mimalloc

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

# linker NAME PORT DATABASE_URL TOKEN_FILE: the linker as production runs it. Run in the
# background, it replaces its subshell (exec), so $! is the linker's own pid.
linker() {
  cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$2" \
    RUST_LOG=info LOG_FORMAT=json MCP_SERVER_URL="http://127.0.0.1:$FAKE_PORT" \
    ASANA_API_BASE_URL="http://127.0.0.1:$FAKE_PORT/api/1.0" \
    DATABASE_URL="$3" TOKEN_STORE_PATH="$4" LINKER_API_KEY=bench-key \
    "$OLDPWD/target/release/mcp-asana-linker" 2>"$work/$1.log"
}
