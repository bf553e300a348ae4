#!/usr/bin/env bash
# End-to-end durable ingest on this machine: a real server and the load
# generator over loopback, then the same kind of readings loaded into
# PostgreSQL with COPY as the baseline, all in this one script. The node is
# `serve` as a partner runs it: its rules consumer and lineage graph follow
# the ledger while it is measured. Each goal is printed beside its floor,
# measured in the same run (issue 30, item 10):
#   - durable binary ingest against PostgreSQL COPY of the same readings
#     (goal >= 5x), with where each thread's CPU time goes per reading;
#   - the ack p99 at half load against this disk's own fdatasync p99,
#     probed in the node's data directory just before and just after the
#     half-load run (goal <= the worse of the two + 1 ms).
#
#   bench/ingest.sh [seconds-per-run]        (default 10)
#
# Needs a PostgreSQL reachable with psql (PGHOST/PGDATABASE, default
# 127.0.0.1 / test). Prints one line per figure and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
export PGHOST=${PGHOST:-127.0.0.1} PGDATABASE=${PGDATABASE:-test}

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d)
server=
. bench/node.sh
trap stop_node_and_clean EXIT
start_node "$bin" "$work/node" "$work/serve.log"

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

python3 bench/threads.py snapshot "$server" >"$work/threads.before"
bin_run=$(python3 bench/threads.py run "$work/client.cpu" -- \
  $bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --json)
python3 bench/threads.py snapshot "$server" >"$work/threads.after"
json_run=$($bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format json --json)
peak=$(field "$bin_run" readings_per_s)
half=$(python3 -c "print(int(float('$peak') / 2))")
half_run=$($bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --rate "$half" --json)
# The same rate with every batch signed before the clock starts: the load
# generator no longer takes CPU from the server while it is measured. The
# node's own histograms (fsync, group sizes, request times) tell where the
# time of the slowest acks went.
fsync_before=$(python3 bench/fsync_probe.py --json "$work/node")
curl -s "$base/metrics" >"$work/metrics.before"
pre_run=$($bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --rate "$half" --presign --json)
curl -s "$base/metrics" >"$work/metrics.after"
fsync_after=$(python3 bench/fsync_probe.py --json "$work/node")
kill -INT $server; wait $server || true; server=

echo "binary   $bin_run"
echo "json     $json_run"
echo "half     $half_run"
echo "presign  $pre_run"

# Baseline: as many readings as the binary run took, COPY'd into PostgreSQL.
n=$(field "$bin_run" readings)
$bin loadgen --csv-out "$work/readings.csv" --readings "$n" >/dev/null
psql -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning; DROP TABLE IF EXISTS coldtrail_bench_readings; CREATE TABLE coldtrail_bench_readings (device text, seq bigint, time_ms bigint, temp_centi_c int, humidity_permille int, door_open boolean, shock_centi_g int, battery_mv int)"
t0=$(date +%s.%N)
psql -q -v ON_ERROR_STOP=1 -c "\\copy coldtrail_bench_readings FROM '$work/readings.csv' CSV"
t1=$(date +%s.%N)
psql -q -c "DROP TABLE coldtrail_bench_readings"
pg=$(python3 -c "print(int($n / ($t1 - $t0)))")
echo "postgres COPY: $n readings in $(python3 -c "print(round($t1 - $t0, 2))") s = $pg readings/s"
python3 - "$bin_run" "$json_run" "$half_run" "$pg" "$pre_run" "$work/metrics.before" "$work/metrics.after" "$fsync_before" "$fsync_after" <<'PY'
import json, sys
from prometheus_client.parser import text_string_to_metric_families
b, j, h, pg = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
p = json.loads(sys.argv[5])

def buckets(path, name):
    out = {}
    for fam in text_string_to_metric_families(open(path).read()):
        for s in fam.samples:
            if s.name == name + "_bucket":
                le = float(s.labels["le"])
                out[le] = out.get(le, 0) + s.value
    return out

def quantile(before, after, name, q):
    """The q-quantile's bucket bound of what was observed between the two scrapes."""
    b0, b1 = buckets(before, name), buckets(after, name)
    d = {le: b1[le] - b0.get(le, 0) for le in b1}
    total = d.get(float("inf"), 0)
    if not total:
        return None, 0
    for le in sorted(d):
        if d[le] >= q * total:
            return le, total
    return float("inf"), total
fb, fa = json.loads(sys.argv[8]), json.loads(sys.argv[9])
print(f"binary: {b['readings_per_s']:,.0f} readings/s ({b['readings_per_s']/pg:.2f}x PostgreSQL COPY; goal >= 5x), p99 {b['p99_ms']:.2f} ms at full load")
print(f"json:   {j['readings_per_s']:,.0f} readings/s ({j['readings_per_s']/pg:.2f}x PostgreSQL COPY), p99 {j['p99_ms']:.2f} ms at full load")
print(f"half of binary peak ({h['readings_per_s']:,.0f} readings/s): ack p50 {h['p50_ms']:.2f} ms, p90 {h['p90_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms, max {h['max_ms']:.2f} ms")
print(f"half of binary peak, pre-signed ({p['readings_per_s']:,.0f} readings/s): ack p50 {p['p50_ms']:.2f} ms, p90 {p['p90_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, max {p['max_ms']:.2f} ms")
# The client's own part: how late its paced senders were, and the p99 counted
# from each request's actual send instead of from when it was due.
floor = max(fb["p99"], fa["p99"])
print(f"  floor: this disk's fdatasync p99 {fb['p99']:.2f} ms before the run, {fa['p99']:.2f} ms after (max {fb['max']:.2f} / {fa['max']:.2f} ms);"
      f" ack p99 {p['p99_ms']:.2f} ms against the goal <= {floor + 1:.2f} ms: {'met' if p['p99_ms'] <= floor + 1 else 'not met'}")
print(f"  client: senders late by p99 {p['late_p99_ms']:.2f} ms; ack p99 from the send {p['p99_from_send_ms']:.2f} ms")
# Where a slow acknowledgement's time went: waiting on the log's queue (behind
# another group's commit), the fsync itself, head signing, segment rolls.
for name, label in [("coldtrail_store_queue_wait_seconds", "queue wait"),
                    ("coldtrail_store_fsync_duration_seconds", "fsync"),
                    ("coldtrail_store_head_signing_duration_seconds", "head signing"),
                    ("coldtrail_store_segment_roll_duration_seconds", "segment roll"),
                    ("coldtrail_ingest_ack_duration_seconds", "server-side ack")]:
    for q in (0.5, 0.99, 1.0):
        le, n = quantile(sys.argv[6], sys.argv[7], name, q)
        if le is not None:
            print(f"  {label} {'max' if q == 1.0 else f'p{int(q * 100)}'} <= {le * 1000:g} ms ({n:.0f} observed in the pre-signed run)")
PY
echo "where the binary run's CPU went:"
python3 bench/threads.py profile "$work/threads.before" "$work/threads.after" \
  "$(field "$bin_run" readings)" "$(field "$bin_run" seconds)" "$work/client.cpu"
