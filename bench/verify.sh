#!/usr/bin/env bash
# `coldtrail verify` of one node's data directory, for one or more binaries,
# alternated over ROUNDS rounds (the machine is shared and noisy: compare
# binaries within a round). Each run's summary line (stored bytes, seconds,
# rate, as `verify` measures them) is printed; files stay in the page cache
# after the first run, so the first round is also a warm-up.
#
#   bench/verify.sh DATA_DIR ROUNDS [BINARY...]   (default: this build)
#
# A mixed log of the kind a node writes (readings, EPCIS events, identities,
# receipts, verdicts) is what `demo --scale large` loads:
#   coldtrail demo --scale large --start <61 days ago> --shards 2 \
#     --exit-after-load --listen 127.0.0.1:0 --data-dir DATA_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?DATA_DIR}; rounds=${2:?ROUNDS}; shift 2
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "${CARGO_TARGET_DIR:-target}/release/coldtrail"
fi
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    summary=$("$bin" verify --data-dir "$dir" | grep '^verified')
    echo "round=$round bin=$bin $summary"
  done
done
