//! The cosignatures a node collected for its logs' checkpoints, kept in its
//! data directory: per log an append-only file (`cosigned/<log id>.lines`,
//! one `<size> <cosignature line>` record per line, fsync'd before the line
//! is served). A record torn by a crash at the end is cut off at open. The
//! lines are the witnesses' own statements, checked before they are kept.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ledger::Digest;

/// Cosignature lines by log and checkpoint size.
pub struct Cosigned {
    dir: PathBuf,
    logs: Mutex<HashMap<Digest, BTreeMap<u64, Vec<String>>>>,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
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
                .filter(|_| path.extension().is_some_and(|e| e == "lines"))
                .and_then(Digest::from_hex)
            else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            // Whole records only: a torn last one is cut off.
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if whole < bytes.len() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(whole as u64)?;
            }
            let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| invalid(&path, e))?;
            let mut held: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            for record in text.lines() {
                let (size, line) = record
                    .split_once(' ')
                    .and_then(|(s, l)| Some((s.parse::<u64>().ok()?, l)))
                    .ok_or_else(|| {
                        invalid(&path, format!("not a `<size> <line>` record: {record:?}"))
                    })?;
                held.entry(size).or_default().push(format!("{line}\n"));
            }
            logs.insert(id, held);
        }
        Ok(Cosigned {
            dir: dir.to_path_buf(),
            logs: Mutex::new(logs),
        })
    }

    /// Keeps `line` (a checked cosignature line, ending in its newline) for
    /// the checkpoint of `size` of the log `log_id`, durably; a line held
    /// already is not added twice.
    pub fn add(&self, log_id: &Digest, size: u64, line: &str) -> std::io::Result<()> {
        if !line.ends_with('\n') || line[..line.len() - 1].contains('\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a cosignature line is one line ending in a newline",
            ));
        }
        let mut logs = self.logs.lock().expect("cosigned lock");
        let held = logs.entry(*log_id).or_default();
        if held.get(&size).is_some_and(|l| l.iter().any(|x| x == line)) {
            return Ok(());
        }
        let path = self.dir.join(format!("{}.lines", log_id.to_hex()));
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(format!("{size} {line}").as_bytes())?;
        f.sync_data()?;
        if new {
            ledger::durable::sync_dir(&self.dir)?;
        }
        held.entry(size).or_default().push(line.to_string());
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

    /// The checkpoint sizes of the log `log_id` with at least `at_least`
    /// cosignatures held, largest first, at most `limit` of them, with
    /// their lines.
    pub fn newest_first(
        &self,
        log_id: &Digest,
        at_least: usize,
        limit: usize,
    ) -> Vec<(u64, Vec<String>)> {
        self.logs
            .lock()
            .expect("cosigned lock")
            .get(log_id)
            .map(|held| {
                held.iter()
                    .rev()
                    .filter(|(_, lines)| lines.len() >= at_least)
                    .take(limit)
                    .map(|(size, lines)| (*size, lines.clone()))
                    .collect()
            })
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
        assert!(c.add(&log, 5, "two\nlines\n").is_err());
        assert_eq!(c.lines(&log, 5), ["a\n", "b\n"]);
        assert_eq!(c.newest(&log, 1), Some(9));
        assert_eq!(c.newest(&log, 2), Some(5));
        assert_eq!(c.newest(&log, 3), None);
        assert_eq!(
            c.newest_first(&log, 1, 5),
            [
                (9, vec!["a\n".to_string()]),
                (5, vec!["a\n".into(), "b\n".into()])
            ]
        );
        assert_eq!(c.newest_first(&log, 1, 1).len(), 1);
        // A record torn at the end by a crash is cut off; the rest stays.
        let file = dir.path().join(format!("{}.lines", log.to_hex()));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"12 torn")
            .unwrap();
        let again = Cosigned::open(dir.path()).unwrap();
        assert_eq!(again.lines(&log, 5), ["a\n", "b\n"], "kept on disk");
        assert_eq!(again.newest(&log, 1), Some(9));
        again.add(&log, 12, "c\n").unwrap();
        let third = Cosigned::open(dir.path()).unwrap();
        assert_eq!(third.lines(&log, 12), ["c\n"]);
    }
}
