# Sourced by run.sh and instructions.sh: builds the release binaries, makes $work (removed on
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
