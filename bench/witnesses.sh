#!/usr/bin/env bash
# Witnesses beside a node (issue 34), in one script: three `coldtrail
# witness` processes and a node serving with a 2-of-3 policy at the default
# 1 s cadence, against a node with no witnesses.
#   - ingest: binary load at full speed, ROUNDS rounds alternating the node
#     without witnesses and the witnessed one (goal >= 0.95x);
#   - head to quorum: while paced load runs on the witnessed node, every
#     shard's head and its newest checkpoint with 2 cosignatures are polled
#     every 20 ms; each head's delay is the time from its first sighting to
#     the first checkpoint at least that large with 2 cosignatures (goal
#     p99 <= 2 s). Polling adds up to 20 ms.
#
#   bench/witnesses.sh [SECONDS] [ROUNDS]     (default 10 s, 2 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-2}

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d); server=
witnesses=()
. bench/node.sh
cleanup() {
  for w in "${witnesses[@]}"; do kill "$w" 2>/dev/null || true; wait "$w" 2>/dev/null || true; done
  stop_node_and_clean
}
trap cleanup EXIT

# Two nodes; the second's log keys go to its witnesses.
stop_server() { kill -INT "$server"; wait "$server" || true; server=; }
start_node "$bin" "$work/plain" "$work/plain.log"; plain_token=$token
stop_server
start_node "$bin" "$work/witnessed" "$work/witnessed.log"; witnessed_token=$token
keys=$(curl -s "$base/.well-known/coldtrail/keys" | python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join('--log ' + s['public_key'] for s in d['key_sets'][-1]['shards']))")
stop_server
{
  echo "[witnesses]"
  echo "interval_ms = 1000"
  echo "quorum = 2"
} >"$work/witnessed.toml"
for i in 1 2 3; do
  # shellcheck disable=SC2086
  RUST_LOG=warn $bin witness --data-dir "$work/w$i" --listen 127.0.0.1:0 --name "bench.example/w$i" $keys >"$work/w$i.out" 2>&1 &
  witnesses+=($!)
  for _ in $(seq 100); do grep -q listening "$work/w$i.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/w$i.out" | head -1)
  key=$(awk '/public key/ {print $3}' "$work/w$i.out")
  printf '[[witnesses.peers]]\nurl = "%s"\nname = "bench.example/w%s"\nkey = "%s"\n' "$url" "$i" "$key" >>"$work/witnessed.toml"
done

serve() { # NODE_DIR [ARGS...]: serve an existing node; sets server and base
  local node=$1; shift
  serve_node "$bin" "$node" "$node.serve.log" "$@"
}
rate() { # TOKEN: readings/s at full binary load
  $bin loadgen --target "$base" --token "$1" --duration "${secs}s" --format binary --json |
    python3 -c "import json,sys; print(int(json.load(sys.stdin)['readings_per_s']))"
}

for round in $(seq "$rounds"); do
  serve "$work/plain"; none=$(rate "$plain_token"); stop_server
  serve "$work/witnessed" --config "$work/witnessed.toml"; three=$(rate "$witnessed_token"); stop_server
  python3 -c "print(f'round $round: ingest without witnesses {$none:,} readings/s, with three {$three:,} readings/s: {$three / $none:.3f}x (goal >= 0.95x)')"
done

serve "$work/witnessed" --config "$work/witnessed.toml"
$bin loadgen --target "$base" --token "$witnessed_token" --duration "$((secs + 5))s" --format binary --rate 200000 --json >"$work/paced.json" &
load=$!
python3 - "$base" "$secs" <<'PY'
import json, sys, time, urllib.request
base, secs = sys.argv[1], float(sys.argv[2])
def get(path):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        return r.read().decode()
shards = len(json.loads(get("/.well-known/coldtrail/keys"))["key_sets"][-1]["shards"])
seen = {s: {} for s in range(shards)}      # size -> first sighting
delays, start = [], time.monotonic()
while time.monotonic() - start < secs:
    now = time.monotonic()
    for s in range(shards):
        size = json.loads(get(f"/v1/shards/{s}/head"))["size"]
        seen[s].setdefault(size, now)
        try:
            cosigned = int(get(f"/v1/shards/{s}/checkpoint?cosigned=2").split("\n")[1])
        except Exception:
            continue
        for size in [z for z in seen[s] if z <= cosigned]:
            delays.append(now - seen[s].pop(size))
    time.sleep(0.02)
waiting = sum(len(v) for v in seen.values())
delays.sort()
q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))] * 1000
print(f"head to a 2-of-3 quorum at a 1 s cadence, {len(delays)} heads seen under load ({waiting} still waiting at the end):"
      f" p50 {q(.5):.0f} ms, p99 {q(.99):.0f} ms, max {q(1):.0f} ms (goal p99 <= 2000 ms)")
PY
wait "$load" || true
python3 -c "import json; p=json.load(open('$work/paced.json')); print(f\"  (paced load during it: {p['readings_per_s']:,.0f} readings/s)\")"
