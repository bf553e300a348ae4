//! `coldtrail bench --only mirrors`: what mirroring costs the member whose
//! logs are followed, and how far behind its mirrors are (issue 35's
//! figures). One process, one machine: a node publishes its logs over the
//! NATS JetStream at `--nats` (a stream of this run's own, removed after)
//! while four followers keep verified mirrors of them, each in its own
//! directory on the same disk (in a network each is another member's
//! machine, so the disk's share here is a worst case).
//!
//! - Durable ingest: 64 concurrent writers on the node alone, then on a node
//!   whose publisher and four mirrors run, rounds interleaved.
//! - Mirror lag: at a steady rate, from a batch's acknowledgement to the
//!   moment all four mirrors hold its entry (verified), p50 and p99.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ledger::entry::{Entry, SignedBatch};
use shards::jetstream::{JetStreamConfig, LogPublisher, MemberFollower};
use shards::mirror::Mirror;
use shards::Node;

use crate::bench::shards::{append_rate, append_to, open};
use crate::bench::{row, si};

/// Followers of the node, as in a network of five members.
const FOLLOWERS: usize = 4;
/// How often the node publishes: `serve`'s default (`network.publish_interval_ms`).
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// The node publishing and its four followers, running until dropped.
struct Followed {
    node: Arc<Node>,
    mirrors: Vec<Vec<Arc<Mirror>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Followed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A node publishing its logs as member `name` (each run's own: the stream
/// keeps what an earlier one published), with `followers` mirroring them.
async fn followed(
    dir: &Path,
    name: &str,
    shards: u32,
    config: &JetStreamConfig,
    followers: usize,
) -> Result<Followed> {
    let node = open(&dir.join("node"), shards)?;
    let member = ledger::network::Member {
        name: name.into(),
        operator_key: node
            .key_sets()
            .last()
            .context("a node has a key set")?
            .set
            .operator_key,
        url: "http://origin.example".into(),
        prefixes: vec!["4012345".into()],
        shards,
    };
    let publisher = LogPublisher::connect(config.clone(), &member.name, Arc::clone(&node)).await?;
    let mut tasks = vec![tokio::spawn(publisher.run(PUBLISH_EVERY))];
    let (backend, store_config) = node.storage();
    let mut mirrors = Vec::new();
    for f in 0..followers {
        let follower = MemberFollower::open(
            config,
            &format!("follower{f}"),
            &member,
            &dir.join(format!("follower{f}")),
            backend,
            store_config.clone(),
        )
        .await?;
        mirrors.push(follower.mirrors().to_vec());
        tasks.push(tokio::spawn(follower.run()));
    }
    Ok(Followed {
        node,
        mirrors,
        tasks,
    })
}

/// Runs the figures against the JetStream at `nats`; a row says so when
/// there is none.
pub fn run(dir: &Path, batches: &[SignedBatch], per_batch: usize, nats: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = match async_nats::connect(nats).await {
            Ok(c) => c,
            Err(e) => {
                row(
                    "mirrors",
                    "not measured".into(),
                    format!("no NATS at {nats}: {e}"),
                );
                return Ok(());
            }
        };
        let run = std::process::id();
        let config = JetStreamConfig {
            servers: nats.to_string(),
            stream: format!("BENCH_MIRRORS_{run}"),
            prefix: format!("benchmirrors{run}"),
            replicas: 1,
            member: None,
        };
        let measured = figures(dir, batches, per_batch, &config).await;
        let js = async_nats::jetstream::new(client);
        for suffix in ["LOGS", "COSIG"] {
            let _ = js
                .delete_stream(format!("{}-{suffix}", config.stream))
                .await;
        }
        measured
    })
}

async fn figures(
    dir: &Path,
    batches: &[SignedBatch],
    per_batch: usize,
    config: &JetStreamConfig,
) -> Result<()> {
    let shards = 2;
    // Interleaved rounds: the machine's drift falls on every column. The
    // node publishing with no follower is its own share of a network's
    // cost (followers run on other members' machines); with followers in
    // this process, theirs comes on top.
    let configurations = [0, 1, FOLLOWERS];
    let mut alone = Vec::new();
    let mut with: Vec<Vec<f64>> = vec![Vec::new(); configurations.len()];
    for round in 0..3 {
        alone.push(
            append_rate(
                &dir.join(format!("alone-{round}")),
                shards,
                batches,
                per_batch,
            )
            .await?,
        );
        for (c, &followers) in configurations.iter().enumerate() {
            let f = followed(
                &dir.join(format!("followed-{followers}-{round}")),
                &format!("origin{followers}x{round}"),
                shards,
                config,
                followers,
            )
            .await?;
            with[c].push(append_to(&f.node, batches, per_batch).await?);
            // The mirrors catch up before the next round measures.
            caught_up(&f, Duration::from_secs(120)).await?;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let a = median(&mut alone);
    for (&followers, rates) in configurations.iter().zip(&mut with) {
        let w = median(rates);
        row(
            &match followers {
                0 => "durable ingest, publishing, no follower".to_string(),
                1 => "durable ingest, 1 mirror following".to_string(),
                n => format!("durable ingest, {n} mirrors following"),
            },
            format!("{}readings/s", si(w)),
            format!("{:.2}x the node alone ({}readings/s)", w / a, si(a)),
        );
    }
    lag(dir, batches, config, shards).await
}

/// Waits until every mirror holds all its shard has committed.
async fn caught_up(f: &Followed, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let behind = f.node.shards().iter().any(|s| {
            f.mirrors
                .iter()
                .any(|m| m[s.id() as usize].len() < s.committed())
        });
        if !behind {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the mirrors did not catch up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Batches at a steady 100 a second for 20 s, one at a time; each batch's
/// lag is from its acknowledgement until every mirror holds it.
async fn lag(
    dir: &Path,
    batches: &[SignedBatch],
    config: &JetStreamConfig,
    shards: u32,
) -> Result<()> {
    let f = followed(&dir.join("lag"), "origin-lag", shards, config, FOLLOWERS).await?;
    let rate = 100u32;
    let count = (rate as usize * 20).min(batches.len());
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut pending: Vec<(u32, u64, Instant)> = Vec::new();
    let mut lags: Vec<Duration> = Vec::with_capacity(count);
    let held = |shard: u32, index: u64| f.mirrors.iter().all(|m| m[shard as usize].len() > index);
    for b in batches.iter().take(count) {
        tick.tick().await;
        let device = b.batch.device.clone();
        let c = f
            .node
            .append(&device, vec![Entry::Readings(b.clone())])
            .await?;
        pending.push((c.shard, c.entries[0].0, Instant::now()));
        pending.retain(|&(shard, index, acked)| {
            let done = held(shard, index);
            if done {
                lags.push(acked.elapsed());
            }
            !done
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the mirrors fell behind");
        tokio::time::sleep(Duration::from_millis(1)).await;
        pending.retain(|&(shard, index, acked)| {
            let done = held(shard, index);
            if done {
                lags.push(acked.elapsed());
            }
            !done
        });
    }
    lags.sort_unstable();
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    row(
        &format!("mirror lag, ack to all {FOLLOWERS} mirrors"),
        format!("p50 {:.0} ms, p99 {:.0} ms", pct(0.5), pct(0.99)),
        format!(
            "{count} batches at {rate}/s; published every {} ms",
            PUBLISH_EVERY.as_millis()
        ),
    );
    Ok(())
}
