# Sourced by the bench scripts: a fresh single-organisation node served on a
# free loopback port.
#
#   start_node BINARY NODE_DIR LOG    sets token, server (its pid) and base (its URL)
#   serve_node BINARY NODE_DIR LOG [SERVE ARGS...]   serves an existing node; sets server and base
#   trap stop_node_and_clean EXIT     on exit, stops the node and removes $work

org=urn:epc:id:sgln:0614141.00001.0

start_node() {
  local bin=$1 node=$2 log=$3
  $bin org add --data-dir "$node" --gln $org --name Bench --role carrier >/dev/null
  token=$($bin token issue --data-dir "$node" --org $org 2>/dev/null)
  serve_node "$bin" "$node" "$log"
}

serve_node() {
  local bin=$1 node=$2 log=$3
  shift 3
  RUST_LOG=warn $bin serve --data-dir "$node" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q http:// "$log" 2>/dev/null && break; sleep 0.1; done
  base=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
}

# Stops the node in `server` (if one runs) and removes the directory in
# `work` (if set): the bench scripts' exit trap.
stop_node_and_clean() {
  if [ -n "${server:-}" ]; then kill -INT "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
