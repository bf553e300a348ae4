//! A bounded, durable journal of JSON records: one line per record,
//! appended and fsync'd before the caller answers anyone, read back at start.
//! What ingest must remember across restarts but is not ledger content
//! (idempotent answers, capture jobs) lives in one.
//!
//! A crash can tear the last line; it is skipped (its caller never answered).
//! Only the newest `keep` records are read back, and opening rewrites the
//! file with just those when it holds more than twice as many, so the file
//! stays within a constant factor of what is kept.
//!
//! Appends commit as a group: concurrent callers each write their line, and
//! one `fdatasync` makes every line written before it durable, so N callers
//! waiting together pay about one flush, not N in a row.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct Journal<T> {
    path: PathBuf,
    tail: Mutex<Tail>,
    /// A second handle on the same file, so a flush does not hold `tail`
    /// (writers go on appending while it runs).
    sync: File,
    /// Lines written so far (set under `tail`, after the write completed).
    written: AtomicU64,
    /// Lines known durable; its lock is held for the length of a flush.
    synced: Mutex<u64>,
    /// Set when a flush failed: what it should have made durable may be lost
    /// and a later flush cannot tell (the kernel may have dropped the dirty
    /// pages), so nothing is promised any more.
    failed: AtomicBool,
    _records: PhantomData<fn(T)>,
}

struct Tail {
    file: File,
    /// Bytes of whole lines: a failed write is cut back to here, so it never
    /// tears the line after it.
    len: u64,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens (or creates) the journal at `path`: the newest `keep` whole
    /// records, oldest first.
    pub fn open(path: &Path, keep: usize) -> std::io::Result<(Journal<T>, Vec<T>)> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // Only lines ended by a newline are whole: a torn last line is not
        // read, and is cut off before anything is appended after it.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut records = std::collections::VecDeque::new();
        let mut lines = 0usize;
        for line in bytes[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            lines += 1;
            if let Ok(r) = serde_json::from_slice::<T>(line) {
                if records.len() == keep {
                    records.pop_front();
                }
                records.push_back(r);
            }
        }
        let records: Vec<T> = records.into();
        let compact = lines > 2 * keep.max(1);
        if compact {
            // Rewritten with whole records only: a torn tail goes too.
            rewrite(path, &records)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if !compact && whole != bytes.len() {
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        let len = file.metadata()?.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                sync: file.try_clone()?,
                tail: Mutex::new(Tail { file, len }),
                written: AtomicU64::new(0),
                synced: Mutex::new(0),
                failed: AtomicBool::new(false),
                _records: PhantomData,
            },
            records,
        ))
    }

    /// Appends `record` durably (written and fsync'd) before returning.
    pub fn append(&self, record: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        self.check()?;
        let mine = {
            let mut tail = self.tail.lock().expect("journal lock");
            if let Err(e) = tail.file.write_all(line.as_bytes()) {
                // Part of the line may be in the file: cut it off, or stop
                // promising anything if even that fails.
                if tail.file.set_len(tail.len).is_err() {
                    self.failed.store(true, Ordering::Release);
                }
                return Err(e);
            }
            tail.len += line.len() as u64;
            let n = self.written.load(Ordering::Relaxed) + 1;
            self.written.store(n, Ordering::Release);
            n
        };
        let mut synced = self.synced.lock().expect("journal sync lock");
        self.check()?;
        if *synced < mine {
            // Every line counted in `written` now was written before this
            // flush starts, so the flush makes all of them durable.
            let upto = self.written.load(Ordering::Acquire);
            if let Err(e) = self.sync.sync_data() {
                self.failed.store(true, Ordering::Release);
                return Err(e);
            }
            *synced = upto;
        }
        Ok(())
    }

    fn check(&self) -> std::io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(std::io::Error::other(format!(
                "{}: an earlier write or flush failed; restart to reopen it",
                self.path.display()
            )));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replaces the file with `records`, atomically (a crash leaves the old
/// file or the new one, never a mix).
fn rewrite<T: Serialize>(path: &Path, records: &[T]) -> std::io::Result<()> {
    ledger::durable::replace_with(path, ledger::durable::Mode::Shared, |f| {
        let mut f = std::io::BufWriter::new(f);
        for r in records {
            let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
            writeln!(f, "{line}")?;
        }
        f.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_torn_lines_are_skipped_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, old) = Journal::<(u32, String)>::open(&path, 3).unwrap();
        assert!(old.is_empty());
        for i in 0..10 {
            j.append(&(i, format!("r{i}"))).unwrap();
        }
        drop(j);
        // A crash mid-append: half a line at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"[10,\"r1").unwrap();
        drop(f);
        let (j, kept) = Journal::<(u32, String)>::open(&path, 3).unwrap();
        assert_eq!(
            kept,
            vec![(7, "r7".into()), (8, "r8".into()), (9, "r9".into())]
        );
        // Opening compacted the file to what it keeps.
        let lines = fs::read_to_string(j.path()).unwrap().lines().count();
        assert_eq!(lines, 3);
        j.append(&(11, "r11".into())).unwrap();
        let (_, kept) = Journal::<(u32, String)>::open(&path, 3).unwrap();
        assert_eq!(kept.last(), Some(&(11, "r11".into())));
    }

    #[test]
    fn concurrent_appends_are_all_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, _) = Journal::<(u32, u32)>::open(&path, 10_000).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..100 {
                        j.append(&(t, i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(*j.synced.lock().unwrap(), 800);
        drop(j);
        let (_, mut kept) = Journal::<(u32, u32)>::open(&path, 10_000).unwrap();
        kept.sort();
        let all: Vec<(u32, u32)> = (0..8).flat_map(|t| (0..100).map(move |i| (t, i))).collect();
        assert_eq!(kept, all);
    }

    #[test]
    fn a_record_appended_after_a_torn_line_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, _) = Journal::<u32>::open(&path, 100).unwrap();
        j.append(&1).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"12").unwrap(); // torn: no newline
        drop(f);
        let (j, kept) = Journal::<u32>::open(&path, 100).unwrap();
        assert_eq!(kept, vec![1]);
        j.append(&3).unwrap();
        let (_, kept) = Journal::<u32>::open(&path, 100).unwrap();
        assert_eq!(kept, vec![1, 3]);
    }
}
