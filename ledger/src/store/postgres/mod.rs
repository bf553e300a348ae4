//! The PostgreSQL store: the same log, proofs and heads as the embedded
//! store, kept in a database operators already run (backups, replicas,
//! point-in-time recovery).
//!
//! One [`Database`] per process owns a small tokio runtime, a pool of reader
//! connections and the schema (migrated at connect). Each log is a row of
//! `coldtrail_logs`, found by name; its [`PgStore`] has one writer task with
//! its own connection, which holds a session advisory lock on the log (one
//! process writes a log, as the embedded store's `LOG` lock ensures).
//!
//! Group commit: the writer drains what has queued and writes it as one
//! transaction (entries, and the roots of the 16-entry runs it completes),
//! committed with `synchronous_commit = on`; only then are waiters answered
//! and the in-memory tree extended. A transaction that fails, or a
//! connection that drops mid-group, is retried whole after reconnecting
//! (inserts skip rows already there, and a group found committed is checked
//! id by id), for at most `retry_for`; after that the store stops, as the
//! embedded store does after a failed fsync: the shard above has numbered
//! the group and cannot renumber it.
//!
//! Reads never trust a row alone: an entry's bytes must hash to its stored
//! id, and the ids of every complete 16-entry run read must hash to the
//! run's root held in memory (loaded at open and checked against the latest
//! signed head), so a row changed with plain SQL is refused, not handed out.
//! `coldtrail verify --store postgres://…` ([`audit_database`]) recomputes
//! everything from the rows.
//!
//! By job: `connection.rs` (configuration, the `Database`, connecting,
//! failures and retries, the log's lock), `rows.rs` (row codecs and
//! inserts), `open.rs`, `writer.rs` (the writer task), `store_impl.rs` (the
//! `Store` trait and reads), `audit.rs`, `schema.rs` (migrations),
//! `cluster.rs` (throwaway clusters for tests); this file holds the types
//! they share.
//!
//! ## The PostgreSQL store (`ledger::store::postgres`, feature `postgres`)
//!
//! `Backend` (in `store/mod.rs`) says where a node's logs live; `Node::open` asks it for each
//! shard's `Box<dyn Store>`, which `Shard::open` takes; nothing above knows which. `postgres::Database` is one per process: a
//! two-thread tokio runtime, a deadpool of reader connections, the schema (migrated at connect,
//! `schema.rs`). Sync `Store` calls run their query on that runtime and wait on a channel, so
//! they work from any thread, async or not.
//!
//! 1. `submit` hashes on the caller's thread and queues (bounded; full: `QueueFull`), as the
//!    embedded store does.
//! 2. Each log's writer task owns a connection holding the log's session advisory lock. It
//!    drains the queue and writes the group in one transaction: entries by `unnest` of arrays,
//!    and the root of every 16-entry run the group completes; `synchronous_commit = on`.
//! 3. Only after `COMMIT`: the in-memory tree grows, waiters are answered, heads are signed
//!    (as in the embedded store: `head_interval`, asks, `head_gap`, open and close) and inserted
//!    before being handed out.
//! 4. A failure is retried whole after reconnecting (and relocking) for `retry_for`: inserts
//!    skip rows already there; if all were there, the ids are compared (an earlier try
//!    committed before its answer was lost). Past `retry_for` the store stops, as the embedded
//!    store stops after a failed fsync: the shard above has already numbered the group.
//!
//! Open reads `size / 16` run roots and the tail's ids, and checks the root against the latest
//! signed head (O(size/16), like the embedded store). Reads check every body against its id and
//! every run of ids against the run root in memory; the audit (`postgres/audit.rs`) streams all
//! rows in one REPEATABLE READ snapshot and names the first row that does not match.
//! `postgres/cluster.rs` starts throwaway clusters (initdb, pg_ctl) for tests and benchmarks.

mod audit;
pub mod cluster;
mod connection;
mod open;
mod rows;
mod schema;
mod store_impl;
mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

/// An owned query parameter (reads run on the database's runtime).
pub(crate) type Param = Box<dyn ToSql + Send + Sync>;

use super::front::{Front, Gate};
use super::group::{head_due, head_wait, Group, Request};
use super::tree::{chunk_root, LeafSource, StoredTree};
use super::{Pending, Store, StoreConfig, StoreError, FSYNC_SECONDS, GROUP_ENTRIES};
use crate::entry::entry_id;
use crate::hash::Digest;
use crate::head::{log_id, SignedTreeHead, TreeHead};

pub use audit::{audit_database, PgAudit, PgProblem};
use connection::*;
pub use connection::{is_postgres_url, PgConfig};
use rows::*;
pub use schema::{latest_version, Migrated};

/// Entries per 16-entry run (the tree level whose roots are stored).
const RUN: u64 = 1 << super::format::NODE_LEVEL;

/// Class of the per-log session advisory locks ("ctlg"); the log number is
/// the second key.
const LOG_LOCK_CLASS: i32 = 0x6374_6c67;

/// Body codecs (`coldtrail_entries.codec`).
const CODEC_RAW: i16 = 0;
const CODEC_LZ4: i16 = 1;

/// One process's connection to the database: a runtime to drive it, a pool
/// of reader connections, the settings writers connect with.
pub struct Database {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: deadpool_postgres::Pool,
    pg: tokio_postgres::Config,
    config: PgConfig,
    migrated: Migrated,
}

/// Leaf hashes straight from `coldtrail_entries.id` (the tree checks each
/// complete run against its root).
struct PgLeaves {
    db: Arc<Database>,
    log: i32,
    name: String,
    /// The last run of leaf hashes read: a proof asks for the same run once
    /// per level below 16 leaves, and a stored leaf never changes.
    last: Mutex<Option<(u64, Vec<Digest>)>>,
}

struct State {
    tree: StoredTree<PgLeaves>,
    latest_head: Option<SignedTreeHead>,
}

struct Shared {
    db: Arc<Database>,
    log: i32,
    name: String,
    key: VerifyingKey,
    state: RwLock<State>,
    /// Stopped when a group could not be committed within `retry_for`.
    gate: Arc<Gate>,
    max_entry_bytes: usize,
}

/// A log in PostgreSQL. Dropping it finishes queued appends, signs a head
/// over them, and releases the log.
pub struct PgStore {
    shared: Arc<Shared>,
    front: Front<mpsc::Sender<Request>>,
    /// Told when the writer has finished (a `Mutex` only to make the store `Sync`).
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.front.close();
        if let Some(done) = self.done.get_mut().ok().and_then(Option::take) {
            // The writer finishes queued appends and signs a last head.
            let _ = done.recv_timeout(self.shared.db.config.retry_for + Duration::from_secs(5));
        }
    }
}

/// What opening a log read.
struct Opened {
    client: Client,
    log: i32,
    size: u64,
    runs: Vec<Digest>,
    tail: Vec<Digest>,
    latest_head: Option<SignedTreeHead>,
    head_seq: i64,
}

struct Writer {
    shared: Arc<Shared>,
    key: SigningKey,
    log_id: Digest,
    config: StoreConfig,
    /// The writer's own connection, holding the log's advisory lock; `None`
    /// after it failed, until reconnected.
    client: Option<Client>,
    head_seq: i64,
    last_head_at: Instant,
}

/// One group's rows, as the arrays the inserts unnest.
struct GroupRows {
    log: i32,
    idx: Vec<i64>,
    ids: Vec<Vec<u8>>,
    codecs: Vec<i16>,
    bodies: Vec<Vec<u8>>,
    runs: Vec<i64>,
    roots: Vec<Vec<u8>>,
}
