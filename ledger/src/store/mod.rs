//! Where a log's entries live. [`Store`] is the boundary the rest of coldtrail
//! sees; [`EmbeddedStore`] keeps a log in append-only segment files, and
//! `postgres::PgStore` (feature `postgres`) keeps it in PostgreSQL.
//! [`Backend`] says which, for a whole node.
//!
//! Invariants every store keeps:
//! - an append is answered only after the entries are durable (fsync'd);
//! - entry `i` never changes once answered, and indices have no gaps;
//! - no entry is handed out whose checksum failed;
//! - a signed head is handed out only after it is durable itself.

mod audit;
mod embedded;
pub mod format;
mod front;
mod group;
mod ids;
#[cfg(feature = "postgres")]
pub mod postgres;
mod tree;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ed25519_dalek::VerifyingKey;

use crate::hash::Digest;
use crate::head::SignedTreeHead;

pub use audit::{audit_log, floor, AuditProgress, AuditReport, Floor, Problem};
pub use embedded::{open_elsewhere, EmbeddedStore, StoreConfig};

/// Metrics every store records (names as Prometheus wants them, units in
/// the name): entries per group commit, how long each group's fsync (or
/// commit) took, how long appends waited on the queue before their writer
/// took them, and how long signing a head took (signature and its fsync or
/// insert). Together with the acknowledgement time they tell apart where a
/// slow acknowledgement's time went.
pub const GROUP_ENTRIES: &str = "coldtrail_store_group_commit_entries";
pub const FSYNC_SECONDS: &str = "coldtrail_store_fsync_duration_seconds";
pub const QUEUE_WAIT_SECONDS: &str = "coldtrail_store_queue_wait_seconds";
pub const HEAD_SECONDS: &str = "coldtrail_store_head_signing_duration_seconds";
/// Embedded store only: sealing the active segment and starting the next.
pub const ROLL_SECONDS: &str = "coldtrail_store_segment_roll_duration_seconds";

/// Where appended entries landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Index of the first entry; the rest follow without gaps.
    pub first_index: u64,
    /// The entries' ids (Merkle leaf hashes), in order.
    pub ids: Vec<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {what}")]
    Corrupt { path: String, what: String },
    #[error("the store stopped accepting writes after an earlier failure: {0}")]
    Stopped(String),
    #[error("the append queue is full ({0} requests waiting); retry later")]
    QueueFull(usize),
    #[error("entry {index} does not exist (the log has {size} entries)")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("entry of {len} bytes is larger than the {max}-byte limit")]
    EntryTooLarge { len: usize, max: usize },
    #[error("an append needs at least one entry")]
    EmptyAppend,
    #[error(transparent)]
    Proof(#[from] crate::merkle::ProofError),
    #[error("{0}")]
    Config(String),
    #[error("PostgreSQL: {0}")]
    Database(String),
    /// A database failure that a retry may get past (connection lost,
    /// server restarting); the writer retries these for a while.
    #[error("PostgreSQL (retrying may help): {0}")]
    Transient(String),
}

impl StoreError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Checks an append's entries and hashes them (on the caller's thread: the
/// writer's time is for the disk or the database).
pub(crate) fn check_append(
    entries: &[Vec<u8>],
    max_entry_bytes: usize,
) -> Result<Vec<Digest>, StoreError> {
    if entries.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if let Some(e) = entries.iter().find(|e| e.len() > max_entry_bytes) {
        return Err(StoreError::EntryTooLarge {
            len: e.len(),
            max: max_entry_bytes,
        });
    }
    Ok(entries.iter().map(|e| crate::entry::entry_id(e)).collect())
}

/// Which store a node keeps its logs in.
#[derive(Clone, Default)]
pub enum Backend {
    /// A directory per log, beside the node's other files.
    #[default]
    Embedded,
    /// Rows in PostgreSQL, one log per name.
    #[cfg(feature = "postgres")]
    Postgres(std::sync::Arc<postgres::Database>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Embedded => f.write_str("embedded"),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => write!(f, "{}", db.display_url()),
        }
    }
}

impl Backend {
    /// `embedded` or `postgres`, as a node's `NODE` file records it.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens (or creates) a log: in directory `dir` for the embedded store,
    /// as the log called `name` in the database.
    pub fn open(
        &self,
        dir: &std::path::Path,
        name: &str,
        key: ed25519_dalek::SigningKey,
        config: StoreConfig,
    ) -> Result<Box<dyn Store>, StoreError> {
        match self {
            Backend::Embedded => {
                let _ = name;
                Ok(Box::new(EmbeddedStore::open_or_create(dir, key, config)?))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => Ok(Box::new(postgres::PgStore::open(db, name, key, config)?)),
        }
    }
}

/// An answer on its way from the store's writer: an append becoming durable,
/// or a head being signed. Wait for it with [`Pending::wait`] from a thread,
/// or `.await` it from async code.
pub struct Pending<T = Appended>(pub(crate) tokio::sync::oneshot::Receiver<Result<T, StoreError>>);

fn writer_gone<T>() -> Result<T, StoreError> {
    Err(StoreError::Stopped(
        "the writer ended before answering".into(),
    ))
}

impl<T> Pending<T> {
    /// Blocks until answered. Must not be called from inside an async
    /// runtime (await the `Pending` there).
    pub fn wait(self) -> Result<T, StoreError> {
        self.0.blocking_recv().unwrap_or_else(|_| writer_gone())
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| writer_gone()))
    }
}

/// A durable, append-only, provable log of entries.
pub trait Store: Send + Sync {
    /// The log's public key; its id is derived from it.
    fn public_key(&self) -> VerifyingKey;

    /// Queues entries for the next group commit. Refuses at once with
    /// [`StoreError::QueueFull`] when the bounded queue is full.
    fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError>;

    /// Appends and waits until durable.
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<Appended, StoreError> {
        self.submit(entries)?.wait()
    }

    /// Number of durable entries.
    fn len(&self) -> u64;

    /// Requests waiting for the writer (appends and head requests), at most
    /// the queue's depth.
    fn queued(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded entry at `index`, checksum-verified.
    fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError>;

    /// Entries `[from, to)`, checksum-verified.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The id (leaf hash) of entry `index`.
    fn entry_id(&self, index: u64) -> Result<Digest, StoreError>;

    /// The lowest index of an entry with this id.
    fn find(&self, id: &Digest) -> Result<Option<u64>, StoreError>;

    /// The root of the first `size` entries.
    fn root(&self, size: u64) -> Result<Digest, StoreError>;

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, StoreError>;

    /// Consistency proof between the trees of `size1` and `size2` entries.
    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, StoreError>;

    /// Asks for a head over everything committed so far, signed and durably
    /// recorded before it is answered.
    fn request_head(&self) -> Result<Pending<SignedTreeHead>, StoreError>;

    /// Asks for a head over everything committed so far, shared with other
    /// askers: signed within `head_gap` of the log's last head, not at once.
    /// For readers (proofs, the receipt relay): many asks cost one head.
    fn request_head_soon(&self) -> Result<Pending<SignedTreeHead>, StoreError>;

    /// Signs a head and waits for it (not from inside an async runtime).
    fn sign_head(&self) -> Result<SignedTreeHead, StoreError> {
        self.request_head()?.wait()
    }

    /// The newest signed head, if any.
    fn latest_head(&self) -> Option<SignedTreeHead>;

    /// The first head the log signed over at least `size` entries (every
    /// head it signed is kept), or `None` if none covers that many yet.
    fn first_head_covering(&self, size: u64) -> Result<Option<SignedTreeHead>, StoreError>;
}
