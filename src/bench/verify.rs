//! `bench --only verify`: the audit behind `coldtrail verify` against its
//! physical floor on the same bytes in the same run (issue 30, item 10):
//! `ledger::store::floor` reads every segment, checksums, lz4-decodes and
//! BLAKE3-hashes every block on all cores, and checks nothing. Audit and
//! floor alternate over the rounds, so the machine's noise falls on both;
//! the first round also warms the page cache.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ledger::store::{audit_log, floor};

use super::{row, si};
use crate::logs::find_logs;

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

pub fn run(data_dir: &Path, rounds: usize) -> Result<()> {
    let logs = find_logs(data_dir)?;
    if logs.is_empty() {
        bail!("{} holds no log", data_dir.display());
    }
    let mut ratios = Vec::new();
    for round in 1..=rounds.max(1) {
        let t = Instant::now();
        let (mut bytes, mut entries) = (0, 0);
        for (name, path) in &logs {
            let report = audit_log(path, &|_| {})?;
            if let Some(p) = report.problem {
                bail!(
                    "{name}: the audit found a problem, so the figure would not be an audit's: {p}"
                );
            }
            bytes += report.bytes;
            entries += report.entries;
        }
        let audit = t.elapsed();
        let t = Instant::now();
        let mut segment_bytes = 0;
        for (_, path) in &logs {
            segment_bytes += floor(path)?.bytes;
        }
        let floor_time = t.elapsed();
        // The audit also reads the derived files (index, leaves, heads), the
        // floor only the segments: rates are of each one's own bytes, and
        // the ratio is of times over the segments both decode.
        let ratio = floor_time.as_secs_f64() / audit.as_secs_f64().max(1e-9);
        ratios.push(ratio);
        row(
            &format!("verify, round {round}: audit"),
            format!("{:.0} MiB/s", mib_per_s(bytes, audit)),
            format!(
                "{:.2} s, {}entries, {} logs",
                audit.as_secs_f64(),
                si(entries as f64),
                logs.len()
            ),
        );
        row(
            &format!("verify, round {round}: floor"),
            format!("{:.0} MiB/s", mib_per_s(segment_bytes, floor_time)),
            format!(
                "{:.2} s; audit at {ratio:.2}x the floor (goal >= 0.9x)",
                floor_time.as_secs_f64()
            ),
        );
    }
    ratios.sort_by(f64::total_cmp);
    row(
        "verify: audit against its floor, median",
        format!("{:.2}x", ratios[ratios.len() / 2]),
        "time of the floor over time of the audit, same bytes, same run".into(),
    );
    Ok(())
}
