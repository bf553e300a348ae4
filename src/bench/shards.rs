//! `coldtrail bench --only shards`: append throughput by shard count, and
//! cross-shard receipt rate and latency.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use ledger::entry::{CustodyEvent, Entry, EventKind, SignedBatch, Subject, SubjectRole};
use shards::feed::Subscription;
use shards::{Node, NodeConfig};

use crate::bench::{per_sec, row, si};

pub(crate) fn open(dir: &Path, shards: u32) -> Result<Arc<Node>> {
    let _ = std::fs::remove_dir_all(dir);
    // The store settings a server would use here (`COLDTRAIL_STORE_*`), so
    // that one binary compares them.
    let store = crate::config::Config::load(None, std::env::vars())?.store_config();
    Ok(Arc::new(Node::open(NodeConfig {
        shards: Some(shards),
        store,
        ..NodeConfig::new(dir)
    })?))
}

/// `nats`: the JetStream server the receipts' second run goes through.
pub fn run(dir: &Path, batches: &[SignedBatch], per_batch: usize, nats: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let mut counts = vec![1, 2, cores, 2 * cores];
        counts.dedup();
        counts.sort_unstable();
        counts.dedup();
        let mut one = None;
        for n in counts {
            let rate = append_rate(&dir.join(format!("append-{n}")), n, batches, per_batch).await?;
            let base = *one.get_or_insert(rate);
            row(
                &format!(
                    "append, {n} shard{}, 64 concurrent writers",
                    if n == 1 { "" } else { "s" }
                ),
                format!("{}readings/s", si(rate)),
                format!("{:.2}x the 1-shard rate", rate / base),
            );
        }
        let shards = cores.max(2);
        receipts(&dir.join("receipts"), shards, None).await?;
        // The same load, the receipts through JetStream (a stream of this
        // run's own, removed after).
        let config = shards::jetstream::JetStreamConfig {
            servers: nats.to_string(),
            stream: format!("BENCH_RECEIPTS_{}", std::process::id()),
            prefix: format!("bench{}", std::process::id()),
            replicas: 1,
            member: None,
        };
        match async_nats::connect(nats).await {
            Err(e) => row(
                "receipts over JetStream",
                "not measured".into(),
                format!("no NATS at {nats}: {e}"),
            ),
            Ok(client) => {
                let measured = receipts(&dir.join("receipts-js"), shards, Some(&config)).await;
                let _ = async_nats::jetstream::new(client)
                    .delete_stream(&config.stream)
                    .await;
                measured?;
            }
        }
        Ok(())
    })
}

pub(crate) async fn append_rate(
    dir: &Path,
    shards: u32,
    batches: &[SignedBatch],
    per_batch: usize,
) -> Result<f64> {
    append_to(&open(dir, shards)?, batches, per_batch).await
}

/// Readings per second `batches` are appended to `node` at, by 64
/// concurrent writers.
pub(crate) async fn append_to(
    node: &Arc<Node>,
    batches: &[SignedBatch],
    per_batch: usize,
) -> Result<f64> {
    let queue = Arc::new(Mutex::new(batches.to_vec()));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (node, queue) = (Arc::clone(node), Arc::clone(&queue));
        tasks.spawn(async move {
            loop {
                let Some(b) = queue.lock().expect("queue lock").pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let device = b.batch.device.clone();
                node.append(&device, vec![Entry::Readings(b)]).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(per_sec((batches.len() * per_batch) as f64, t.elapsed()))
}

fn transformation(i: u64, inputs: &[String], output: &str) -> Entry {
    let mut subjects: Vec<Subject> = inputs
        .iter()
        .map(|l| Subject {
            role: SubjectRole::Input,
            id: l.clone(),
            quantity: None,
        })
        .collect();
    subjects.push(Subject {
        role: SubjectRole::Output,
        id: output.to_string(),
        quantity: None,
    });
    Entry::Custody(CustodyEvent {
        recorded_by: "urn:epc:id:sgln:0614141.00001.0".into(),
        event_id: format!("urn:uuid:bench-{i}"),
        kind: EventKind::Transformation,
        action: None,
        event_time_ms: 1_793_491_200_000 + i as i64,
        tz_offset_min: 0,
        biz_step: Some("transforming".into()),
        disposition: None,
        read_point: None,
        biz_location: None,
        subjects,
        readings: Vec::new(),
        document: Vec::new(),
    })
}

/// When each receipt, by (from, to, channel sequence), was seen.
type Times = HashMap<(u32, u32, u64), Instant>;

/// Transformations whose three input lots live on other shards: each commit
/// sends three receipts; the relay runs in the background, in-process or
/// (`jetstream`) through a JetStream stream and an inbox per shard; a feed
/// consumer notes when each receipt is committed at its destination.
async fn receipts(
    dir: &Path,
    shards: u32,
    jetstream: Option<&shards::jetstream::JetStreamConfig>,
) -> Result<()> {
    let node = open(dir, shards)?;
    let mut inboxes = Vec::new();
    let relay = match jetstream {
        None => node.spawn_relay(Duration::from_millis(10)),
        Some(config) => {
            let r = shards::jetstream::Relaying::spawn(&node, config, Duration::from_millis(10))
                .await?;
            inboxes = r.inboxes;
            r.relay
        }
    };
    let how = if jetstream.is_some() {
        "relay over JetStream (loopback)"
    } else {
        "background relay, in-process"
    };
    let lots: Vec<String> = (0..64)
        .map(|i| format!("urn:epc:class:lgtin:4012345.012345.B{i}"))
        .collect();
    let sent: Arc<Mutex<Times>> = Default::default();
    let arrived: Arc<Mutex<Times>> = Default::default();
    let events = 3000u64;
    let watcher = {
        let (node, arrived) = (Arc::clone(&node), Arc::clone(&arrived));
        tokio::spawn(async move {
            let mut sub = Subscription::open(node, "bench-receipts", 512)?;
            loop {
                let batch = sub.next().await?;
                let now = Instant::now();
                for bytes in &batch.entries {
                    if let Ok(Entry::ReceiptIn(d)) = Entry::from_bytes(bytes) {
                        let r = d.receipt;
                        arrived
                            .lock()
                            .expect("lock")
                            .insert((r.from_shard, r.to_shard, r.channel_seq), now);
                    }
                }
                sub.commit(&batch, &[])?;
            }
            #[allow(unreachable_code)]
            Ok::<_, anyhow::Error>(())
        })
    };
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32u64 {
        let (node, lots, sent) = (Arc::clone(&node), lots.clone(), Arc::clone(&sent));
        tasks.spawn(async move {
            for i in (w..events).step_by(32) {
                let out = &lots[(i % 64) as usize];
                let home = node.router().shard_for(out);
                let inputs: Vec<String> = lots
                    .iter()
                    .filter(|l| node.router().shard_for(l) != home)
                    .take(3)
                    .cloned()
                    .collect();
                let c = node
                    .append(out, vec![transformation(i, &inputs, out)])
                    .await?;
                let now = Instant::now();
                let mut s = sent.lock().expect("lock");
                for r in c.receipts {
                    s.insert((r.from_shard, r.to_shard, r.channel_seq), now);
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    while node.pending_receipts() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed();
    // Let the feed catch the last commits.
    let total = sent.lock().expect("lock").len();
    while arrived.lock().expect("lock").len() < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    watcher.abort();
    relay.abort();
    for inbox in inboxes {
        inbox.abort();
    }
    let sent = sent.lock().expect("lock");
    let arrived = arrived.lock().expect("lock");
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(k, t0)| arrived.get(k).map(|t1| t1.saturating_duration_since(*t0)))
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    row(
        &format!("receipts, {shards} shards, {how}"),
        format!("{}receipts/s", si(per_sec(total as f64, elapsed))),
        format!("{total} receipts from {events} transformations"),
    );
    row(
        &format!("receipt latency, commit on A to commit on B, {how}"),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        ),
        format!(
            "max {:.2} ms",
            lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        ),
    );
    Ok(())
}
