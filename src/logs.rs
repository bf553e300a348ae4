//! Finding the logs under a data directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ledger::store::format::META_FILE;

/// The logs in `dir`: `dir` itself if it holds one, else each subdirectory
/// that does (a node keeps one per shard), by name.
pub fn find_logs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    if dir.join(META_FILE).is_file() {
        let name = dir
            .file_name()
            .map_or_else(|| ".".into(), |n| n.to_string_lossy().into_owned());
        return Ok(vec![(name, dir.to_path_buf())]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.join(META_FILE).is_file() {
            out.push((
                p.file_name()
                    .expect("a directory entry has a name")
                    .to_string_lossy()
                    .into_owned(),
                p,
            ));
        }
    }
    out.sort();
    if out.is_empty() {
        bail!(
            "{} holds no coldtrail log (no {META_FILE} file in it or in a subdirectory)",
            dir.display()
        );
    }
    Ok(out)
}

/// Total bytes of the files in `dir` (one level).
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        n += e?.metadata()?.len();
    }
    Ok(n)
}

pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

pub fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
