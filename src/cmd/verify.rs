//! `verify` and `inspect`: the audit over every log of a data directory.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::store::{audit_log, AuditReport};

use crate::logs::{dir_bytes, find_logs, format_ms, human_bytes};

fn describe(name: &str, r: &AuditReport) {
    println!(
        "{name}: log {}  {} entries in {} blocks, {} segments, {} signed heads, {} checked",
        &r.log_id.to_hex()[..16],
        r.entries,
        r.blocks,
        r.segments,
        r.heads,
        human_bytes(r.bytes)
    );
    if let Some(h) = r.latest_head {
        println!(
            "    latest signed head: size {}, root {}, signed {}",
            h.head.size,
            h.head.root,
            format_ms(h.head.timestamp_ms)
        );
    }
}

/// Exit code of an audit that found damage.
pub const DAMAGED: u8 = 1;
/// Exit code of an audit that found only what a crash leaves (derived files
/// behind the segments, a torn tail, an unsigned tail): opening repairs it.
pub const RECOVERABLE: u8 = 3;

/// Full audit; exits 1 naming the first problem, 3 when the logs are only
/// crash-consistent (saying what opening will do). With `recover`, opens
/// the node first (as a start would: recovery, then heads signed).
pub fn verify(data_dir: &Path, recover: bool) -> Result<ExitCode> {
    if let Some((_, "postgres")) = shards::pinned(data_dir)? {
        // The node's logs are in a database: audit its rows.
        let settings = crate::config::Config::load(None, std::env::vars())?;
        let Some(url) = settings.store.url else {
            anyhow::bail!(
                "{} keeps its logs in PostgreSQL: give the database with --store postgres://… (or COLDTRAIL_STORE_URL)",
                data_dir.display()
            );
        };
        return verify_database(&url, Some(data_dir), recover);
    }
    if recover {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let node = crate::cmd::serve::open_node(data_dir, None)?;
            node.sign_heads().await?;
            anyhow::Ok(())
        })?;
        println!("opened and closed the node: recovery ran and every log's heads are signed");
    }
    let logs = find_logs(data_dir)?;
    let total: u64 = logs.iter().map(|(_, p)| dir_bytes(p).unwrap_or(0)).sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} verifying {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let (mut entries, mut bytes) = (0, 0);
    let mut reports: Vec<(String, AuditReport)> = Vec::new();
    for (name, path) in &logs {
        if ledger::store::open_elsewhere(path) {
            bar.suspend(|| {
                eprintln!(
                    "note: {name} is open in another process (a running server?): entries written during the audit may show as problems; stop it for a definitive audit"
                )
            });
        }
        bar.set_message(name.clone());
        let report = audit_log(path, &|n| bar.inc(n))?;
        entries += report.entries;
        bytes += report.bytes;
        if let Some(p) = &report.problem {
            bar.abandon();
            for (n, r) in &reports {
                describe(n, r);
            }
            for r in &report.recoverable {
                eprintln!("recoverable: shard {name}: {r}");
            }
            eprintln!("FAILED: shard {name} ({}): {p}", path.display());
            return Ok(ExitCode::from(DAMAGED));
        }
        reports.push((name.clone(), report));
    }
    bar.finish_and_clear();
    for (n, r) in &reports {
        describe(n, r);
    }
    let secs = started.elapsed().as_secs_f64();
    let recoverable: Vec<String> = reports
        .iter()
        .flat_map(|(n, r)| r.recoverable.iter().map(move |x| format!("shard {n}: {x}")))
        .collect();
    if !recoverable.is_empty() {
        for r in &recoverable {
            println!("RECOVERABLE: {r}");
        }
        println!(
            "no damage: {entries} entries checked, every stored block, leaf and signed head matches; the logs are in the state a crash leaves, which opening repairs as said above (`coldtrail verify --recover`, or start the node)"
        );
        return Ok(ExitCode::from(RECOVERABLE));
    }
    println!(
        "verified {} logs: {entries} entries, {} in {secs:.2} s ({}/s); every checksum, leaf hash, tree node, index record and signed head matches",
        logs.len(),
        human_bytes(bytes),
        human_bytes((bytes as f64 / secs.max(1e-9)) as u64)
    );
    Ok(ExitCode::SUCCESS)
}

/// `verify --store postgres://…`: every log in the database recomputed from
/// its rows. Exit codes as [`verify`]: 1 names the first row that does not
/// match, 3 when only signing the newest entries is left (opening does it).
pub fn verify_database(url: &str, data_dir: Option<&Path>, recover: bool) -> Result<ExitCode> {
    let backend = crate::config::backend(Some(url), &crate::config::StoreSettings::default())?;
    let ledger::store::Backend::Postgres(db) = backend.clone() else {
        unreachable!("a store URL gives a database backend");
    };
    if let (true, Some(dir)) = (recover, data_dir) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let node = shards::Node::open(shards::NodeConfig {
                backend,
                ..shards::NodeConfig::new(dir)
            })?;
            node.sign_heads().await?;
            anyhow::Ok(())
        })?;
        println!("opened and closed the node: every log's heads are signed");
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} verifying {bytes} {bytes_per_sec}")
            .expect("static template"),
    );
    let started = Instant::now();
    let reports = ledger::store::postgres::audit_database(&db, None, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    if reports.is_empty() {
        println!("{} holds no coldtrail log", db.display_url());
        return Ok(ExitCode::SUCCESS);
    }
    let (mut entries, mut bytes) = (0, 0);
    let mut unsigned = Vec::new();
    for r in &reports {
        println!(
            "{}: log {}  {} entries, {} signed heads, {} stored ({} of entries)",
            r.name,
            &r.log_id.to_hex()[..16],
            r.entries,
            r.heads,
            human_bytes(r.bytes),
            human_bytes(r.entry_bytes)
        );
        if let Some(h) = r.latest_head {
            println!(
                "    latest signed head: size {}, root {}, signed {}",
                h.head.size,
                h.head.root,
                format_ms(h.head.timestamp_ms)
            );
        }
        if let Some(p) = &r.problem {
            eprintln!("FAILED: log {} in {}: {p}", r.name, db.display_url());
            return Ok(ExitCode::from(DAMAGED));
        }
        if r.unsigned > 0 {
            unsigned.push(format!(
                "log {}: the newest {} entries are not yet under a signed head; opening signs them",
                r.name, r.unsigned
            ));
        }
        entries += r.entries;
        bytes += r.bytes;
    }
    if !unsigned.is_empty() {
        for u in &unsigned {
            println!("RECOVERABLE: {u}");
        }
        return Ok(ExitCode::from(RECOVERABLE));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "verified {} logs in {}: {entries} entries, {} in {secs:.2} s; every row's bytes hash to its id, every subtree root and signed head matches",
        reports.len(),
        db.display_url(),
        human_bytes(bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// Per-log description: sizes, entries by kind, receipts, latest head; then
/// the node's published key sets.
pub fn inspect(data_dir: &Path) -> Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    print_key_sets(data_dir)?;
    if let Some((_, "postgres")) = shards::pinned(data_dir)? {
        let settings = crate::config::Config::load(None, std::env::vars())?;
        let ledger::store::Backend::Postgres(db) = settings.backend()? else {
            anyhow::bail!(
                "{} keeps its logs in PostgreSQL: give the database with COLDTRAIL_STORE_URL",
                data_dir.display()
            );
        };
        for r in ledger::store::postgres::audit_database(&db, None, &|_| {})? {
            let place = format!("{} in {}", r.name, db.display_url());
            let stored = format!(
                "{} stored for {} of entries",
                human_bytes(r.bytes),
                human_bytes(r.entry_bytes)
            );
            let problem = r.problem.as_ref().map(|p| p.to_string());
            code = print_log(
                &r.name,
                &place,
                r.log_id,
                r.entries,
                &stored,
                &r.kinds,
                r.latest_head,
                r.heads,
                problem,
            )
            .max_code(code);
        }
        return Ok(code);
    }
    for (name, path) in find_logs(data_dir)? {
        let r = audit_log(&path, &|_| {})?;
        let stored = format!(
            "{} in {} segments, {} blocks",
            human_bytes(dir_bytes(&path)?),
            r.segments,
            r.blocks
        );
        let problem = r.problem.as_ref().map(|p| p.to_string());
        code = print_log(
            &name,
            &path.display().to_string(),
            r.log_id,
            r.entries,
            &stored,
            &r.kinds,
            r.latest_head,
            r.heads,
            problem,
        )
        .max_code(code);
    }
    Ok(code)
}

/// Exit codes that keep the worse of two.
trait MaxCode {
    fn max_code(self, other: ExitCode) -> ExitCode;
}

impl MaxCode for ExitCode {
    fn max_code(self, other: ExitCode) -> ExitCode {
        if self == ExitCode::SUCCESS {
            other
        } else {
            self
        }
    }
}

/// One log as `inspect` describes it, whichever store keeps it.
#[allow(clippy::too_many_arguments)]
fn print_log(
    name: &str,
    place: &str,
    log_id: ledger::Digest,
    entries: u64,
    stored: &str,
    kinds: &std::collections::BTreeMap<&'static str, u64>,
    latest_head: Option<ledger::SignedTreeHead>,
    heads: u64,
    problem: Option<String>,
) -> ExitCode {
    println!("{name} ({place})");
    println!("    log id          {log_id}");
    println!("    entries         {entries}");
    println!("    stored          {stored}");
    let listed: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "    by kind         {}",
        if listed.is_empty() {
            "-".into()
        } else {
            listed.join(", ")
        }
    );
    println!(
        "    receipts        out {}, in {}",
        kinds.get("receipt-out").unwrap_or(&0),
        kinds.get("receipt-in").unwrap_or(&0)
    );
    match latest_head {
        Some(h) => println!(
            "    latest head     size {} root {} signed {} ({heads} heads in all)",
            h.head.size,
            h.head.root,
            format_ms(h.head.timestamp_ms),
        ),
        None => println!("    latest head     none"),
    }
    match problem {
        Some(p) => {
            println!("    PROBLEM         {p}  (run `coldtrail verify`)");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// The node's key sets (`keys/keysets`), as `/.well-known/coldtrail/keys` serves them.
fn print_key_sets(data_dir: &Path) -> Result<()> {
    let chain = shards::keyset::published(data_dir)?;
    let Some(newest) = chain.last() else {
        println!("key sets        none yet (the node issues one when it first opens)");
        return Ok(());
    };
    println!(
        "key sets        {} (newest: #{} issued {}); pin this operator key:",
        chain.len(),
        newest.set.sequence,
        format_ms(newest.set.issued_at_ms)
    );
    println!(
        "    operator key    {}",
        hex::encode(newest.set.operator_key)
    );
    for k in &newest.set.shards {
        println!(
            "    shard {:<3}       key {}  log id {}",
            k.shard,
            hex::encode(k.public_key),
            k.log_id().map(|d| d.to_hex()).unwrap_or_default()
        );
    }
    for s in chain.iter().rev().skip(1) {
        println!(
            "    earlier #{}      operator key {} issued {}",
            s.set.sequence,
            hex::encode(s.set.operator_key),
            format_ms(s.set.issued_at_ms)
        );
    }
    Ok(())
}
