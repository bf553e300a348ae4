//! `coldtrail bench`: the ledger's figures, each beside a baseline measured in
//! the same process, so ratios survive a noisy shared machine. This file
//! holds the arguments, the ledger's own figures and the printing helpers;
//! each other part has its file (`store`, `shards`, `open`, `rules`,
//! `lineage`, `graphql`, `pages`).

pub mod graphql;
pub mod lineage;
pub mod mirrors;
pub mod open;
pub mod pages;
pub mod rules;
pub mod shards;
pub mod store;
pub mod verify;
pub mod witness;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ed25519_dalek::SigningKey;
use ledger::entry::{Entry, SignedBatch};
use ledger::merkle::{verify_consistency, verify_inclusion, Blake3Merkle, MerkleHasher};
use ledger::store::{audit_log, EmbeddedStore, Pending, Store, StoreConfig};
use rand::{Rng, SeedableRng};

use crate::cmd::loadgen::Logger;
use crate::logs::{dir_bytes, human_bytes};

#[derive(clap::Args)]
pub struct Args {
    /// Entries in the large log used for proof, open and audit figures.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Where to build the bench logs (a temporary directory if not given).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Loggers in the realistic-data runs.
    #[arg(long, default_value_t = 200)]
    devices: u32,
    /// Readings per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Appending threads for the durable append figure.
    #[arg(long, default_value_t = 4)]
    appenders: usize,
    /// Which figures: `ledger`, `shards`, `fixtures`, `rules`, `lineage`, `graphql`, `pages`,
    /// `store` (PostgreSQL beside embedded; not part of `all`), `open` (start-up time at
    /// `--readings`; not part of `all`), `verify` (the audit of `--data-dir` against its
    /// floor; not part of `all`), `witness` (cosignatures per second), `mirrors` (ingest
    /// with four mirrors following, mirror lag; through `--nats`), or `all`.
    #[arg(long, default_value = "all", value_parser = ["all", "ledger", "shards", "fixtures", "rules", "lineage", "graphql", "pages", "store", "open", "verify", "witness", "mirrors"])]
    only: String,
    /// The node whose logs `--only verify` audits (left unchanged).
    #[arg(long, value_name = "DIR", required_if_eq("only", "verify"))]
    data_dir: Option<PathBuf>,
    /// Logs submitting at once in the witness figures.
    #[arg(long, default_value_t = 64)]
    witness_logs: usize,
    /// Checkpoints each log submits in the witness figures.
    #[arg(long, default_value_t = 200)]
    witness_steps: usize,
    /// Rounds of `--only verify`, audit and floor alternated.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Readings in the node `--only open` builds.
    #[arg(long, default_value_t = 100_000_000)]
    readings: u64,
    /// PostgreSQL for `--only store` (postgres://…; default: a throwaway cluster).
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
    /// The fixtures world the GraphQL and page figures serve: `demo` or `large`.
    #[arg(long, default_value = "demo", value_parser = ["tiny", "demo", "large"])]
    graphql_world: String,
    /// GraphQL queries per client (16 clients).
    #[arg(long, default_value_t = 200)]
    graphql_queries: usize,
    /// Consumer pages asked per second (open loop) in the pages figures.
    #[arg(long, default_value_t = 1000)]
    page_rate: u32,
    /// For how long, in seconds.
    #[arg(long, default_value_t = 20)]
    page_seconds: u32,
    /// Lots in the lineage world (about 7.4 events each).
    #[arg(long, default_value_t = 1_400_000)]
    lots: usize,
    /// NATS JetStream for the receipts' second run in the shards figures,
    /// and for the mirrors figures.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// PostgreSQL for the lineage baseline (a libpq connection string).
    #[arg(long, default_value = "host=127.0.0.1 user=postgres dbname=postgres")]
    pg: String,
}

pub(crate) fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-12)
}

pub(crate) fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.1} "),
    }
}

pub(crate) fn row(name: &str, value: String, baseline: String) {
    println!("{name:<44} {value:<28} {baseline}");
}

pub fn run(args: Args) -> Result<ExitCode> {
    let tmp;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("coldtrail-bench-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "coldtrail bench: {} cores; logs under {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        root.display()
    );
    println!("{:<44} {:<28} baseline (same run)", "figure", "value");
    if args.only == "all" || args.only == "ledger" {
        encode_and_hash(&args);
        durable_append(&args, &root.join("readings"))?;
        large_log(&args, &root.join("large"))?;
    }
    if args.only == "all" || args.only == "rules" {
        crate::bench::rules::run(&root)?;
        crate::bench::rules::lag(&root, signed_batches(&args, 20))?;
    }
    if args.only == "all" || args.only == "fixtures" {
        world_generation();
    }
    if args.only == "all" || args.only == "lineage" {
        crate::bench::lineage::run(args.lots, &args.pg)?;
    }
    if args.only == "all" || args.only == "graphql" {
        let scale = match args.graphql_world.as_str() {
            "tiny" => fixtures::Scale::Tiny,
            "large" => fixtures::Scale::Large,
            _ => fixtures::Scale::Demo,
        };
        crate::bench::graphql::run(&root, scale, args.graphql_queries)?;
    }
    if args.only == "all" || args.only == "pages" {
        let scale = match args.graphql_world.as_str() {
            "tiny" => fixtures::Scale::Tiny,
            "large" => fixtures::Scale::Large,
            _ => fixtures::Scale::Demo,
        };
        crate::bench::pages::run(&root, scale, args.page_rate, args.page_seconds)?;
    }
    if args.only == "store" {
        crate::bench::store::run(&root, args.entries, args.store_url.as_deref())?;
    }
    if args.only == "all" || args.only == "witness" {
        crate::bench::witness::run(&root, args.witness_logs, args.witness_steps)?;
    }
    if let (true, Some(dir)) = (args.only == "verify", &args.data_dir) {
        crate::bench::verify::run(dir, args.rounds)?;
    }
    if args.only == "open" {
        crate::bench::open::run(&root, args.readings, args.batch, args.devices)?;
    }
    if args.only == "all" || args.only == "mirrors" {
        crate::bench::mirrors::run(
            &root.join("mirrors"),
            &signed_batches(&args, 20),
            args.batch,
            &args.nats,
        )?;
    }
    if args.only == "all" || args.only == "shards" {
        crate::bench::shards::run(
            &root.join("shards"),
            &signed_batches(&args, 20),
            args.batch,
            &args.nats,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The large fixtures world, streamed device by device on one core.
fn world_generation() {
    let t = Instant::now();
    let world = fixtures::generate(7, fixtures::Scale::Large, 1_793_491_200_000);
    let described = t.elapsed();
    let t = Instant::now();
    let mut n = 0u64;
    let mut checksum = 0i64;
    for d in &world.devices {
        for r in fixtures::readings(d, &world.truth.incidents) {
            n += 1;
            checksum = checksum.wrapping_add(i64::from(r.temp_centi_c));
        }
    }
    let d = t.elapsed();
    std::hint::black_box(checksum);
    row(
        "fixtures: large world, readings streamed",
        format!("{}readings/s", si(per_sec(n as f64, d))),
        format!(
            "{n} readings from {} loggers; world described in {:.0} ms",
            world.devices.len(),
            described.as_secs_f64() * 1e3
        ),
    );
}

/// Realistic hourly-or-larger batches, signed once up front.
fn signed_batches(args: &Args, rounds: usize) -> Vec<SignedBatch> {
    let mut loggers: Vec<Logger> = (0..args.devices)
        .map(|n| {
            Logger::new(
                format!("urn:epc:id:giai:0614141.bench-{n:05}"),
                1,
                n,
                1_793_491_200_000,
            )
        })
        .collect();
    let mut out = Vec::new();
    for _ in 0..rounds {
        for l in &mut loggers {
            out.push(l.next_batch(args.batch));
        }
    }
    out
}

fn encode_and_hash(args: &Args) {
    let batches = signed_batches(args, 1);
    let readings = (batches.len() * args.batch) as f64;
    let t = Instant::now();
    let mut total = 0usize;
    let mut encoded = Vec::with_capacity(batches.len());
    for b in &batches {
        let bytes = Entry::Readings(b.clone()).to_bytes();
        std::hint::black_box(ledger::entry_id(&bytes));
        total += bytes.len();
        encoded.push(bytes);
    }
    let d = t.elapsed();
    // Baseline: BLAKE3 leaf hashing of the same bytes, nothing else.
    let t = Instant::now();
    for e in &encoded {
        std::hint::black_box(Blake3Merkle::hash_leaf(e));
    }
    let base = t.elapsed();
    row(
        "encode + hash (one core)",
        format!("{}readings/s", si(per_sec(readings, d))),
        format!(
            "hash alone {}readings/s ({:.2}x)",
            si(per_sec(readings, base)),
            d.as_secs_f64() / base.as_secs_f64()
        ),
    );
    row(
        "encoded size before lz4",
        format!("{:.2} B/reading", total as f64 / readings),
        format!("{} readings x {} batches", args.batch, batches.len()),
    );
    // The cost a device batch adds at ingest: one signature check per batch.
    let key: SigningKey = SigningKey::from_bytes(&[5; 32]);
    let vk = key.verifying_key();
    let signed: Vec<SignedBatch> = batches
        .iter()
        .take(200)
        .map(|b| SignedBatch::sign(b.batch.clone(), &key))
        .collect();
    let t = Instant::now();
    for s in &signed {
        assert!(s.verify(&vk));
    }
    let d = t.elapsed();
    row(
        "signature check per batch",
        format!("{:.1} us", d.as_secs_f64() * 1e6 / signed.len() as f64),
        format!(
            "= {}readings/s per core",
            si(per_sec((signed.len() * args.batch) as f64, d))
        ),
    );
}

fn durable_append(args: &Args, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let rounds = 50;
    let entries: Vec<Vec<u8>> = signed_batches(args, rounds)
        .into_iter()
        .map(|b| Entry::Readings(b).to_bytes())
        .collect();
    let readings = (entries.len() * args.batch) as f64;
    let bytes: usize = entries.iter().map(Vec::len).sum();
    let store = Arc::new(EmbeddedStore::create(
        dir,
        SigningKey::from_bytes(&[1; 32]),
        StoreConfig::default(),
    )?);
    let entries = Arc::new(entries);
    let t = Instant::now();
    let threads: Vec<_> = (0..args.appenders)
        .map(|k| {
            let (store, entries) = (Arc::clone(&store), Arc::clone(&entries));
            let appenders = args.appenders;
            std::thread::spawn(move || -> Result<()> {
                // Each appender keeps a few requests in flight, as an ingest
                // tier with many connections does.
                let mut inflight: std::collections::VecDeque<Pending> = Default::default();
                for e in entries.iter().skip(k).step_by(appenders) {
                    inflight.push_back(store.submit_blocking(vec![e.clone()])?);
                    if inflight.len() >= 16 {
                        inflight.pop_front().expect("non-empty").wait()?;
                    }
                }
                for p in inflight {
                    p.wait()?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("appender thread")?;
    }
    let d = t.elapsed();
    drop(store);
    // Baseline: the same bytes written and fdatasync'd in 4 MiB groups.
    let raw_path = dir.join("baseline.raw");
    let t = Instant::now();
    {
        let mut f = File::create(&raw_path)?;
        let mut group = 0;
        for e in entries.iter() {
            f.write_all(e)?;
            group += e.len();
            if group >= 4 << 20 {
                f.sync_data()?;
                group = 0;
            }
        }
        f.sync_data()?;
    }
    let base = t.elapsed();
    std::fs::remove_file(&raw_path)?;
    row(
        &format!(
            "durable append ({} appenders, group commit)",
            args.appenders
        ),
        format!(
            "{}readings/s, {}B/s",
            si(per_sec(readings, d)),
            si(per_sec(bytes as f64, d))
        ),
        format!(
            "raw write+fdatasync {}B/s ({:.2}x)",
            si(per_sec(bytes as f64, base)),
            d.as_secs_f64() / base.as_secs_f64()
        ),
    );
    let disk = dir_bytes(dir)?;
    row(
        "on disk, every ledger file included",
        format!("{:.2} B/reading", disk as f64 / readings),
        format!("{} for {} readings", human_bytes(disk), readings),
    );
    audit_row("verify (realistic readings log)", dir)?;
    Ok(())
}

/// Runs of each audit and of its baseline; the median is printed (an audit
/// of the readings log takes tens of milliseconds, which one run on a shared
/// machine measures poorly).
const AUDIT_RUNS: usize = 7;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn audit_row(name: &str, dir: &Path) -> Result<()> {
    let mut report = None;
    let mut runs = Vec::new();
    for _ in 0..AUDIT_RUNS {
        let t = Instant::now();
        let r = audit_log(dir, &|_| {})?;
        runs.push(t.elapsed());
        anyhow::ensure!(r.problem.is_none(), "audit found {:?}", r.problem);
        report = Some(r);
    }
    let report = report.expect("AUDIT_RUNS > 0");
    let d = median(runs);
    let bytes = report.bytes;
    // Baseline: reading the same files and BLAKE3-hashing them once, on one
    // core; as many runs, and their median.
    let mut runs = Vec::new();
    for _ in 0..AUDIT_RUNS {
        let t = Instant::now();
        for e in std::fs::read_dir(dir)? {
            let b = std::fs::read(e?.path())?;
            std::hint::black_box(ledger::Domain::BlockChecksum.hash(&b));
        }
        runs.push(t.elapsed());
    }
    let base = median(runs);
    row(
        name,
        format!(
            "{}B/s stored, {}B/s of entries",
            si(per_sec(bytes as f64, d)),
            si(per_sec(report.entry_bytes as f64, d))
        ),
        format!(
            "read + blake3 {}B/s ({:.2}x)",
            si(per_sec(bytes as f64, base)),
            d.as_secs_f64() / base.as_secs_f64()
        ),
    );
    Ok(())
}

fn large_log(args: &Args, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let n = args.entries;
    let key = SigningKey::from_bytes(&[2; 32]);
    let config = StoreConfig {
        max_block_entries: 4096,
        ..StoreConfig::default()
    };
    let store = EmbeddedStore::create(dir, key.clone(), config.clone())?;
    let t = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut inflight = std::collections::VecDeque::new();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(4096);
        let group: Vec<Vec<u8>> = (0..k).map(|_| rng.gen::<[u8; 32]>().to_vec()).collect();
        inflight.push_back(store.submit_blocking(group)?);
        if inflight.len() >= 8 {
            inflight.pop_front().expect("non-empty").wait()?;
        }
        done += k;
    }
    for p in inflight {
        p.wait()?;
    }
    let fill = t.elapsed();
    let head = store.sign_head()?;
    row(
        &format!("fill {} entries of 32 B", n),
        format!("{}entries/s", si(per_sec(n as f64, fill))),
        format!("{} on disk", human_bytes(dir_bytes(dir)?)),
    );

    let probes = 20_000u64;
    let idx: Vec<u64> = (0..probes).map(|_| rng.gen_range(0..n)).collect();
    let t = Instant::now();
    let proofs: Vec<Vec<ledger::Digest>> = idx
        .iter()
        .map(|&i| store.inclusion_proof(i, n))
        .collect::<Result<_, _>>()?;
    let make = t.elapsed();
    let leaves: Vec<ledger::Digest> = idx
        .iter()
        .map(|&i| store.entry_id(i))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for ((&i, p), l) in idx.iter().zip(&proofs).zip(&leaves) {
        verify_inclusion::<Blake3Merkle>(i, n, l, p, &head.head.root)?;
    }
    let verify = t.elapsed();
    row(
        &format!("inclusion proof at {n} (make / verify)"),
        format!(
            "{:.2} us / {:.2} us",
            make.as_secs_f64() * 1e6 / probes as f64,
            verify.as_secs_f64() * 1e6 / probes as f64
        ),
        format!("goal 20 us / 10 us; {} hashes per proof", proofs[0].len()),
    );
    let sizes: Vec<u64> = (0..probes / 10).map(|_| rng.gen_range(1..n)).collect();
    let t = Instant::now();
    let cproofs: Vec<Vec<ledger::Digest>> = sizes
        .iter()
        .map(|&s| store.consistency_proof(s, n))
        .collect::<Result<_, _>>()?;
    let cmake = t.elapsed();
    let roots: Vec<ledger::Digest> = sizes
        .iter()
        .map(|&s| store.root(s))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for ((&s, p), r) in sizes.iter().zip(&cproofs).zip(&roots) {
        verify_consistency::<Blake3Merkle>(s, n, p, r, &head.head.root)?;
    }
    let cverify = t.elapsed();
    let k = sizes.len() as f64;
    row(
        &format!("consistency proof to {n} (make / verify)"),
        format!(
            "{:.2} us / {:.2} us",
            cmake.as_secs_f64() * 1e6 / k,
            cverify.as_secs_f64() * 1e6 / k
        ),
        format!("lookup by id {:.2} us", {
            let t = Instant::now();
            for l in leaves.iter().take(2000) {
                std::hint::black_box(store.find(l)?);
            }
            t.elapsed().as_secs_f64() * 1e6 / 2000.0
        }),
    );
    drop(store);

    let t = Instant::now();
    let store = EmbeddedStore::open(dir, key, config)?;
    let open = t.elapsed();
    anyhow::ensure!(
        store.len() == n && store.root(n)? == head.head.root,
        "reopened log differs"
    );
    drop(store);
    // Baseline: reading the persisted 16-leaf nodes alone.
    let t = Instant::now();
    std::hint::black_box(std::fs::read(dir.join(ledger::store::format::NODES_FILE))?);
    let base = t.elapsed();
    row(
        &format!("open at {n} entries"),
        format!("{:.1} ms", open.as_secs_f64() * 1e3),
        format!("read of the nodes file {:.1} ms", base.as_secs_f64() * 1e3),
    );

    audit_row(&format!("verify ({n} entries)"), dir)?;
    Ok(())
}
