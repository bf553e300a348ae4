#!/usr/bin/env bash
# Operators' figures, each against a baseline run in this same script:
#  1. the cost of metrics on the binary ingest peak: the same server and load
#     with metrics on and off, alternated (on, off, on, off);
#  2. ingest through the MQTT bridge (Mosquitto) against direct HTTP, at the
#     same number of concurrent senders.
#
#   bench/ops.sh [seconds-per-run]        (default 10)
#
# Needs a broker at 127.0.0.1:1883 (COLDTRAIL_TEST_MQTT=host:port). Prints one
# JSON line per run, then the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
mqtt=${COLDTRAIL_TEST_MQTT:-127.0.0.1:1883}

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

org=urn:epc:id:sgln:0614141.00001.0
$bin org add --data-dir "$work/node" --gln $org --name Bench --role carrier >/dev/null
token=$($bin token issue --data-dir "$work/node" --org $org 2>/dev/null)

# Starts the server (extra environment in "$@"), sets $base and $server.
start() {
  env "$@" RUST_LOG=warn $bin serve --data-dir "$work/node" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
  server=$!
  pids+=("$server")
  for _ in $(seq 300); do grep -q http:// "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
  base=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
}
stop() { kill -INT "$server"; wait "$server" || true; }
load() { $bin loadgen --target "$base" --token "$token" --duration "${secs}s" --json "$@"; }

pairs=${PAIRS:-3}
echo "== metrics on / off (binary peak, 16 connections, $pairs pairs)"
runs=()
for metrics in $(for _ in $(seq "$pairs"); do echo true false; done); do
  start COLDTRAIL_METRICS=$metrics
  r=$(load --format binary)
  stop
  echo "metrics=$metrics $r"
  runs+=("$metrics $r")
done

echo "== MQTT bridge / direct HTTP (binary, 1000 readings per batch)"
# A broker of our own with TCP_NODELAY, when Mosquitto is installed: the
# stock configuration leaves Nagle's algorithm on, which holds every small
# answer back for a delayed ACK (about 40 ms per hop on loopback).
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ -x "$mosquitto_bin" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' "$port" >"$work/mosquitto.conf"
  "$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  mqtt=127.0.0.1:$port
  echo "(own broker on $mqtt with set_tcp_nodelay true)"
fi
start COLDTRAIL_METRICS=true
echo "$org $token" >"$work/bridge-tokens"
RUST_LOG=warn $bin mqtt-bridge --broker "mqtt://$mqtt" --node "$base" --tokens "$work/bridge-tokens" \
  --client-id "ct-bench-$$" --prefix "ct-bench-$$" >"$work/bridge.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q subscribed "$work/bridge.log" 2>/dev/null && break; sleep 0.1; done
pair=()
for c in 1 16; do
  h=$(load --connections "$c" --devices 32)
  m=$(load --connections "$c" --devices 32 --mqtt "mqtt://$mqtt" --org "$org" --prefix "ct-bench-$$")
  echo "http connections=$c $h"
  echo "mqtt connections=$c $m"
  pair+=("$c|$h|$m")
done
stop

python3 - "${runs[@]}" -- "${pair[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
cut = args.index("--")
on, off = [], []
for line in args[:cut]:
    flag, js = line.split(" ", 1)
    (on if flag == "true" else off).append(json.loads(js)["readings_per_s"])
m_on, m_off = sum(on) / len(on), sum(off) / len(off)
print(f"metrics on:  {m_on:,.0f} readings/s (runs {', '.join(f'{x:,.0f}' for x in on)})")
print(f"metrics off: {m_off:,.0f} readings/s (runs {', '.join(f'{x:,.0f}' for x in off)})")
print(f"cost of metrics: {100 * (m_off - m_on) / m_off:+.1f} % of the peak (goal < 2 %)")
for p in args[cut + 1:]:
    c, h, m = p.split("|")
    h, m = json.loads(h), json.loads(m)
    print(f"{c:>2} senders: HTTP {h['readings_per_s']:,.0f} readings/s p50 {h['p50_ms']:.2f} ms p99 {h['p99_ms']:.2f} ms;"
          f" MQTT {m['readings_per_s']:,.0f} readings/s p50 {m['p50_ms']:.2f} ms p99 {m['p99_ms']:.2f} ms"
          f" ({m['readings_per_s'] / h['readings_per_s']:.2f}x HTTP)")
PY
