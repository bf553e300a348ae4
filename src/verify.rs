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
    if recover {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let node = crate::serve::open_node(data_dir, None)?;
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

/// Per-log description: sizes, entries by kind, receipts, latest head; then
/// the node's published key sets.
pub fn inspect(data_dir: &Path) -> Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    print_key_sets(data_dir)?;
    for (name, path) in find_logs(data_dir)? {
        let r = audit_log(&path, &|_| {})?;
        println!("{name} ({})", path.display());
        println!("    log id          {}", r.log_id);
        println!("    entries         {}", r.entries);
        println!(
            "    on disk         {} in {} segments, {} blocks",
            human_bytes(dir_bytes(&path)?),
            r.segments,
            r.blocks
        );
        let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "    by kind         {}",
            if kinds.is_empty() {
                "-".into()
            } else {
                kinds.join(", ")
            }
        );
        println!(
            "    receipts        out {}, in {}",
            r.kinds.get("receipt-out").unwrap_or(&0),
            r.kinds.get("receipt-in").unwrap_or(&0)
        );
        match r.latest_head {
            Some(h) => println!(
                "    latest head     size {} root {} signed {} ({} heads in all)",
                h.head.size,
                h.head.root,
                format_ms(h.head.timestamp_ms),
                r.heads
            ),
            None => println!("    latest head     none"),
        }
        if let Some(p) = r.problem {
            println!("    PROBLEM         {p}  (run `coldtrail verify`)");
            code = ExitCode::from(1);
        }
    }
    Ok(code)
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
