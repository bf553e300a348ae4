#!/usr/bin/env bash
# Two builds side by side, alternated over ROUNDS rounds on this one machine
# (it is shared and noisy: compare within a round): the ledger's figures
# (`bench --only ledger`: durable append, inclusion and consistency proofs,
# open, verify) and durable binary ingest over HTTP at peak (a fresh node,
# `loadgen` for SECONDS). For "behaviour unchanged" claims: the same figures
# before and after a change, with the commands that produced them.
#
#   bench/compare.sh OLD_BINARY NEW_BINARY [ROUNDS] [ENTRIES] [SECONDS]
#
# Defaults: 2 rounds, 1,000,000 entries, 10 s of load.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?OLD_BINARY}; new=${2:?NEW_BINARY}
rounds=${3:-2}; entries=${4:-1000000}; secs=${5:-10}
work=$(mktemp -d)
server=
. bench/node.sh
trap stop_node_and_clean EXIT

for round in $(seq "$rounds"); do
  for bin in "$old" "$new"; do
    echo "== round $round: $bin"
    "$bin" bench --only ledger --entries "$entries" --dir "$work/ledger"
    rm -rf "$work/ledger"
    start_node "$bin" "$work/node" "$work/serve.log"
    "$bin" loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --json \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); print("ingest, binary, peak:", round(r["readings_per_s"]), "readings/s; ack p99", r["p99_ms"], "ms")'
    kill -INT "$server"; wait "$server" 2>/dev/null || true; server=
    rm -rf "$work/node"
  done
done
