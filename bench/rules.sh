#!/usr/bin/env bash
# Rule-engine figures on a generated world, each beside a baseline from the
# same script:
#   1. the world pushed through HTTP with the rules streaming (peak memory);
#   2. a rebuild of every table and rule state from the logs alone;
#   3. batch rules over the Parquet (streaming = batch, precision/recall
#      against the ground truth) beside DuckDB running the equivalent SQL
#      on the same Parquet, and a pyarrow read of it.
#
#   bench/rules.sh [tiny|demo|large]        (default large: ~108 M readings)
#
# Needs python3 with duckdb and pyarrow (pip install duckdb pyarrow).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-large}
# The large world spans 60 days: it starts 70 days ago so no reading lies in the future.
start=$(date -u -d '70 days ago' +%F)
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rss() { awk -F': ' '/Maximum resident/ {printf "%.0f MiB", $2 / 1024}' "$1"; }

echo "== $scale world through HTTP, rules streaming"
/usr/bin/time -v "$bin" demo --data-dir "$work/node" --scale "$scale" --start "$start" --listen 127.0.0.1:0 --exit-after-load \
  >"$work/demo.log" 2>"$work/demo.time"
grep -E "breaches found|loaded" "$work/demo.log"
echo "demo (server + load generator + streaming rules) peak RSS: $(rss "$work/demo.time"), wall $(awk -F': ' '/Elapsed/ {print $2}' "$work/demo.time")"

echo "== rebuild from the logs"
/usr/bin/time -v "$bin" analytics rebuild --data-dir "$work/node" 2>"$work/rebuild.time"
echo "rebuild peak RSS: $(rss "$work/rebuild.time")"
du -sb "$work/node/analytics/readings" | awk '{printf "readings Parquet: %d bytes\n", $1}'
du -sb --exclude=analytics --exclude=cursors "$work/node" | awk '{printf "ledger (all logs): %d bytes\n", $1}'

echo "== batch rules, streaming = batch, ground truth"
"$bin" world --out "$work/world" --scale "$scale" --start "$start" >/dev/null
"$bin" analytics check --data-dir "$work/node" --truth "$work/world/truth.json"

echo "== DuckDB, same Parquet (consecutive > 8 °C for 10 h, cumulative > 5 °C for 2 h, MKT per device)"
python3 bench/rules_duckdb.py "$work/node/analytics/readings" 1
python3 bench/rules_duckdb.py "$work/node/analytics/readings" 2
