//! The `Store` contract (`contract/mod.rs`) on the embedded store, with
//! small segments and blocks so that every clause crosses their boundaries.

mod common;
mod contract;

use std::path::{Path, PathBuf};

use contract::{Audit, Harness, Place};
use ed25519_dalek::SigningKey;
use ledger::store::format::{self, FrameHeader};
use ledger::store::{EmbeddedStore, Store, StoreError};

struct Embedded;

/// A log directory; the temporary directory holding it is removed when the
/// place is dropped (a child process's place borrows its parent's).
struct Dir {
    path: PathBuf,
    _owner: Option<tempfile::TempDir>,
}

impl Harness for Embedded {
    type Place = Dir;
    fn fresh(&self) -> Dir {
        let owner = tempfile::tempdir().unwrap();
        Dir {
            path: owner.path().join("log"),
            _owner: Some(owner),
        }
    }
    fn max_entry_bytes(&self) -> usize {
        common::small_config().max_entry_bytes
    }
}

impl Place for Dir {
    fn open(&self, key: SigningKey) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(EmbeddedStore::open_or_create(
            &self.path,
            key,
            common::small_config(),
        )?))
    }

    fn locator(&self) -> String {
        self.path.display().to_string()
    }

    fn from_locator(locator: &str) -> Dir {
        Dir {
            path: PathBuf::from(locator),
            _owner: None,
        }
    }

    /// Flips a byte in the compressed payload of the block holding `index`.
    fn alter_entry(&self, index: u64) {
        for seg in segments(&self.path) {
            let mut bytes = std::fs::read(&seg).unwrap();
            for (start, end) in common::blocks(&bytes) {
                let h = FrameHeader::parse(&bytes[start..]).unwrap();
                if (h.first_index..h.first_index + u64::from(h.count)).contains(&index) {
                    let at = start
                        + format::FRAME_HEADER_LEN
                        + (end - start - format::FRAME_HEADER_LEN) / 2;
                    bytes[at] ^= 0x20;
                    std::fs::write(&seg, &bytes).unwrap();
                    return;
                }
            }
        }
        panic!("no block holds entry {index}");
    }

    fn audit(&self) -> Audit {
        let report = common::audit(&self.path);
        match (report.problem, report.recoverable) {
            (Some(p), _) => Audit::Damaged {
                entries: p
                    .entry
                    .map(|e| (e, e + 1))
                    .or(p.block.map(|(_, first, end)| (first, end))),
                what: p.to_string(),
            },
            (None, r) if r.is_empty() => Audit::Intact,
            (None, r) => Audit::Recoverable(r.iter().map(ToString::to_string).collect()),
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

store_contract!(Embedded);
