//! `coldtrail bench --only open`: how long a node takes to open at
//! `--readings` readings, reading every log (no checkpoints) and from
//! checkpoints, with and without a tail after them; the logs alone opened in
//! the same run are the floor.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ledger::entry::{
    Action, CustodyEvent, Entry, EventKind, IdentityChange, OrgRole, Subject, SubjectRole,
};
use ledger::store::{EmbeddedStore, StoreConfig};
use shards::{Node, NodeConfig};

use crate::bench::{row, si};
use crate::cmd::loadgen::Logger;
use crate::logs::human_bytes;

const ORG: &str = "urn:epc:id:sgln:0614141.00001.0";
/// Custody events beside the readings (what ingest's eventID index and the
/// lineage graph are built from).
const EVENTS: u64 = 20_000;

fn config(dir: &Path, shards: u32) -> NodeConfig {
    NodeConfig {
        shards: Some(shards),
        store: StoreConfig::default(),
        ..NodeConfig::new(dir)
    }
}

/// Custody event `n` and its home key (its lot).
fn event(n: u64) -> (String, Entry) {
    let lot = format!("urn:epc:class:lgtin:0614141.012345.LOT{:06}", n % 5_000);
    let e = Entry::Custody(CustodyEvent {
        recorded_by: ORG.into(),
        event_id: format!("urn:uuid:00000000-0000-4000-8000-{n:012}"),
        kind: EventKind::Object,
        action: Some(Action::Observe),
        event_time_ms: 1_793_491_200_000 + n as i64 * 1_000,
        tz_offset_min: 0,
        biz_step: Some("inspecting".into()),
        disposition: None,
        read_point: None,
        biz_location: None,
        subjects: vec![Subject {
            role: SubjectRole::Object,
            id: lot.clone(),
            quantity: None,
        }],
        readings: Vec::new(),
        document: serde_json::to_vec(&serde_json::json!({
            "type": "ObjectEvent",
            "eventID": format!("urn:uuid:00000000-0000-4000-8000-{n:012}"),
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "quantityList": [{ "epcClass": lot }],
        }))
        .expect("JSON serialises"),
    });
    (lot, e)
}

/// Appends `readings` readings in batches of `batch` from `devices`
/// loggers (and, with `first`, the organisation, the loggers'
/// registrations and the custody events).
async fn fill(
    node: &Arc<Node>,
    loggers: &mut [Logger],
    readings: u64,
    batch: usize,
    first: bool,
) -> Result<()> {
    if first {
        let org = Entry::Identity(IdentityChange::OrgRegistered {
            org: ORG.into(),
            name: "Bench Carrier".into(),
            role: OrgRole::Carrier,
            at_ms: 1_793_491_200_000,
        });
        node.append(ORG, vec![org]).await?;
        for l in loggers.iter() {
            let e = Entry::Identity(IdentityChange::DeviceRegistered {
                org: ORG.into(),
                device: l.device.id.clone(),
                public_key: l.device.key().verifying_key().to_bytes(),
                at_ms: 1_793_491_200_000,
                active_from_ms: 1_793_491_200_000,
            });
            node.append(ORG, vec![e]).await?;
        }
    }
    let rounds = readings.div_ceil(batch as u64 * loggers.len() as u64);
    let events_per_round = if first { EVENTS.div_ceil(rounds) } else { 0 };
    let mut event_n = 0;
    for _ in 0..rounds {
        let mut appends = tokio::task::JoinSet::new();
        for l in loggers.iter_mut() {
            let b = l.next_batch(batch);
            let (node, device) = (Arc::clone(node), l.device.id.clone());
            appends.spawn(async move { node.append(&device, vec![Entry::Readings(b)]).await });
        }
        for _ in 0..events_per_round.min(EVENTS - event_n) {
            let (key, e) = event(event_n);
            event_n += 1;
            let node = Arc::clone(node);
            appends.spawn(async move { node.append(&key, vec![e]).await });
        }
        while let Some(r) = appends.join_next().await {
            r??;
        }
    }
    Ok(())
}

/// Opens the node as the server does (logs and sequencers, ingest's state,
/// the lineage graph) and says how long that took and how much it read.
fn open_as_server(dir: &Path, shards: u32) -> Result<(Duration, u64)> {
    let t = Instant::now();
    let node = Arc::new(Node::open(config(dir, shards))?);
    let ingest = ingest::Ingest::open(Arc::clone(&node), ingest::Limits::default())?;
    let (graph, _) = analytics::lineage::open(&node)?;
    let took = t.elapsed();
    std::hint::black_box(graph.event_count());
    let scanned = node
        .shards()
        .iter()
        .map(|s| s.opened().scanned)
        .sum::<u64>()
        + ingest.opened().scanned;
    Ok((took, scanned))
}

/// The floor: each shard's log opened alone, nothing derived.
fn open_logs(dir: &Path, shards: u32) -> Result<Duration> {
    let t = Instant::now();
    for id in 0..shards {
        let key = ledger::keys::read_key_file(&dir.join(format!("keys/shard-{id:03}.key")))?;
        let store = EmbeddedStore::open(
            &dir.join(format!("shard-{id:03}")),
            key,
            StoreConfig::default(),
        )?;
        std::hint::black_box(ledger::store::Store::len(&store));
    }
    Ok(t.elapsed())
}

/// Writes every checkpoint the server writes; returns how long it took.
fn checkpoint(dir: &Path, shards: u32, rt: &tokio::runtime::Runtime) -> Result<Duration> {
    let node = Arc::new(Node::open(config(dir, shards))?);
    let ingest = ingest::Ingest::open(Arc::clone(&node), ingest::Limits::default())?;
    let (graph, _) = analytics::lineage::open(&node)?;
    let t = Instant::now();
    rt.block_on(node.checkpoint(Duration::from_secs(30)))?;
    ingest.checkpoint()?;
    analytics::lineage::checkpoint::save(&node, &graph)?;
    Ok(t.elapsed())
}

fn best_of(n: usize, mut f: impl FnMut() -> Result<(Duration, u64)>) -> Result<(Duration, u64)> {
    let mut best: Option<(Duration, u64)> = None;
    for _ in 0..n {
        let r = f()?;
        if best.is_none_or(|b| r.0 < b.0) {
            best = Some(r);
        }
    }
    Ok(best.expect("at least one run"))
}

pub fn run(root: &Path, readings: u64, batch: usize, devices: u32) -> Result<()> {
    let dir = root.join("open");
    let _ = std::fs::remove_dir_all(&dir);
    let shards = 2;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut loggers: Vec<Logger> = (0..devices)
        .map(|n| {
            Logger::new(
                format!("urn:epc:id:giai:0614141.open-{n:05}"),
                7,
                n,
                1_793_491_200_000,
            )
        })
        .collect();
    let t = Instant::now();
    {
        let node = Arc::new(Node::open(config(&dir, shards))?);
        rt.block_on(fill(&node, &mut loggers, readings, batch, true))?;
        rt.block_on(node.sign_heads())?;
    }
    let entries = |dir: &Path| -> Result<u64> {
        let node = Node::open(config(dir, shards))?;
        Ok(node.shards().iter().map(|s| s.committed()).sum())
    };
    let n = entries(&dir)?;
    let stored: u64 = (0..shards)
        .map(|id| crate::logs::dir_bytes(&dir.join(format!("shard-{id:03}"))).unwrap_or(0))
        .sum();
    row(
        &format!("open: the node at {} readings", si(readings as f64)),
        format!("{} entries, {}", si(n as f64), human_bytes(stored)),
        format!("filled in {:.1} s", t.elapsed().as_secs_f64()),
    );
    // Warm caches alike for every figure below: each is the best of three.
    let logs = best_of(3, || Ok((open_logs(&dir, shards)?, 0)))?.0;
    let _ = std::fs::remove_dir_all(dir.join(shards::checkpoint::DIR));
    let (scan, scan_read) = best_of(3, || open_as_server(&dir, shards))?;
    row(
        "open, no checkpoints (every entry read)",
        format!(
            "{:.0} ms ({} entries read)",
            scan.as_secs_f64() * 1e3,
            si(scan_read as f64)
        ),
        format!("the logs alone: {:.0} ms", logs.as_secs_f64() * 1e3),
    );
    let wrote = checkpoint(&dir, shards, &rt)?;
    let bytes = crate::logs::dir_bytes(&dir.join(shards::checkpoint::DIR))?;
    row(
        "writing the checkpoints",
        format!(
            "{:.0} ms, {}",
            wrote.as_secs_f64() * 1e3,
            human_bytes(bytes)
        ),
        String::new(),
    );
    let (cp, cp_read) = best_of(3, || open_as_server(&dir, shards))?;
    row(
        "open from checkpoints, no tail",
        format!(
            "{:.0} ms ({} entries read)",
            cp.as_secs_f64() * 1e3,
            si(cp_read as f64)
        ),
        format!(
            "{:.1}x faster than no checkpoints; {:.2}x the logs alone",
            scan.as_secs_f64() / cp.as_secs_f64(),
            cp.as_secs_f64() / logs.as_secs_f64()
        ),
    );
    // A tail of 1 % after the checkpoints (a crash some minutes after the last one).
    {
        let node = Arc::new(Node::open(config(&dir, shards))?);
        rt.block_on(fill(&node, &mut loggers, readings / 100, batch, false))?;
        rt.block_on(node.sign_heads())?;
    }
    let (tail, tail_read) = best_of(3, || open_as_server(&dir, shards))?;
    row(
        "open from checkpoints, 1 % tail",
        format!(
            "{:.0} ms ({} entries read)",
            tail.as_secs_f64() * 1e3,
            si(tail_read as f64)
        ),
        format!(
            "{:.1}x faster than no checkpoints",
            scan.as_secs_f64() / tail.as_secs_f64()
        ),
    );
    Ok(())
}
