//! `coldtrail bench --only rules`: the rule engine's figures, one core, each
//! beside a baseline measured in the same run.

use std::time::Instant;

use analytics::engine::Engine;
use analytics::persist::{Manifest, TableStore};
use analytics::rules::{DeviceEval, Evidence};
use analytics::{EngineState, RulesConfig};
use anyhow::Result;
use ledger::entry::Entry;
use ledger::reading::Reading;

use crate::bench::{per_sec, row, si};

/// Realistic logger streams: `devices` one-minute loggers (the fixtures'
/// reading model: relaxation, noise, defrosts, rare shocks), `per_device`
/// readings each, signed in batches of 720.
fn streams(devices: u32, per_device: usize) -> Vec<(fixtures::Device, Vec<Reading>)> {
    (0..devices)
        .map(|i| {
            let d = fixtures::Device::standalone(
                format!("urn:epc:id:giai:0614141.B{i:05}"),
                u64::from(i) * 7919 + 1,
                2.0,
                1_793_491_200_000,
            );
            let rs: Vec<Reading> = fixtures::readings(&d, &[]).take(per_device).collect();
            (d, rs)
        })
        .collect()
}

pub fn run(root: &std::path::Path) -> Result<()> {
    let (devices, per_device) = (100u32, 50_000usize);
    let data = streams(devices, per_device);
    let total = f64::from(devices) * per_device as f64;
    let config = RulesConfig {
        default_profile: "chilled_produce".into(),
        ..RulesConfig::default()
    };
    let profile = config.profile("chilled_produce").expect("built in").clone();

    // Baseline: touching every reading once (sum of temperatures).
    let t = Instant::now();
    let mut sum = 0i64;
    for (_, rs) in &data {
        for r in rs {
            sum = sum.wrapping_add(i64::from(r.temp_centi_c));
        }
    }
    let touch = t.elapsed();
    std::hint::black_box(sum);

    // The rules alone: every rule of the chilled-food profile, per logger.
    let ev = Evidence {
        shard: 0,
        index: 0,
        id: [0; 32],
    };
    let t = Instant::now();
    let mut findings = Vec::new();
    for (d, rs) in &data {
        let mut e = DeviceEval::new(&d.id, &profile);
        for r in rs {
            e.push(&profile, r, &ev, &mut findings);
        }
    }
    let rules = t.elapsed();
    row(
        &format!("rules alone, one core ({} rules)", profile.rules.len()),
        format!("{}readings/s", si(per_sec(total, rules))),
        format!(
            "reading each reading once: {}readings/s ({:.0}x)",
            si(per_sec(total, touch)),
            rules.as_secs_f64() / touch.as_secs_f64().max(1e-9)
        ),
    );

    // The streaming engine: decode entries, table rows, rules.
    let entries: Vec<Vec<u8>> = data
        .iter()
        .flat_map(|(d, rs)| {
            fixtures::signed(d, rs.iter().copied(), 720)
                .map(|b| Entry::Readings(b).to_bytes())
                .collect::<Vec<_>>()
        })
        .collect();
    let t = Instant::now();
    for e in &entries {
        std::hint::black_box(Entry::from_bytes(e).ok());
    }
    let decode = t.elapsed();
    let mut engine = Engine::new(config.clone(), EngineState::default());
    let t = Instant::now();
    for (i, e) in entries.iter().enumerate() {
        engine.apply(0, i as u64, e);
    }
    let streaming = t.elapsed();
    row(
        "streaming engine, one core",
        format!("{}readings/s", si(per_sec(total, streaming))),
        format!(
            "decoding the entries alone: {}readings/s",
            si(per_sec(total, decode))
        ),
    );

    // Parquet: bytes per reading, and the batch evaluator over it.
    let dir = root.join("rules-bench");
    let mut manifest = Manifest::default();
    let store = TableStore::open(dir.clone(), &manifest)?;
    let t = Instant::now();
    let batch = analytics::tables::Rows::finish(&mut engine.tail.readings);
    store.write_part(&mut manifest, "readings", &batch)?;
    let write = t.elapsed();
    let files = store.files(&manifest, "readings");
    let bytes: u64 = files
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    let ledger_bytes: usize = entries.iter().map(Vec::len).sum();
    row(
        "readings table as Parquet",
        format!("{:.2} B/reading", bytes as f64 / total),
        format!(
            "entry bytes before lz4: {:.2} B/reading; written at {}readings/s",
            ledger_bytes as f64 / total,
            si(per_sec(total, write))
        ),
    );
    let state = engine.state.clone();
    let t = Instant::now();
    let result = analytics::batch::evaluate_files(&config, &state, &files)?;
    let batch_time = t.elapsed();
    row(
        "batch rules over the Parquet table",
        format!(
            "{}readings/s",
            si(per_sec(result.readings as f64, batch_time))
        ),
        format!(
            "streaming engine: {}readings/s",
            si(per_sec(total, streaming))
        ),
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Lag from an append's acknowledgement to the rules having judged it, with
/// the node taking appends as fast as 4 writers can push them: the analytics
/// consumer running beside ingest on the same two cores, as in `serve`.
pub fn lag(root: &std::path::Path, batches: Vec<ledger::entry::SignedBatch>) -> Result<()> {
    use std::sync::{Arc, Mutex};
    let dir = root.join("rules-lag");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let total: usize = batches.iter().map(|b| b.batch.readings.len()).sum();
    let (acks, secs, lags) = rt.block_on(async {
        let node = Arc::new(shards::Node::open(shards::NodeConfig {
            shards: Some(2),
            ..shards::NodeConfig::new(&dir)
        })?);
        let running = analytics::Running::spawn(
            Arc::clone(&node),
            RulesConfig::default(),
            analytics::Options::default(),
        )?;
        let acks: Arc<Mutex<Vec<(u32, u64, Instant)>>> = Arc::default();
        let queue = Arc::new(Mutex::new(batches));
        let started = Instant::now();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (node, queue, acks) =
                    (Arc::clone(&node), Arc::clone(&queue), Arc::clone(&acks));
                tokio::spawn(async move {
                    loop {
                        let Some(b) = queue.lock().expect("queue").pop() else {
                            return Ok::<_, anyhow::Error>(());
                        };
                        let device = b.batch.device.clone();
                        let c = node.append(&device, vec![Entry::Readings(b)]).await?;
                        acks.lock()
                            .expect("acks")
                            .push((c.shard, c.entries[0].0, Instant::now()));
                    }
                })
            })
            .collect();
        // Watch the rules' position; each ack's lag is when it is passed.
        let mut lags = Vec::new();
        let mut pending: Vec<(u32, u64, Instant)> = Vec::new();
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            pending.append(&mut acks.lock().expect("acks"));
            let applied = running.status.applied();
            let now = Instant::now();
            pending.retain(|(s, i, at)| {
                let judged = applied.get(*s as usize).is_some_and(|a| a > i);
                if judged {
                    lags.push(now.duration_since(*at));
                }
                !judged
            });
            if done && pending.is_empty() && acks.lock().expect("acks").is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for w in writers {
            w.await??;
        }
        let secs = started.elapsed();
        running.stop()?;
        anyhow::Ok((lags.len(), secs, lags))
    })?;
    let mut lags = lags;
    lags.sort();
    let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
    row(
        "ack to judged by the rules, at peak appends",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        ),
        format!(
            "{acks} batches, {}readings/s appended with the rules running",
            si(per_sec(total as f64, secs))
        ),
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
