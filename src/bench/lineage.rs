//! `coldtrail bench --only lineage`: traces, recall sets, EPCIS queries and
//! search over a generated genealogy of ≥ 1 M lots and ≥ 10 M events, and the
//! same traces as PostgreSQL recursive CTEs over the same edges, loaded in
//! the same run (the baseline).

use std::time::Instant;

use std::collections::HashMap;

use analytics::lineage::query::{EventQuery, ReadEvent};
use analytics::lineage::{At, Direction, Limits, Lineage};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::bench::{row, si};

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

pub(crate) fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// `p50 / p99` in milliseconds.
pub(crate) fn ms(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.3} ms, p99 {:.3} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    )
}

fn timed<T>(h: &mut Histogram<u64>, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    h.record((t.elapsed().as_micros() as u64).max(1))
        .expect("in bounds");
    out
}

pub fn run(lots: usize, pg: &str) -> Result<()> {
    let t = Instant::now();
    let mut graph = Lineage::new();
    // The captured documents that say more than `{}` (shipments' destinations,
    // receipts' sensor summaries), by entry, for the document parameters.
    let mut documents: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
    let mut last_ms = 0;
    let world = fixtures::genealogy::generate(lots, 7, |at, e| {
        last_ms = last_ms.max(e.event_time_ms);
        if e.document != b"{}" {
            documents.insert((at.shard, at.index), e.document.clone());
        }
        graph.apply(&at, &e)
    });
    row(
        "lineage world (fixtures::genealogy)",
        format!(
            "{} lots, {} events",
            si(world.lots as f64),
            si(world.events as f64)
        ),
        format!(
            "built in {:.1} s, RSS {} MiB",
            t.elapsed().as_secs_f64(),
            rss_mib()
        ),
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let raw: Vec<u32> = world.raw.choose_multiple(&mut rng, 2000).copied().collect();
    let finished: Vec<u32> = world
        .finished
        .choose_multiple(&mut rng, 2000)
        .copied()
        .collect();
    let [fwd, back] = traces(&graph, &raw, &finished);
    let [wf, wb] = walks(&graph, &raw, &finished);
    recalls(&graph, &raw)?;
    let read = |at: &At| -> Option<serde_json::Value> {
        match documents.get(&(at.shard, at.index)) {
            Some(bytes) => serde_json::from_slice(bytes).ok(),
            None => Some(serde_json::json!({})),
        }
    };
    epcis_queries(&graph, &world, &raw, &read, last_ms)?;
    access_check(&graph, &read)?;
    search(&graph, &raw)?;
    postgres_baseline(pg, &world, &raw, &finished, [&fwd, &wf], [&back, &wb])
}

/// Full traces forward from raw lots and backward from finished ones.
fn traces(graph: &Lineage, raw: &[u32], finished: &[u32]) -> [Histogram<u64>; 2] {
    let (mut fwd, mut back) = (hist(), hist());
    let (mut fwd_lots, mut back_lots) = (0usize, 0usize);
    for &n in raw {
        let lot = fixtures::genealogy::lot_id(n);
        let tr = timed(&mut fwd, || {
            graph.trace(&lot, Direction::Forward, Limits::default())
        });
        fwd_lots += tr.map_or(0, |t| t.lots.len());
    }
    for &n in finished {
        let lot = fixtures::genealogy::lot_id(n);
        let tr = timed(&mut back, || {
            graph.trace(&lot, Direction::Backward, Limits::default())
        });
        back_lots += tr.map_or(0, |t| t.lots.len());
    }
    row(
        "trace forward (2,000 raw lots)",
        ms(&fwd),
        format!(
            "{:.1} lots per trace, with every event and whereabouts",
            fwd_lots as f64 / raw.len() as f64
        ),
    );
    row(
        "trace backward (2,000 finished lots)",
        ms(&back),
        format!(
            "{:.1} lots per trace",
            back_lots as f64 / finished.len() as f64
        ),
    );
    [fwd, back]
}

/// The walk alone (lot ids, as the recursive CTE of the baseline answers).
fn walks(graph: &Lineage, raw: &[u32], finished: &[u32]) -> [Histogram<u64>; 2] {
    let (mut wf, mut wb) = (hist(), hist());
    for &n in raw {
        let lot = fixtures::genealogy::lot_id(n);
        timed(&mut wf, || {
            graph.trace_lots(&lot, Direction::Forward, Limits::default())
        });
    }
    for &n in finished {
        let lot = fixtures::genealogy::lot_id(n);
        timed(&mut wb, || {
            graph.trace_lots(&lot, Direction::Backward, Limits::default())
        });
    }
    row("walk forward, lot ids only", ms(&wf), String::new());
    row("walk backward, lot ids only", ms(&wb), String::new());
    [wf, wb]
}

/// A recall with the lots co-exposed in the lot's first 12 hours (its farm
/// and its ride): a breach's window, not its whole history.
fn recalls(graph: &Lineage, raw: &[u32]) -> Result<()> {
    let mut recall = hist();
    let mut recalled = 0usize;
    for &n in raw.iter().take(200) {
        let lot = fixtures::genealogy::lot_id(n);
        let t0 = graph
            .trace(&lot, Direction::Forward, Limits::default())
            .and_then(|t| t.lots[0].events.first().map(|e| e.time_ms))
            .unwrap_or(0);
        let set = timed(&mut recall, || {
            analytics::recall::affected(graph, &lot, Some((t0, t0 + 12 * 3_600_000)))
        })?;
        recalled += set.lots.len();
    }
    row(
        "recall set (descendants + co-exposed in 12 h), 200 lots",
        ms(&recall),
        format!("{:.1} lots per recall", recalled as f64 / 200.0),
    );
    Ok(())
}

/// EPCIS queries, each paged to its fifth page of 100: an identifier
/// (by the events that name it), single-field filters of every selectivity
/// and a combination, from the indexes and, in the same run, by evaluating
/// every event and sorting the matches (`Lineage::query_by_scan`, how
/// queries were answered before the indexes: the baseline). Document
/// parameters read the captured events through `read`; their scan reads
/// every one, so it is timed for one round of its first page.
fn epcis_queries(
    graph: &Lineage,
    world: &fixtures::genealogy::Genealogy,
    raw: &[u32],
    read: ReadEvent<'_>,
    last_ms: i64,
) -> Result<()> {
    let farm = "urn:epc:id:sgln:0614141.00001.0".to_string();
    let start = 1_793_491_200_000;
    let day = |d: i64| {
        chrono::DateTime::from_timestamp_millis(start + d * 86_400_000)
            .expect("in range")
            .to_rfc3339()
    };
    let last_day = (last_ms - start) / 86_400_000;
    for (name, params) in [
        (
            "MATCH_anyEPCClass (one lot)",
            vec![("MATCH_anyEPCClass", fixtures::genealogy::lot_id(raw[0]))],
        ),
        (
            "EQ_bizStep=receiving",
            vec![("EQ_bizStep", "receiving".to_string())],
        ),
        (
            "eventType=TransformationEvent",
            vec![("eventType", "TransformationEvent".to_string())],
        ),
        (
            "EQ_action=DELETE",
            vec![("EQ_action", "DELETE".to_string())],
        ),
        (
            "EQ_bizLocation (one farm)",
            vec![("EQ_bizLocation", farm.clone())],
        ),
        (
            "EQ_bizStep=retail_selling, one day",
            vec![
                ("EQ_bizStep", "retail_selling".to_string()),
                ("GE_eventTime", day(20)),
                ("LT_eventTime", day(21)),
            ],
        ),
        (
            "EQ_bizStep=shipping, DESC",
            vec![
                ("EQ_bizStep", "shipping".to_string()),
                ("orderDirection", "DESC".to_string()),
            ],
        ),
        (
            "EQ_bizStep=shipping|receiving (two large lists)",
            vec![("EQ_bizStep", "shipping|receiving".to_string())],
        ),
        (
            "eventType=ObjectEvent|TransformationEvent, EQ_action=ADD|OBSERVE",
            vec![
                ("eventType", "ObjectEvent|TransformationEvent".to_string()),
                ("EQ_action", "ADD|OBSERVE".to_string()),
            ],
        ),
        (
            "EQ_bizStep=receiving, eventCountLimit=1000",
            vec![
                ("EQ_bizStep", "receiving".to_string()),
                ("eventCountLimit", "1000".to_string()),
            ],
        ),
        (
            "EQ_bizStep=shipping, maxEventCount=1000 (refused)",
            vec![
                ("EQ_bizStep", "shipping".to_string()),
                ("maxEventCount", "1000".to_string()),
            ],
        ),
        (
            "GT_maxValue_CEL=8 (1 % of receipts)",
            vec![("GT_maxValue_CEL", "8".to_string())],
        ),
        (
            "GE_maxValue_FAH=41 (most receipts)",
            vec![("GE_maxValue_FAH", "41".to_string())],
        ),
        (
            "LT_minValue_KEL=275.15 (about 1 in 10)",
            vec![("LT_minValue_KEL", "275.15".to_string())],
        ),
        (
            "EQ_type=Temperature, GT_maxValue_CEL=8",
            vec![
                ("EQ_type", "Temperature".to_string()),
                ("GT_maxValue_CEL", "8".to_string()),
            ],
        ),
        (
            "GE_endTime in the last day",
            vec![("GE_endTime", day(last_day))],
        ),
        (
            "EQ_deviceID (one logger)",
            vec![(
                "EQ_deviceID",
                format!("urn:epc:id:giai:0614141.L{:08}", raw[0]),
            )],
        ),
    ] {
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let q = EventQuery::from_params(&params).map_err(anyhow::Error::msg)?;
        let documents = !q.doc.is_empty();
        let pages = |rounds: usize, pages: usize, scan: bool| -> Result<Histogram<u64>> {
            let mut h = hist();
            for _ in 0..rounds {
                let mut after = None;
                for _ in 0..pages {
                    let page = timed(&mut h, || {
                        if scan {
                            graph.query_by_scan(&q, after, 100, Some(read))
                        } else {
                            graph.query_reading(&q, after, 100, Some(read))
                        }
                    });
                    // A refusal (maxEventCount exceeded) is an answer too.
                    match page {
                        Ok(p) if p.next.is_some() => after = p.next,
                        Ok(_) => break,
                        Err(e) if e.too_large => break,
                        Err(e) => return Err(anyhow::Error::msg(e)),
                    }
                }
            }
            Ok(h)
        };
        let indexed = pages(200, 5, false)?;
        let scanned = if documents {
            pages(1, 1, true)?
        } else {
            pages(2, 5, true)?
        };
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
        row(
            &format!("EPCIS {name}, a page of 100"),
            ms(&indexed),
            format!(
                "scan {} ({:.0}x slower at p99), over {} events",
                ms(&scanned),
                p99(&scanned) / p99(&indexed),
                si(world.events as f64)
            ),
        );
    }
    Ok(())
}

/// The cost of the access check (`EventQuery::visible_to`, what a
/// partner's token sets) on EPCIS query pages: a store's own location asked
/// by the store (the same answer as without the check) against the same
/// query unchecked, as an investigator asks it, in the same run, rounds
/// interleaved; and a broad query asked by one store, whose events are one
/// in hundreds of the list it walks (the check's worst case).
fn access_check(graph: &Lineage, read: ReadEvent<'_>) -> Result<()> {
    let store = "urn:epc:id:sgln:0614141.10000.0";
    let page_walk = |q: &EventQuery, h: &mut Histogram<u64>| -> Result<usize> {
        let (mut after, mut seen) = (None, 0);
        for _ in 0..5 {
            let page = timed(h, || graph.query_reading(q, after, 100, Some(read)))
                .map_err(anyhow::Error::msg)?;
            seen += page.events.len();
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        Ok(seen)
    };
    for (name, params) in [
        (
            "EQ_bizLocation (one store)",
            vec![("EQ_bizLocation".to_string(), store.to_string())],
        ),
        (
            "EQ_bizStep=receiving",
            vec![("EQ_bizStep".to_string(), "receiving".to_string())],
        ),
    ] {
        let open = EventQuery::from_params(&params).map_err(anyhow::Error::msg)?;
        let mut checked = open.clone();
        checked.visible_to = Some(store.to_string());
        let (mut h_open, mut h_checked) = (hist(), hist());
        let (mut n_open, mut n_checked) = (0, 0);
        for _ in 0..200 {
            n_open = page_walk(&open, &mut h_open)?;
            n_checked = page_walk(&checked, &mut h_checked)?;
        }
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
        row(
            &format!("EPCIS {name} as the store (access check), a page of 100"),
            ms(&h_checked),
            format!(
                "unchecked {} ({:+.0} % at p99); {n_checked} events in 5 pages checked, {n_open} unchecked",
                ms(&h_open),
                (p99(&h_checked) / p99(&h_open) - 1.0) * 100.0
            ),
        );
    }
    Ok(())
}

/// Search over everything but the events (organisations, products, lots,
/// locations, devices).
fn search(graph: &Lineage, raw: &[u32]) -> Result<()> {
    let t = Instant::now();
    let docs: Vec<_> = graph
        .search_docs()
        .into_iter()
        .filter(|d| d.kind != "event")
        .collect();
    let ndocs = docs.len();
    let index = analytics::search::SearchIndex::build(docs)?;
    let built = t.elapsed();
    let mut h = hist();
    for (i, &n) in raw.iter().take(1000).enumerate() {
        let id = fixtures::genealogy::lot_id(n);
        let code = id.rsplit('.').next().unwrap_or_default();
        let q = if i % 2 == 0 {
            code.to_string()
        } else {
            // One typo in the lot code.
            let mut c: Vec<char> = code.chars().collect();
            c.swap(3, 4);
            c.into_iter().collect()
        };
        timed(&mut h, || index.search(&q, 20))?;
    }
    row(
        "search (1,000 lot codes, half with a typo)",
        ms(&h),
        format!(
            "{} documents indexed in {:.1} s",
            si(ndocs as f64),
            built.as_secs_f64()
        ),
    );
    Ok(())
}

/// The same traces (ids only) as recursive CTEs in PostgreSQL over the same edges.
fn postgres_baseline(
    pg: &str,
    world: &fixtures::genealogy::Genealogy,
    raw: &[u32],
    finished: &[u32],
    fwd: [&Histogram<u64>; 2],
    back: [&Histogram<u64>; 2],
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(pg, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to PostgreSQL ({pg}) for the baseline"))?;
        tokio::spawn(conn);
        client
            .batch_execute(
                "DROP TABLE IF EXISTS coldtrail_bench_edges;
                 CREATE UNLOGGED TABLE coldtrail_bench_edges (parent int NOT NULL, child int NOT NULL);",
            )
            .await?;
        let t = Instant::now();
        for chunk in world.edges.chunks(50_000) {
            let parents: Vec<i32> = chunk.iter().map(|e| e.0 as i32).collect();
            let children: Vec<i32> = chunk.iter().map(|e| e.1 as i32).collect();
            client
                .execute(
                    "INSERT INTO coldtrail_bench_edges SELECT * FROM unnest($1::int[], $2::int[])",
                    &[&parents, &children],
                )
                .await?;
        }
        client
            .batch_execute(
                "CREATE INDEX ON coldtrail_bench_edges (parent);
                 CREATE INDEX ON coldtrail_bench_edges (child);
                 ANALYZE coldtrail_bench_edges;",
            )
            .await?;
        let loaded = t.elapsed();
        // Every lot reachable from $1 along edges from `from` to `to`.
        let walk = |from: &str, to: &str| {
            format!(
                "WITH RECURSIVE w(lot) AS (SELECT {to} FROM coldtrail_bench_edges WHERE {from} = $1
                 UNION SELECT e.{to} FROM coldtrail_bench_edges e JOIN w ON e.{from} = w.lot)
                 SELECT count(*) FROM w"
            )
        };
        let timed_walks = async |from: &str, to: &str, lots: &[u32]| {
            let query = client.prepare(&walk(from, to)).await?;
            let mut h = hist();
            for &n in lots {
                let t = Instant::now();
                client.query_one(&query, &[&(n as i32)]).await?;
                h.record((t.elapsed().as_micros() as u64).max(1))?;
            }
            anyhow::Ok(h)
        };
        let pf = timed_walks("parent", "child", raw).await?;
        let pb = timed_walks("child", "parent", finished).await?;
        client.batch_execute("DROP TABLE coldtrail_bench_edges").await?;
        let ratio = |ours: &Histogram<u64>, theirs: &Histogram<u64>| {
            theirs.value_at_quantile(0.99) as f64 / ours.value_at_quantile(0.99).max(1) as f64
        };
        row(
            "PostgreSQL recursive CTE, forward",
            ms(&pf),
            format!(
                "{} edges loaded in {:.1} s; at p99 our walk is {:.1}x faster, our whole trace {:.1}x",
                si(world.edges.len() as f64),
                loaded.as_secs_f64(),
                ratio(fwd[1], &pf),
                ratio(fwd[0], &pf)
            ),
        );
        row(
            "PostgreSQL recursive CTE, backward",
            ms(&pb),
            format!(
                "at p99 our walk is {:.1}x faster, our whole trace (events, whereabouts) {:.1}x",
                ratio(back[1], &pb),
                ratio(back[0], &pb)
            ),
        );
        anyhow::Ok(())
    })
}
