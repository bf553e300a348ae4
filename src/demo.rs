//! `coldtrail demo`: a sample cold-chain ledger on a sharded node, built,
//! signed, cross-linked by receipts and audited.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::entry::{Entry, IdentityChange, OrgRole};
use ledger::store::{audit_log, Store};
use shards::{Node, NodeConfig};
use tokio::task::JoinSet;

use crate::logs::{dir_bytes, human_bytes};
use crate::sample::{Logger, START_MS};

#[derive(clap::Args)]
pub struct Args {
    /// Where to keep the ledger; a new temporary directory if not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of simulated loggers.
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Hours of one-minute readings per logger.
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// Same seed, same world.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Shards of a new node (default: one per core); existing data keeps its count.
    #[arg(long)]
    shards: Option<u32>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<ExitCode> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("coldtrail-demo-")
            .tempdir()?
            .keep(),
    };
    let config = NodeConfig {
        shards: args.shards,
        ..NodeConfig::new(&data_dir)
    };
    let node = Arc::new(
        Node::open(config)
            .with_context(|| format!("opening the node in {}", data_dir.display()))?,
    );
    let relay = node.spawn_relay(Duration::from_millis(20));
    let before: u64 = node.shards().iter().map(|s| s.store().len()).sum();

    // Identity changes are homed on the organisation; each device
    // registration sends a receipt to the device's home shard.
    let org = "urn:epc:id:sgln:0614141.00001.0".to_string();
    let loggers: Vec<Logger> = (0..args.devices)
        .map(|n| Logger::new(args.seed, n))
        .collect();
    let mut identity = vec![Entry::Identity(IdentityChange::OrgRegistered {
        org: org.clone(),
        name: "Example Cold Logistics".into(),
        role: OrgRole::Carrier,
        at_ms: START_MS,
    })];
    identity.extend(loggers.iter().map(|l| {
        Entry::Identity(IdentityChange::DeviceRegistered {
            org: org.clone(),
            device: l.id.clone(),
            public_key: l.key.verifying_key().to_bytes(),
            at_ms: START_MS,
        })
    }));
    node.append(&org, identity).await?;

    let batches = u64::from(args.devices) * u64::from(args.hours);
    let bar = ProgressBar::new(batches).with_style(
        ProgressStyle::with_template(
            "{spinner} appending signed hourly batches [{bar:30}] {pos}/{len} {per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let mut loggers = loggers;
    for _ in 0..args.hours {
        // One hour of every logger, appended concurrently on their home shards.
        let mut set = JoinSet::new();
        for l in &mut loggers {
            let (node, device, entry) = (Arc::clone(&node), l.id.clone(), l.signed_entry(60));
            set.spawn(async move { node.append(&device, vec![entry]).await });
        }
        while let Some(r) = set.join_next().await {
            r??;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    while node.pending_receipts() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    relay.abort();
    // The relay's task holds the node while it runs: let it end, so that
    // dropping the node below closes (and signs) every shard's log.
    let _ = relay.await;

    // A device's history across shards, every entry proven.
    let device = loggers[0].id.clone();
    let history = node.history(&device).await?;
    for item in &history {
        item.entry.verify(&node.keys()[item.entry.shard as usize])?;
        if let Some(link) = &item.link {
            link.verify(&node.keys()[link.shard as usize])?;
        }
    }
    let shard_dirs: Vec<(u32, PathBuf, u64)> = node
        .shards()
        .iter()
        .map(|s| (s.id(), s.store().dir().to_path_buf(), s.store().len()))
        .collect();
    let after: u64 = shard_dirs.iter().map(|(_, _, n)| n).sum();
    drop(node);

    let readings = batches * 60;
    println!("coldtrail demo: a sample cold-chain ledger");
    println!("  data dir        {}", data_dir.display());
    println!(
        "  appended        {} entries ({} loggers x {} hourly batches of one-minute readings = {} readings, their registrations and receipts)",
        after - before,
        args.devices,
        args.hours,
        readings
    );
    let mut bytes = 0;
    for (id, dir, n) in &shard_dirs {
        let report = audit_log(dir, &|_| {})?;
        let b = dir_bytes(dir)?;
        bytes += b;
        match report.problem {
            None => println!(
                "  shard {id}         {n} entries, {}, receipts out {} / in {}, audit passed",
                human_bytes(b),
                report.kinds.get("receipt-out").unwrap_or(&0),
                report.kinds.get("receipt-in").unwrap_or(&0)
            ),
            Some(p) => {
                println!("  shard {id}         audit FAILED: {p}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    println!(
        "  on disk         {} ({:.2} bytes per reading, ledger overhead included)",
        human_bytes(bytes),
        bytes as f64 / readings.max(1) as f64
    );
    println!(
        "  example         history of {device}: {} entries across shards, every proof verified against its shard's signed head",
        history.len()
    );
    println!();
    println!("next:");
    println!(
        "  cargo run --release -- verify --data-dir {}",
        data_dir.display()
    );
    println!(
        "  cargo run --release -- inspect --data-dir {}",
        data_dir.display()
    );
    println!("  cargo run --release -- bench");
    Ok(ExitCode::SUCCESS)
}
