//! `coldtrail demo`: a sample cold-chain ledger, built, signed and audited.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::entry::{Entry, IdentityChange, OrgRole};
use ledger::merkle::{verify_inclusion, Blake3Merkle};
use ledger::store::{audit_log, EmbeddedStore, Store, StoreConfig};

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
}

/// The log key of shard 0, created on first use.
pub fn shard_key(data_dir: &Path) -> Result<ed25519_dalek::SigningKey> {
    let keys = data_dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let path = keys.join("shard-000.key");
    if path.exists() {
        return Ok(ledger::keys::read_key_file(&path)?);
    }
    let key = ledger::keys::generate()?;
    ledger::keys::write_key_file(&path, &key)?;
    Ok(key)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("coldtrail-demo-")
            .tempdir()?
            .keep(),
    };
    let log_dir = data_dir.join("shard-000");
    let store =
        EmbeddedStore::open_or_create(&log_dir, shard_key(&data_dir)?, StoreConfig::default())
            .with_context(|| format!("opening the ledger in {}", log_dir.display()))?;
    let first_new = store.len();

    let org = "urn:epc:id:sgln:0614141.00001.0".to_string();
    let mut loggers: Vec<Logger> = (0..args.devices)
        .map(|n| Logger::new(args.seed, n))
        .collect();
    let mut identity = vec![Entry::Identity(IdentityChange::OrgRegistered {
        org: org.clone(),
        name: "Example Cold Logistics".into(),
        role: OrgRole::Carrier,
        at_ms: START_MS,
    })
    .to_bytes()];
    identity.extend(loggers.iter().map(|l| {
        Entry::Identity(IdentityChange::DeviceRegistered {
            org: org.clone(),
            device: l.id.clone(),
            public_key: l.key.verifying_key().to_bytes(),
            at_ms: START_MS,
        })
        .to_bytes()
    }));
    store.append(identity)?;

    let batches = u64::from(args.devices) * u64::from(args.hours);
    let bar = ProgressBar::new(batches).with_style(
        ProgressStyle::with_template(
            "{spinner} appending signed hourly batches [{bar:30}] {pos}/{len} {per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    for _ in 0..args.hours {
        // One hour of every logger: appended together, waited for together.
        let pending = loggers
            .iter_mut()
            .map(|l| store.submit_blocking(vec![l.signed_entry(60)]))
            .collect::<Result<Vec<_>, _>>()?;
        for p in pending {
            p.wait()?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let head = store.sign_head()?;
    let n = store.len();

    // A proof a partner could fetch: the newest batch, proven against the head.
    let index = n - 1;
    let entry = store.entry(index)?;
    let proof = store.inclusion_proof(index, head.head.size)?;
    verify_inclusion::<Blake3Merkle>(
        index,
        head.head.size,
        &ledger::entry_id(&entry),
        &proof,
        &head.head.root,
    )?;
    head.verify(&store.public_key())?;
    drop(store);

    let report = audit_log(&log_dir, &|_| {})?;
    let readings = batches * 60;
    let bytes = dir_bytes(&log_dir)?;
    println!("coldtrail demo: a sample cold-chain ledger");
    println!("  data dir        {}", data_dir.display());
    println!(
        "  appended        {} entries ({} loggers x {} hourly batches of one-minute readings, {} readings)",
        n - first_new,
        args.devices,
        args.hours,
        readings
    );
    println!(
        "  on disk         {} for the whole log ({:.2} bytes per reading, ledger overhead included)",
        human_bytes(bytes),
        bytes as f64 / readings as f64
    );
    println!(
        "  signed head     size {} root {}",
        head.head.size, head.head.root
    );
    println!(
        "  example proof   entry {index}: {} hashes to the signed root, verified",
        proof.len()
    );
    match report.problem {
        None => println!("  audit           every checksum, hash and signed head verified"),
        Some(p) => {
            println!("  audit           FAILED: {p}");
            return Ok(ExitCode::from(1));
        }
    }
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
