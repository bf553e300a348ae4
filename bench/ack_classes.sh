#!/usr/bin/env bash
# Does a scheduling class move the acknowledgement tail at half load? One
# fresh node; its binary peak is measured, then pre-signed batches are paced
# at half of it (as in bench/ingest.sh) under four settings, alternated over
# ROUNDS rounds:
#   default     everything at SCHED_OTHER
#   client-rt   the load generator at SCHED_FIFO 10 (its clock and sends on time)
#   an-idle     the node's rules consumer thread (`analytics`) at SCHED_IDLE
#   both        the two together
# Needs root (chrt). Prints the load generator's figures for each run.
#
#   bench/ack_classes.sh [ROUNDS] [SECONDS]     (default 3 rounds of 8 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; secs=${2:-8}

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d); server=
. bench/node.sh
trap stop_node_and_clean EXIT
start_node "$bin" "$work/node" "$work/serve.log"

peak=$($bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --json |
  python3 -c "import json,sys; print(int(json.load(sys.stdin)['readings_per_s']))")
half=$((peak / 2))
analytics=$(grep -l '^analytics$' /proc/"$server"/task/*/comm | head -1 | cut -d/ -f5)
echo "binary peak $peak readings/s; paced at $half; rules consumer thread $analytics"

run() { # NAME CLIENT-PREFIX...
  local name=$1; shift
  local out
  out=$("$@" "$bin" loadgen --target "$base" --token "$token" --duration "${secs}s" \
    --format binary --rate "$half" --presign --json)
  python3 -c "import json,sys; p=json.loads(sys.argv[2]); print(f\"{sys.argv[1]:10} ack p50 {p['p50_ms']:.2f} p90 {p['p90_ms']:.2f} p99 {p['p99_ms']:.2f} max {p['max_ms']:.2f} ms; senders late p99 {p['late_p99_ms']:.2f}; p99 from the send {p['p99_from_send_ms']:.2f}\")" "$name" "$out"
}
for _ in $(seq "$rounds"); do
  chrt -o -p 0 "$analytics"
  run default env
  run client-rt chrt -f 10
  chrt -i -p 0 "$analytics"
  run an-idle env
  run both chrt -f 10
  chrt -o -p 0 "$analytics"
done
