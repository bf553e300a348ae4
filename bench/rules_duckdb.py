"""The batch-rules baseline: DuckDB running the equivalent SQL over the same
Parquet the rule engine reads (consecutive-with-delay by window functions,
cumulative time beyond a limit, mean kinetic temperature per device), and a
read check with pyarrow. Prints JSON.

    python3 bench/rules_duckdb.py DIR/analytics/readings [threads]
"""
import json
import sys
import time

import duckdb
import pyarrow.dataset as ds

parts = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
glob = f"{parts}/*.parquet"

# Time weighting as the engine does it: a reading stands for the time to the
# next one of its device, capped at the 60-minute heartbeat; a longer
# silence breaks continuity.
SQL = f"""
WITH r AS (
  SELECT device, time, temp_c::DOUBLE AS t,
         epoch_ms(lead(time) OVER w) - epoch_ms(time) AS gap
  FROM read_parquet('{glob}')
  WINDOW w AS (PARTITION BY device ORDER BY seq)
), j AS (
  SELECT device, time, t, least(gap, 3600000) AS dur, gap > 3600000 AS broken
  FROM r WHERE gap IS NOT NULL AND gap > 0
), islands AS (
  SELECT *, sum(CASE WHEN t > 8 AND NOT broken THEN 0 ELSE 1 END)
         OVER (PARTITION BY device ORDER BY time ROWS UNBOUNDED PRECEDING) AS grp
  FROM j
), consecutive AS (
  SELECT device, grp, min(time) AS start, sum(dur) AS beyond
  FROM islands WHERE t > 8 GROUP BY device, grp HAVING sum(dur) >= 36000000
), cumulative AS (
  SELECT device, sum(dur) FILTER (WHERE t > 5) AS above FROM j
  GROUP BY device HAVING sum(dur) FILTER (WHERE t > 5) >= 7200000
), mkt AS (
  SELECT device, 10000 / -ln(sum(dur * exp(-10000 / (t + 273.15))) / sum(dur)) - 273.15 AS mkt
  FROM j GROUP BY device
)
SELECT (SELECT count(*) FROM consecutive), (SELECT count(*) FROM cumulative),
       (SELECT count(*) FROM mkt), (SELECT count(*) FROM j)
"""

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
started = time.perf_counter()
consecutive, cumulative, mkt_devices, rows = con.execute(SQL).fetchall()[0]
secs = time.perf_counter() - started

table = ds.dataset(parts, format="parquet")
print(json.dumps({
    "duckdb_seconds": secs,
    "duckdb_threads": threads,
    "rows_judged": rows,
    "consecutive_breaches": consecutive,
    "cumulative_breaches": cumulative,
    "mkt_devices": mkt_devices,
    "pyarrow_rows": table.count_rows(),
}))
