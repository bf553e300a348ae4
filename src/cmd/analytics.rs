//! `coldtrail analytics rebuild`, `sql`, `export parquet`, `breaches`: the
//! read side from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use analytics::datafusion::arrow::array::{Array, AsArray};
use analytics::datafusion::arrow::datatypes::{TimestampMillisecondType, UInt32Type, UInt64Type};
use analytics::persist::analytics_dir;
use analytics::{Consumer, Options, RulesConfig};
use anyhow::{Context, Result};

use crate::cmd::serve::open_node;

#[derive(clap::Subcommand)]
pub enum AnalyticsCmd {
    /// Rebuild every analytics table and the rules' state from the logs alone
    /// (the server must be stopped).
    Rebuild {
        #[arg(long)]
        data_dir: PathBuf,
        /// Flush tables and state every this many rows.
        #[arg(long, default_value_t = Options::default().flush_rows)]
        flush_rows: usize,
    },
    /// Check the rules: run them in batch over the tables and compare with the
    /// verdicts streaming recorded on the ledger; with `--truth`, score them
    /// against a generated world's ground truth (precision and recall).
    Check {
        #[arg(long)]
        data_dir: PathBuf,
        /// A world's truth.json (`coldtrail world --out DIR` writes one).
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Bring the tables and rules up to date with the logs, recording any
    /// verdicts they find (the server must be stopped; it does this itself).
    Sync {
        #[arg(long)]
        data_dir: PathBuf,
        /// Flush tables and state every this many rows.
        #[arg(long, default_value_t = Options::default().flush_rows)]
        flush_rows: usize,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Brings the tables up to date with the logs when this process can open the
/// node; when a server holds it, the tables are read as it last flushed them
/// (within a second of its commits).
async fn sync_if_possible(data_dir: &Path) -> Result<Option<Consumer>> {
    if !data_dir.join("NODE").exists() {
        anyhow::bail!("{} holds no node (no NODE file)", data_dir.display());
    }
    match open_node(data_dir, None) {
        Ok(node) => {
            let config = RulesConfig::load(data_dir)?;
            let mut c = Consumer::open(node, config, Options::default())?;
            c.sync().await?;
            Ok(Some(c))
        }
        Err(e) => {
            eprintln!("note: {e:#}; reading the tables as the running server last flushed them");
            Ok(None)
        }
    }
}

pub fn run(cmd: AnalyticsCmd) -> Result<ExitCode> {
    match cmd {
        AnalyticsCmd::Rebuild {
            data_dir,
            flush_rows,
        } => rebuild(&data_dir, flush_rows, true),
        AnalyticsCmd::Sync {
            data_dir,
            flush_rows,
        } => rebuild(&data_dir, flush_rows, false),
        AnalyticsCmd::Check { data_dir, truth } => check(&data_dir, truth.as_deref()),
    }
}

/// Consumes the logs into the tables: from nothing (`fresh`) or from the
/// committed cursor.
fn rebuild(data_dir: &Path, flush_rows: usize, fresh: bool) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let node = open_node(data_dir, None)?;
        let config = RulesConfig::load(data_dir)?;
        let dir = analytics_dir(data_dir);
        let cursor = data_dir.join("cursors").join(analytics::consumer::CONSUMER);
        if fresh {
            // The cursor first: without it, leftover parts are orphans.
            if cursor.exists() {
                std::fs::remove_file(&cursor).with_context(|| format!("removing {}", cursor.display()))?;
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        let started = Instant::now();
        let before: u64 = node.shards().iter().map(|s| s.committed()).sum();
        let options = Options {
            flush_rows: flush_rows.max(1),
            ..Options::default()
        };
        let mut c = Consumer::open(Arc::clone(&node), config, options)?;
        c.sync().await?;
        let secs = started.elapsed().as_secs_f64();
        let after: u64 = node.shards().iter().map(|s| s.committed()).sum();
        let state = &c.engine.state;
        let readings: u64 = state.devices.values().map(|d| d.judged + d.out_of_order).sum();
        println!(
            "{} {} from {before} entries in {secs:.1} s: {readings} readings ({:.2} M/s) from {} loggers, {} findings, {} lots in quarantine",
            if fresh { "rebuilt" } else { "synced" },
            dir.display(),
            readings as f64 / secs / 1e6,
            state.devices.len(),
            state.findings,
            state.quarantined.len()
        );
        if after > before {
            println!("recorded {} new verdict entries (the rules found what the ledger did not hold yet)", after - before);
        }
        node.sign_heads().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn check(data_dir: &Path, truth: Option<&Path>) -> Result<ExitCode> {
    use ledger::entry::VerdictKind;
    runtime()?.block_on(async {
        let node = open_node(data_dir, None)?;
        let config = RulesConfig::load(data_dir)?;
        let mut c = Consumer::open(Arc::clone(&node), config.clone(), Options::default())?;
        c.sync().await?;
        let files = c.store().files(c.manifest(), "readings");
        let started = Instant::now();
        let result = analytics::batch::evaluate_files(&config, &c.engine.state, &files)?;
        let secs = started.elapsed().as_secs_f64();
        let bytes: u64 = files.iter().map(|f| f.metadata().map_or(0, |m| m.len())).sum();
        println!(
            "batch: {} readings from {} Parquet parts ({:.2} B/reading) judged in {secs:.2} s ({:.2} M readings/s): {} findings",
            result.readings,
            files.len(),
            bytes as f64 / result.readings.max(1) as f64,
            result.readings as f64 / secs / 1e6,
            result.findings.len()
        );
        // What streaming recorded (rules' own verdicts, not people's releases
        // nor the stream's device suspensions).
        let from = vec![0; node.shards().len()];
        let streamed: std::collections::BTreeSet<String> = analytics::consumer::verdicts_on_ledger(&node, &from)?
            .iter()
            .filter(|v| matches!(v.kind, VerdictKind::Breach | VerdictKind::Quarantine))
            .map(|v| format!("{v:?}"))
            .collect();
        let batch: std::collections::BTreeSet<String> = result.verdicts.iter().map(|p| format!("{:?}", p.verdict)).collect();
        let same = streamed == batch;
        println!(
            "streaming = batch: {} ({} verdicts on the ledger, {} from the batch run)",
            if same { "yes" } else { "NO" },
            streamed.len(),
            batch.len()
        );
        if !same {
            for v in streamed.symmetric_difference(&batch).take(10) {
                println!("  differs: {v}");
            }
        }
        if let Some(path) = truth {
            let truth: fixtures::GroundTruth = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)?;
            let expected: Vec<_> = truth.incidents.iter().filter(|i| !i.kind.expected_rules().is_empty()).collect();
            let found = expected.iter().filter(|i| result.findings.iter().any(|f| i.explains(&f.rule, &f.device, f.from_ms, f.to_ms))).count();
            let right = result.findings.iter().filter(|f| truth.incidents.iter().any(|i| i.explains(&f.rule, &f.device, f.from_ms, f.to_ms))).count();
            println!(
                "ground truth: recall {found}/{} = {:.3}, precision {right}/{} = {:.3}",
                expected.len(),
                found as f64 / expected.len().max(1) as f64,
                result.findings.len(),
                right as f64 / result.findings.len().max(1) as f64
            );
            for i in expected.iter().filter(|i| !result.findings.iter().any(|f| i.explains(&f.rule, &f.device, f.from_ms, f.to_ms))) {
                let near: Vec<String> = result.findings.iter().filter(|f| f.device == i.device).map(|f| format!("{} {}", f.rule, f.summary)).collect();
                println!("  missed: {:?} on {} ({}, from {}); that logger's findings: {near:?}", i.kind, i.device, i.what, i.from_ms);
            }
            for f in result.findings.iter().filter(|f| !truth.incidents.iter().any(|i| i.explains(&f.rule, &f.device, f.from_ms, f.to_ms))).take(10) {
                println!("  unexplained: {} {} {}", f.rule, f.device, f.summary);
            }
        }
        node.sign_heads().await?;
        Ok(if same { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

pub fn sql(data_dir: &Path, query: &str) -> Result<ExitCode> {
    runtime()?.block_on(async {
        sync_if_possible(data_dir).await?;
        let ctx = analytics::sql::session(&analytics_dir(data_dir), Vec::new()).await?;
        let df = ctx.sql(query).await.context("running the query")?;
        df.show().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `export parquet`: every table as the operator sees it; with `as_org`, only
/// the rows whose ledger entry that organisation may read (`readstate::access`,
/// the model every read route asks), for handing to a partner.
pub fn export_parquet(data_dir: &Path, out: &Path, as_org: Option<&str>) -> Result<ExitCode> {
    let Some(org) = as_org else {
        return runtime()?.block_on(async {
            sync_if_possible(data_dir).await?;
            let ctx = analytics::sql::session(&analytics_dir(data_dir), Vec::new()).await?;
            for (path, rows) in analytics::sql::export_parquet(&ctx, out).await? {
                println!("{path}  {rows} rows");
            }
            Ok(ExitCode::SUCCESS)
        });
    };
    // Who may read an entry is decided over the logs and the lineage graph:
    // the node is opened here, so the server must be stopped.
    let node = open_node(data_dir, None)
        .context("an export for one organisation reads the logs: stop the server first")?;
    runtime()?.block_on(async {
        let config = RulesConfig::load(data_dir)?;
        let mut consumer = Consumer::open(Arc::clone(&node), config, Options::default())?;
        consumer.sync().await?;
        let (graph, _) = analytics::lineage::open(&node)?;
        if graph.org(org).is_none() {
            anyhow::bail!(
                "{org} is not a registered organisation (give its GLN as registered, as its tokens name it); `coldtrail org add` registers one"
            );
        }
        // As a partner token of `org` would read (`coldtrail token issue`).
        let who = api::Principal {
            org: org.to_string(),
            role: api::Role::Partner,
        };
        let mut decided: std::collections::HashMap<(u32, u64), bool> = Default::default();
        let mut keep = |shard: u32, index: u64| -> Result<bool, analytics::AnalyticsError> {
            if let Some(&k) = decided.get(&(shard, index)) {
                return Ok(k);
            }
            let bytes = node.shard(shard)?.store().entry(index).map_err(shards::ShardError::from)?;
            let k = ledger::entry::Entry::from_bytes(&bytes)
                .is_ok_and(|e| readstate::access::may_read(&graph, Some(&who), &e));
            decided.insert((shard, index), k);
            Ok(k)
        };
        let ctx = analytics::sql::session(&analytics_dir(data_dir), Vec::new()).await?;
        for (path, rows) in analytics::sql::export_parquet_where(&ctx, out, &mut keep).await? {
            println!("{path}  {rows} rows");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One breach as `breaches` prints it.
#[derive(serde::Serialize)]
struct BreachOut {
    rule: String,
    subject: String,
    kind: String,
    from: String,
    to: Option<String>,
    explanation: String,
    /// The verdict's own entry.
    entry: String,
    /// The reading entries it rests on, as shard/index.
    evidence: Vec<String>,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub fn breaches(data_dir: &Path, lot: Option<&str>, json: bool) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let consumer = sync_if_possible(data_dir).await?;
        let ctx = analytics::sql::session(&analytics_dir(data_dir), Vec::new()).await?;
        let mut q = "SELECT rule, subject, kind, from_time, to_time, explanation, shard, entry_index, evidence FROM verdicts WHERE kind IN ('breach', 'quarantine', 'release')".to_string();
        if let Some(l) = lot {
            q.push_str(&format!(" AND subject = '{}'", l.replace('\'', "''")));
        }
        q.push_str(" ORDER BY from_time, rule, subject, kind");
        let batches = ctx.sql(&q).await?.collect().await?;
        let mut out = Vec::new();
        for b in &batches {
            let s = |i: usize| b.column(i).as_string::<i32>();
            let t = |i: usize| b.column(i).as_primitive::<TimestampMillisecondType>();
            let shard = b.column(6).as_primitive::<UInt32Type>();
            let index = b.column(7).as_primitive::<UInt64Type>();
            let ev = b.column(8).as_list::<i32>();
            for r in 0..b.num_rows() {
                let evidence = ev.value(r);
                let evidence = evidence.as_string::<i32>();
                out.push(BreachOut {
                    rule: s(0).value(r).to_string(),
                    subject: s(1).value(r).to_string(),
                    kind: s(2).value(r).to_string(),
                    from: iso(t(3).value(r)),
                    to: (!t(4).is_null(r)).then(|| iso(t(4).value(r))),
                    explanation: s(5).value(r).to_string(),
                    entry: format!("{}/{}", shard.value(r), index.value(r)),
                    evidence: (0..evidence.len()).map(|i| evidence.value(i).to_string()).collect(),
                });
            }
        }
        // A lot's verdicts all live on its home shard: their log order is
        // the order quarantines and releases happened in.
        let quarantined = lot.map(|_| {
            let mut by_position: Vec<&BreachOut> = out.iter().filter(|b| b.kind == "quarantine" || b.kind == "release").collect();
            by_position.sort_by_key(|b| {
                let (s, i) = b.entry.split_once('/').unwrap_or(("0", "0"));
                (s.parse::<u32>().unwrap_or(0), i.parse::<u64>().unwrap_or(0))
            });
            by_position.last().is_some_and(|b| b.kind == "quarantine")
        });
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let ongoing = consumer.as_ref().map(|c| c.engine.ongoing(now)).unwrap_or_default();
        if json {
            let ongoing: Vec<_> = ongoing
                .iter()
                .map(|f| serde_json::json!({"rule": f.rule, "device": f.device, "from": iso(f.from_ms), "as_of": iso(f.to_ms), "summary": f.summary}))
                .collect();
            let mut doc = serde_json::json!({"verdicts": out, "ongoing": ongoing});
            if let Some(q) = quarantined {
                doc["quarantined"] = q.into();
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            for b in &out {
                println!("{:<10} {:<24} {}\n           {}\n           entry {}; evidence {}", b.kind, b.rule, b.subject, b.explanation, b.entry, b.evidence.join(" "));
            }
            for f in &ongoing {
                println!("ongoing    {:<24} {}\n           {}", f.rule, f.device, f.summary);
            }
            println!("{} verdicts{}, {} ongoing", out.len(), lot.map(|l| format!(" on {l}")).unwrap_or_default(), ongoing.len());
            if let (Some(l), Some(q)) = (lot, quarantined) {
                println!("{l} is {}", if q { "IN QUARANTINE until an investigator releases it" } else { "not in quarantine" });
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
