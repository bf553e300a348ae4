//! Checkpoints of state derived from the logs, so that a start reads the
//! logs' tails instead of every entry (readings are most of a log and each
//! start would read them all).
//!
//! A checkpoint is a payload some part of the node derived from a prefix of
//! each of the logs it covers, with that prefix named by its size and its
//! Merkle root. `DIR/checkpoints/NAME` holds, little-endian:
//!
//! ```text
//! kind [8]  (what the payload is, and its encoding's version)
//! count u32, then per covered log: shard u32, size u64, root [32]
//! payload length u64, payload
//! checksum [32]  (BLAKE3, checkpoint domain, of everything before it)
//! ```
//!
//! It is written whole (temporary file, fsync, rename, fsync of the
//! directory). Loading checks the kind and the checksum (a torn or altered
//! file), and that each covered log's root at the recorded size is the
//! recorded root: the payload was derived from exactly the entries the log
//! holds now, whatever happened since (a crash, a store restored from a
//! backup, another log put in its place). A checkpoint that fails any check
//! is reported and not used; the caller derives its state from the whole log,
//! as if there were none. A checkpoint is derived, never a record: deleting
//! `checkpoints/` costs one slower start.
//!
//! The checksum finds damage, not forgery: who can write the data directory
//! can write a checkpoint whose checksum holds. What a checkpoint carries is
//! therefore either re-read from the log (and checked there) or state the
//! log's entries would give again (`coldtrail verify` does not trust it).
//!
//! ## Checkpoints (`shards::checkpoint`)
//!
//! Everything a start rebuilds from the logs has a checkpoint under `DIR/checkpoints/`: each
//! shard's sequencer (`sequencer-NNN`), ingest's identity state and eventID index (`ingest`),
//! and the lineage graph's sources (`lineage`). One container for all: a kind tag, per
//! covered log the prefix the payload was derived from (size, and the log's Merkle root at
//! that size), the payload, and a BLAKE3 checksum (checkpoint domain). The server writes them
//! every `checkpoint_interval_ms` (5 minutes) and at a clean stop, atomically
//! (`ledger::durable::replace`: temporary file, fsync, rename, fsync of the directory, the
//! one way every file rewritten whole is written).
//!
//! - A checkpoint is used only if its checksum holds and each covered log's root at the
//!   recorded size is the recorded root: the payload was derived from exactly the entries the
//!   log holds now. Then open reads only the entries after it. Anything else (torn, altered,
//!   another log, a log restored from an older copy) is logged with why and ignored: the state
//!   comes from the whole log. Deleting `checkpoints/` costs one slow start, nothing else.
//! - A checkpoint never claims entries that are not durable: a sequencer's state is taken at
//!   its next index and written only once the log is durable up to there; ingest's and the
//!   graph's come from folds of committed entries only.
//! - The checksum finds damage, not forgery: what a checkpoint carries is either re-read from
//!   the log and checked there (identity and verdict entries, the graph's sources) or what the
//!   entries would give again.

use std::path::{Path, PathBuf};

use ledger::store::{Store, StoreError};
use ledger::{Digest, Domain};

use crate::ShardError;

/// The directory, under a node's data directory, that holds its checkpoints.
pub const DIR: &str = "checkpoints";

/// Where the checkpoint `name` of the node in `data_dir` lives.
pub fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(DIR).join(name)
}

/// The prefix of one log a payload was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    pub shard: u32,
    /// Entries `0..size` of the log.
    pub size: u64,
    /// The log's Merkle root at `size`.
    pub root: Digest,
}

/// The logs a checkpoint is checked against, by shard.
pub trait Logs {
    fn log(&self, shard: u32) -> Option<&dyn Store>;
}

impl Logs for crate::Node {
    fn log(&self, shard: u32) -> Option<&dyn Store> {
        self.shard(shard).ok().map(|s| s.store())
    }
}

/// One log, as shard `.0`.
impl Logs for (u32, &dyn Store) {
    fn log(&self, shard: u32) -> Option<&dyn Store> {
        (shard == self.0).then_some(self.1)
    }
}

/// Why a checkpoint on disk is not used. None of these is damage to the
/// ledger: the state is derived from the logs instead.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("it is not a {0} checkpoint of this version")]
    Kind(String),
    #[error("its checksum does not match: it is torn or was altered")]
    Checksum,
    #[error("it is cut short or malformed")]
    Malformed,
    #[error("it names shard {0}, which this node does not have")]
    NoShard(u32),
    #[error("shard {shard}: it covers {size} entries, but the log holds {len}")]
    Beyond { shard: u32, size: u64, len: u64 },
    #[error("shard {shard}: the log's root at size {size} is not the root it was derived from")]
    Forked { shard: u32, size: u64 },
    #[error("reading it: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
}

/// A payload and the log prefixes it was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub covers: Vec<Covered>,
    pub payload: Vec<u8>,
}

impl Checkpoint {
    /// A checkpoint of `payload`, derived from the first `size` entries of
    /// each `(shard, size)` in `sizes`; the roots are read from `logs`.
    pub fn new(
        logs: &dyn Logs,
        sizes: &[(u32, u64)],
        payload: Vec<u8>,
    ) -> Result<Checkpoint, ShardError> {
        let covers = sizes
            .iter()
            .map(|&(shard, size)| {
                let log = logs.log(shard).ok_or(ShardError::NoSuchShard(shard))?;
                Ok(Covered {
                    shard,
                    size,
                    root: log.root(size)?,
                })
            })
            .collect::<Result<_, ShardError>>()?;
        Ok(Checkpoint { covers, payload })
    }

    /// The size covered on `shard` (0 when it is not covered).
    pub fn size(&self, shard: u32) -> u64 {
        self.covers
            .iter()
            .find(|c| c.shard == shard)
            .map_or(0, |c| c.size)
    }

    fn encode(&self, kind: &[u8; 8]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(8 + 4 + self.covers.len() * 44 + 8 + self.payload.len() + 32);
        out.extend_from_slice(kind);
        out.extend_from_slice(&(self.covers.len() as u32).to_le_bytes());
        for c in &self.covers {
            out.extend_from_slice(&c.shard.to_le_bytes());
            out.extend_from_slice(&c.size.to_le_bytes());
            out.extend_from_slice(&c.root.0);
        }
        out.extend_from_slice(&(self.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        let sum = Domain::Checkpoint.hash(&out);
        out.extend_from_slice(&sum.0);
        out
    }

    fn decode(bytes: &[u8], kind: &[u8; 8]) -> Result<Checkpoint, Unusable> {
        let body_len = bytes.len().checked_sub(32).ok_or(Unusable::Malformed)?;
        let (body, sum) = bytes.split_at(body_len);
        let mut r = Reader(body);
        if r.take(8).ok_or(Unusable::Malformed)? != kind {
            return Err(Unusable::Kind(String::from_utf8_lossy(kind).into_owned()));
        }
        if Domain::Checkpoint.hash(body).0 != sum {
            return Err(Unusable::Checksum);
        }
        let parse = |r: &mut Reader| -> Option<Checkpoint> {
            let count = r.u32()? as usize;
            // Each covered log takes 44 bytes: the count cannot exceed what is there.
            if count > r.0.len() / 44 {
                return None;
            }
            let mut covers = Vec::with_capacity(count);
            for _ in 0..count {
                covers.push(Covered {
                    shard: r.u32()?,
                    size: r.u64()?,
                    root: Digest(r.take(32)?.try_into().ok()?),
                });
            }
            let len = usize::try_from(r.u64()?).ok()?;
            let payload = r.take(len)?.to_vec();
            r.0.is_empty().then_some(Checkpoint { covers, payload })
        };
        parse(&mut r).ok_or(Unusable::Malformed)
    }

    /// Writes the checkpoint durably to `path`, replacing what was there.
    pub fn save(&self, path: &Path, kind: &[u8; 8]) -> Result<(), ShardError> {
        let dir = path.parent().expect("a checkpoint lives in a directory");
        std::fs::create_dir_all(dir).map_err(|e| ShardError::io(dir, e))?;
        write_atomic(path, &self.encode(kind))
    }

    /// The checkpoint at `path`, checked against `logs`; `Ok(None)` when
    /// there is none.
    pub fn load(
        path: &Path,
        kind: &[u8; 8],
        logs: &dyn Logs,
    ) -> Result<Option<Checkpoint>, Unusable> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let checkpoint = Checkpoint::decode(&bytes, kind)?;
        for c in &checkpoint.covers {
            let log = logs.log(c.shard).ok_or(Unusable::NoShard(c.shard))?;
            let len = log.len();
            if c.size > len {
                return Err(Unusable::Beyond {
                    shard: c.shard,
                    size: c.size,
                    len,
                });
            }
            if log.root(c.size)? != c.root {
                return Err(Unusable::Forked {
                    shard: c.shard,
                    size: c.size,
                });
            }
        }
        Ok(Some(checkpoint))
    }

    /// [`Checkpoint::load`], for callers that derive their state from the
    /// whole log when there is no usable checkpoint: an unusable one is
    /// logged (with why) and treated as absent.
    pub fn load_or_scan(path: &Path, kind: &[u8; 8], logs: &dyn Logs) -> Option<Checkpoint> {
        match Checkpoint::load(path, kind, logs) {
            Ok(c) => c,
            Err(why) => {
                tracing::warn!(checkpoint = %path.display(), %why, "checkpoint not used; reading the whole log instead");
                None
            }
        }
    }
}

/// Reads a payload's little-endian fields in order; `None` past its end.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Replaces `path` with `bytes` durably: a crash leaves the old file or the
/// new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShardError> {
    ledger::durable::replace(path, bytes, ledger::durable::Mode::Shared)
        .map_err(|e| ShardError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::store::{EmbeddedStore, StoreConfig};

    const KIND: &[u8; 8] = b"CTTESTv1";

    fn log(dir: &Path, n: usize) -> EmbeddedStore {
        let store = EmbeddedStore::open_or_create(
            dir,
            ledger::keys::generate().unwrap(),
            StoreConfig::default(),
        )
        .unwrap();
        for i in 0..n {
            store
                .append(vec![format!("entry {i}").into_bytes()])
                .unwrap();
        }
        store
    }

    #[test]
    fn a_checkpoint_round_trips_and_refuses_every_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = log(&dir.path().join("log"), 40);
        let logs = (3u32, &store as &dyn Store);
        let c = Checkpoint::new(&logs, &[(3, 37)], b"derived state".to_vec()).unwrap();
        let p = path(dir.path(), "test");
        c.save(&p, KIND).unwrap();
        assert_eq!(Checkpoint::load(&p, KIND, &logs).unwrap(), Some(c.clone()));
        assert_eq!(c.size(3), 37);
        assert_eq!(c.size(0), 0);
        let bytes = std::fs::read(&p).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Checkpoint::decode(&b, KIND).is_err(), "flip at {i}");
        }
        for cut in 0..bytes.len() {
            assert!(
                Checkpoint::decode(&bytes[..cut], KIND).is_err(),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            Checkpoint::decode(&bytes, b"CTTESTv2"),
            Err(Unusable::Kind(_))
        ));
        assert!(Checkpoint::load(&path(dir.path(), "absent"), KIND, &logs)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_checkpoint_is_refused_by_another_log_or_past_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = log(&dir.path().join("a"), 20);
        let logs = (0u32, &store as &dyn Store);
        let p = path(dir.path(), "test");
        // Covering more than the log holds (the log lost its tail: it was
        // restored from an older copy).
        let mut c = Checkpoint::new(&logs, &[(0, 20)], vec![]).unwrap();
        c.covers[0].size = 21;
        c.save(&p, KIND).unwrap();
        assert!(matches!(
            Checkpoint::load(&p, KIND, &logs),
            Err(Unusable::Beyond {
                shard: 0,
                size: 21,
                len: 20
            })
        ));
        // Another log with as many entries, but other ones.
        let other = EmbeddedStore::open_or_create(
            &dir.path().join("b"),
            ledger::keys::generate().unwrap(),
            StoreConfig::default(),
        )
        .unwrap();
        for i in 0..20 {
            other
                .append(vec![format!("other {i}").into_bytes()])
                .unwrap();
        }
        Checkpoint::new(&logs, &[(0, 20)], vec![])
            .unwrap()
            .save(&p, KIND)
            .unwrap();
        assert!(matches!(
            Checkpoint::load(&p, KIND, &(0u32, &other as &dyn Store)),
            Err(Unusable::Forked { shard: 0, size: 20 })
        ));
        assert!(matches!(
            Checkpoint::load(&p, KIND, &(1u32, &store as &dyn Store)),
            Err(Unusable::NoShard(0))
        ));
        // The log grew since: the checkpoint still covers a prefix of it.
        store.append(vec![b"later".to_vec()]).unwrap();
        assert!(Checkpoint::load(&p, KIND, &logs).unwrap().is_some());
    }
}
