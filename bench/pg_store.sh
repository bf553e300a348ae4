#!/usr/bin/env bash
# Durable ingest over HTTP with the PostgreSQL store, the embedded store,
# and plain COPY of the same readings into the same PostgreSQL, all in this
# one script; then proof latency over HTTP from each store.
#
#   bench/pg_store.sh [seconds-per-run]        (default 10)
#
# Needs a PostgreSQL reachable with psql (PGHOST, PGUSER; default
# 127.0.0.1, postgres) on which it may create a database. Prints one line
# per figure and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres} PGPORT=${PGPORT:-5432}

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/coldtrail
work=$(mktemp -d)
db=coldtrail_bench_$$
server=
cleanup() {
  if [ -n "$server" ]; then kill -INT "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
url="postgres://$PGUSER@$PGHOST:$PGPORT/$db"

org=urn:epc:id:sgln:0614141.00001.0
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# run NAME STORE-URL ("" for embedded): a fresh node, a binary loadgen run,
# then proof latency; prints "loadgen-json proof-json".
run() {
  local name=$1
  export COLDTRAIL_STORE_URL=$2
  local dir="$work/$name"
  $bin org add --data-dir "$dir" --gln $org --name Bench --role carrier --shards 2 >/dev/null
  local token
  token=$($bin token issue --data-dir "$dir" --org $org 2>/dev/null)
  RUST_LOG=warn $bin serve --data-dir "$dir" --listen 127.0.0.1:0 >"$work/$name.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do grep -q http:// "$work/$name.log" 2>/dev/null && break; sleep 0.1; done
  local base
  base=$(grep -o 'http://[0-9.:]*' "$work/$name.log" | head -1)
  for _ in $(seq 300); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
  local load
  load=$($bin loadgen --target "$base" --token "$token" --duration "${secs}s" --format binary --json)
  local proofs
  proofs=$(python3 - "$base" <<'PY'
import http.client, json, random, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
def get(path):
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (path, r.status, body[:200])
    return json.loads(body)
sizes = [get(f"/v1/shards/{s}/head")["size"] for s in (0, 1)]
random.seed(7)
times = []
for _ in range(2000):
    s = random.randrange(2)
    i = random.randrange(sizes[s])
    t = time.perf_counter()
    get(f"/v1/shards/{s}/entries/{i}/proof")
    times.append(time.perf_counter() - t)
times.sort()
q = lambda p: times[int(p * (len(times) - 1))] * 1000
print(json.dumps({"p50_ms": q(0.5), "p99_ms": q(0.99), "n": len(times)}))
PY
)
  kill -INT $server; wait $server || true; server=
  echo "$load $proofs"
}

run embedded "" >"$work/embedded.out"
run postgres "$url" >"$work/postgres.out"
read -r emb emb_proofs <"$work/embedded.out"
read -r pgs pgs_proofs <"$work/postgres.out"
echo "embedded  $emb"
echo "postgres  $pgs"
echo "proofs    embedded $emb_proofs"
echo "proofs    postgres $pgs_proofs"

# Baseline: as many readings as the embedded run took, COPY'd into the same PostgreSQL.
n=$(field "$emb" readings)
$bin loadgen --csv-out "$work/readings.csv" --readings "$n" >/dev/null
psql -q -d "$db" -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning; CREATE TABLE bench_readings (device text, seq bigint, time_ms bigint, temp_centi_c int, humidity_permille int, door_open boolean, shock_centi_g int, battery_mv int)"
t0=$(date +%s.%N)
psql -q -d "$db" -v ON_ERROR_STOP=1 -c "\\copy bench_readings FROM '$work/readings.csv' CSV"
t1=$(date +%s.%N)
copy=$(python3 -c "print(int($n / ($t1 - $t0)))")
echo "postgres COPY: $n readings in $(python3 -c "print(round($t1 - $t0, 2))") s = $copy readings/s"
python3 - "$emb" "$pgs" "$copy" "$emb_proofs" "$pgs_proofs" <<'PY'
import json, sys
e, p, copy = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
ep, pp = json.loads(sys.argv[4]), json.loads(sys.argv[5])
for name, r in (("embedded", e), ("postgres", p)):
    print(f"{name:9} {r['readings_per_s']:>12,.0f} readings/s = {r['readings_per_s']/copy:.2f}x COPY, ack p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms at full load")
print(f"postgres store / embedded store: {p['readings_per_s']/e['readings_per_s']:.2f}x")
print(f"proof over HTTP (2,000 random entries, one keep-alive client): embedded p50 {ep['p50_ms']:.2f} ms p99 {ep['p99_ms']:.2f} ms; postgres p50 {pp['p50_ms']:.2f} ms p99 {pp['p99_ms']:.2f} ms")
PY
