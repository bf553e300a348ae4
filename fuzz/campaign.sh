#!/usr/bin/env bash
# A fuzz campaign: every target (or $TARGETS) for SECONDS each (default 1800),
# $JOBS at a time (default 2: this machine's cores), starting from and adding
# to the kept corpora (corpus/TARGET), which are then minimised (cmin).
# Prints each target's figures (executions, coverage, corpus size) and exits
# non-zero if any target found a crash (kept under artifacts/TARGET).
# CI does not run this: it replays the corpora (tests/fuzz_corpora.rs).
#
#   fuzz/campaign.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-1800}
jobs=${JOBS:-2}
targets=${TARGETS:-"decoders binary_batch json_batch digital_link epcis_document query_params witness_body"}
# cargo-fuzz needs the nightly flags the stable toolchain allows under this.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -O
mkdir -p logs

run() {
  local t=$1
  mkdir -p "corpus/$t"
  local before
  before=$(ls "corpus/$t" | wc -l)
  local status=0
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$2" -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || status=$?
  local execs cov
  execs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "logs/$t.log" | grep -Eo '[0-9]+$' || echo "?")
  cov=$(grep -Eo 'cov: [0-9]+' "logs/$t.log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  echo "$t: ${2}s, $execs inputs run, $cov coverage edges, corpus $before -> $(ls "corpus/$t" | wc -l), exit $status"
  return "$status"
}
export -f run

failed=0
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c "run {} $secs" || failed=1

echo "== minimising the corpora"
for t in $targets; do
  before=$(ls "corpus/$t" | wc -l)
  cargo fuzz cmin -O "$t" "corpus/$t" >"logs/$t.cmin.log" 2>&1
  echo "$t: corpus $before -> $(ls "corpus/$t" | wc -l) inputs after cmin"
done
if ls artifacts/*/crash-* artifacts/*/oom-* artifacts/*/timeout-* >/dev/null 2>&1; then
  echo "crashes kept under fuzz/artifacts:" >&2
  ls artifacts/*/crash-* artifacts/*/oom-* artifacts/*/timeout-* 2>/dev/null >&2
  failed=1
fi
exit "$failed"
