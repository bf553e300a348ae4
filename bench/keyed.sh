#!/usr/bin/env bash
# Keyed against unkeyed writes (Idempotency-Key), for one or more server
# binaries, alternated over 3 rounds: a fresh node per binary and round, then
#   1. pre-signed binary batches paced at RATE readings/s, 16 connections,
#      without and with --keyed;
#   2. one connection unpaced (a serial client, as the MQTT bridge is),
#      without and with --keyed.
# The load generator is always this checkout's release build (it has --keyed).
#
#   bench/keyed.sh RATE SECONDS [SERVER_BINARY...]   (default: this build)
#
# Prints one JSON line per run, prefixed with round, binary and mode.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:?RATE readings/s}; secs=${2:?SECONDS per run}; shift 2
cargo build --release --quiet
lg=${CARGO_TARGET_DIR:-target}/release/coldtrail
[ $# -gt 0 ] || set -- "$lg"
. bench/node.sh
work=
server=
trap stop_node_and_clean EXIT
for round in 1 2 3; do
  for bin in "$@"; do
    work=$(mktemp -d)
    start_node "$bin" "$work/node" "$work/serve.log"
    for keyed in "" "--keyed"; do
      r=$($lg loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --rate "$rate" --presign $keyed --json)
      echo "round=$round bin=$bin paced keyed=${keyed:-no} $r"
    done
    for keyed in "" "--keyed"; do
      r=$($lg loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --connections 1 --devices 32 $keyed --json)
      echo "round=$round bin=$bin serial keyed=${keyed:-no} $r"
    done
    kill -INT "$server"; wait "$server" || true; server=
    rm -rf "$work"; work=
  done
done
