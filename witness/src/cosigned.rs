//! The cosignatures a node collected for its logs' checkpoints, kept in its
//! data directory (`cosigned/<log id>.json`: checkpoint size -> cosignature
//! lines), each file replaced durably before a new line is served.
//! Derived only in the sense that witnesses could be asked again; the lines
//! themselves are the witnesses' statements, checked before they are kept.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ledger::Digest;

/// Cosignature lines by log and checkpoint size.
pub struct Cosigned {
    dir: PathBuf,
    logs: Mutex<HashMap<Digest, BTreeMap<u64, Vec<String>>>>,
}

impl Cosigned {
    /// The store in `dir` (made when missing), with what it holds.
    pub fn open(dir: &Path) -> std::io::Result<Cosigned> {
        std::fs::create_dir_all(dir)?;
        let mut logs = HashMap::new();
        for f in std::fs::read_dir(dir)? {
            let path = f?.path();
            let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|_| path.extension().is_some_and(|e| e == "json"))
                .and_then(Digest::from_hex)
            else {
                continue;
            };
            let held: BTreeMap<u64, Vec<String>> = serde_json::from_slice(&std::fs::read(&path)?)
                .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            logs.insert(id, held);
        }
        Ok(Cosigned {
            dir: dir.to_path_buf(),
            logs: Mutex::new(logs),
        })
    }

    /// Keeps `line` (a checked cosignature) for the checkpoint of `size` of
    /// the log `log_id`, durably; a line held already is not added twice.
    pub fn add(&self, log_id: &Digest, size: u64, line: &str) -> std::io::Result<()> {
        let mut logs = self.logs.lock().expect("cosigned lock");
        let mut held = logs.get(log_id).cloned().unwrap_or_default();
        let lines = held.entry(size).or_default();
        if lines.iter().any(|l| l == line) {
            return Ok(());
        }
        lines.push(line.to_string());
        let path = self.dir.join(format!("{}.json", log_id.to_hex()));
        let bytes = serde_json::to_vec_pretty(&held).expect("maps of strings serialise");
        ledger::durable::replace(&path, &bytes, ledger::durable::Mode::Shared)?;
        logs.insert(*log_id, held);
        Ok(())
    }

    /// The cosignature lines held for the checkpoint of `size`.
    pub fn lines(&self, log_id: &Digest, size: u64) -> Vec<String> {
        self.logs
            .lock()
            .expect("cosigned lock")
            .get(log_id)
            .and_then(|h| h.get(&size).cloned())
            .unwrap_or_default()
    }

    /// The largest checkpoint size of the log `log_id` with at least
    /// `at_least` cosignatures held.
    pub fn newest(&self, log_id: &Digest, at_least: usize) -> Option<u64> {
        self.logs
            .lock()
            .expect("cosigned lock")
            .get(log_id)?
            .iter()
            .rev()
            .find(|(_, lines)| lines.len() >= at_least)
            .map(|(size, _)| *size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_once_durably_and_found_by_size_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = ledger::Domain::LogId.hash(b"log");
        let c = Cosigned::open(dir.path()).unwrap();
        c.add(&log, 5, "a\n").unwrap();
        c.add(&log, 9, "a\n").unwrap();
        c.add(&log, 5, "b\n").unwrap();
        c.add(&log, 5, "b\n").unwrap();
        assert_eq!(c.lines(&log, 5), ["a\n", "b\n"]);
        assert_eq!(c.newest(&log, 1), Some(9));
        assert_eq!(c.newest(&log, 2), Some(5));
        assert_eq!(c.newest(&log, 3), None);
        let again = Cosigned::open(dir.path()).unwrap();
        assert_eq!(again.lines(&log, 5), ["a\n", "b\n"], "kept on disk");
    }
}
