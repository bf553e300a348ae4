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
mod schema;

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
pub use schema::{latest_version, Migrated};

/// Entries per 16-entry run (the tree level whose roots are stored).
const RUN: u64 = 1 << super::format::NODE_LEVEL;

/// Class of the per-log session advisory locks ("ctlg"); the log number is
/// the second key.
const LOG_LOCK_CLASS: i32 = 0x6374_6c67;

/// Body codecs (`coldtrail_entries.codec`).
const CODEC_RAW: i16 = 0;
const CODEC_LZ4: i16 = 1;

/// How the store reaches PostgreSQL. Every wait is bounded.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db` or key-value form (TLS is not
    /// supported: use a local socket or a trusted network).
    pub url: String,
    /// Reader connections in the pool.
    pub pool_size: usize,
    /// Connecting, and waiting for a pooled connection, give up after this.
    pub connect_timeout: Duration,
    /// A statement running longer is cancelled by the server.
    pub statement_timeout: Duration,
    /// The writer retries a failed group (reconnecting) for this long, then
    /// stops the store.
    pub retry_for: Duration,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(60),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// Is this store location a PostgreSQL URL?
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A PostgreSQL error with what we were doing, and the server's code and
/// message when it sent one.
pub(crate) fn db_error(doing: &str, e: tokio_postgres::Error) -> StoreError {
    let detail = match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                s.push_str(": ");
                s.push_str(&x.to_string());
                src = x.source();
            }
            s
        }
    };
    StoreError::Database(format!("{doing}: {detail}"))
}

/// Whether retrying after a reconnect can help: the connection is gone, or
/// the server is shutting down, starting, out of resources, or aborted the
/// transaction for a conflict.
fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Transient(_))
}

fn classify(doing: &str, e: tokio_postgres::Error) -> StoreError {
    let retry = match e.code() {
        None => true,
        Some(c) => matches!(&c.code()[..2], "08" | "57" | "53" | "40"),
    };
    let err = db_error(doing, e);
    match err {
        StoreError::Database(what) if retry => StoreError::Transient(what),
        other => other,
    }
}

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

impl Database {
    /// Connects, and brings the schema up to date (refusing a newer one).
    pub fn connect(config: PgConfig) -> Result<Arc<Database>, StoreError> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::Config(format!(
                "the PostgreSQL URL does not parse ({e}); expected postgres://user@host:port/database"
            ))
        })?;
        pg.connect_timeout(config.connect_timeout);
        // Every commit waits for the WAL flush, whatever the server's
        // default: an acknowledged entry must survive a server crash.
        let options = format!(
            "{} -c synchronous_commit=on -c statement_timeout={}",
            pg.get_options().unwrap_or(""),
            config.statement_timeout.as_millis()
        );
        pg.options(options.trim());
        pg.application_name("coldtrail");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ledger-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("starting its runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = deadpool_postgres::Manager::from_config(
            pg.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("the PostgreSQL pool: {e}")))?;
        let mut db = Database {
            runtime: Some(runtime),
            handle,
            pool,
            pg,
            config,
            migrated: Migrated {
                from: 0,
                applied: Vec::new(),
            },
        };
        let pg = db.pg.clone();
        db.migrated = db.run(async move {
            let mut client = connect(&pg).await?;
            schema::migrate(&mut client).await
        })?;
        Ok(Arc::new(db))
    }

    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        let mut s = String::from("postgres://");
        if let Some(u) = self.pg.get_user() {
            s.push_str(u);
            s.push('@');
        }
        for h in self.pg.get_hosts() {
            match h {
                tokio_postgres::config::Host::Tcp(h) => s.push_str(h),
                tokio_postgres::config::Host::Unix(p) => s.push_str(&p.display().to_string()),
            }
        }
        if let Some(p) = self.pg.get_ports().first() {
            s.push_str(&format!(":{p}"));
        }
        s.push('/');
        s.push_str(self.pg.get_dbname().unwrap_or(""));
        s
    }

    /// What connecting found and applied.
    pub fn migrated(&self) -> &Migrated {
        &self.migrated
    }

    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// Runs `fut` on the database's runtime and waits for it: callable from
    /// any thread, async or not, except the database runtime's own.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Stopped("the database runtime ended".into())))
    }

    async fn reader(
        pool: &deadpool_postgres::Pool,
    ) -> Result<deadpool_postgres::Object, StoreError> {
        pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => classify("connecting", e),
            other => StoreError::Transient(format!("waiting for a pooled connection: {other}")),
        })
    }

    /// Runs a read on a pooled connection. A transient failure (a pooled
    /// connection the server closed on restart, a server starting) is
    /// retried on a fresh connection for up to `connect_timeout`.
    pub(crate) fn query(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let (pool, limit) = (self.pool.clone(), self.config.connect_timeout);
        self.run(async move {
            let mut retry = Retry::new(limit);
            loop {
                let res = async {
                    let c = Database::reader(&pool).await?;
                    let p: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    c.query(sql, &p).await.map_err(|e| classify(what, e))
                }
                .await;
                match res {
                    Ok(rows) => return Ok(rows),
                    Err(e) => retry.pause(what, e).await?,
                }
            }
        })
    }

    /// The logs in the database: `(name, public key, entries)`.
    pub fn logs(&self) -> Result<Vec<(String, VerifyingKey, u64)>, StoreError> {
        let rows = self.query(
            "listing logs",
            "SELECT l.name, l.public_key,
                    coalesce((SELECT max(e.idx) + 1 FROM coldtrail_entries e WHERE e.log = l.log), 0)
             FROM coldtrail_logs l ORDER BY l.name",
            Vec::new(),
        )?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let key = verifying_key(r.get(1), &name)?;
                Ok((name, key, r.get::<_, i64>(2) as u64))
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Not a blocking shutdown: the last handle may be dropped on an
        // async thread, where blocking is refused.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn verifying_key(bytes: &[u8], log: &str) -> Result<VerifyingKey, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| StoreError::Corrupt {
            path: format!("coldtrail_logs row {log}"),
            what: "public_key is not an ed25519 key".into(),
        })
}

/// A connection of its own (not pooled), driven on the current runtime.
async fn connect(pg: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, conn) = pg
        .connect(NoTls)
        .await
        .map_err(|e| classify("connecting", e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn digest(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Digest, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(Digest)
        .map_err(|_| StoreError::Corrupt {
            path: what(),
            what: "not a 32-byte hash".into(),
        })
}

/// An entry's stored form: lz4 when that saves an eighth or more.
fn encode_body(entry: &[u8]) -> (i16, Vec<u8>) {
    if entry.len() >= 64 {
        let c = lz4_flex::compress_prepend_size(entry);
        if c.len() <= entry.len() - entry.len() / 8 {
            return (CODEC_LZ4, c);
        }
    }
    (CODEC_RAW, entry.to_vec())
}

fn decode_body(codec: i16, body: &[u8], max: usize) -> Result<Vec<u8>, &'static str> {
    match codec {
        CODEC_RAW => Ok(body.to_vec()),
        CODEC_LZ4 => {
            let len = body
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or("compressed body is cut short")?;
            if len > max {
                return Err("compressed body claims more bytes than an entry may hold");
            }
            lz4_flex::decompress_size_prepended(body)
                .map_err(|_| "compressed body does not decompress")
        }
        _ => Err("unknown codec"),
    }
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

impl LeafSource for PgLeaves {
    fn leaves(&self, start: u64, n: u64) -> std::io::Result<Vec<Digest>> {
        if let Some((at, cached)) = &*self.last.lock().expect("leaf cache lock") {
            if *at == start && cached.len() as u64 == n {
                return Ok(cached.clone());
            }
        }
        let rows = self
            .db
            .query(
                "reading leaf hashes",
                "SELECT idx, id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                vec![Box::new(self.log), Box::new(start as i64), Box::new((start + n) as i64)],
            )
            .map_err(std::io::Error::other)?;
        let name = &self.name;
        let mut out = Vec::with_capacity(rows.len());
        for (r, want) in rows.iter().zip(start..) {
            let idx: i64 = r.get(0);
            if idx as u64 != want {
                return Err(std::io::Error::other(missing(name, want)));
            }
            out.push(digest(r.get(1), || entry_place(name, want)).map_err(std::io::Error::other)?);
        }
        if out.len() as u64 != n {
            return Err(std::io::Error::other(missing(
                name,
                start + out.len() as u64,
            )));
        }
        *self.last.lock().expect("leaf cache lock") = Some((start, out.clone()));
        Ok(out)
    }
}

fn entry_place(log: &str, idx: u64) -> String {
    format!("coldtrail_entries row (log {log}, idx {idx})")
}

fn missing(log: &str, idx: u64) -> StoreError {
    StoreError::Corrupt {
        path: entry_place(log, idx),
        what: "the row is missing".into(),
    }
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

impl PgStore {
    /// Opens the log called `name`, creating it under `key` if the database
    /// has none by that name.
    pub fn open(
        db: &Arc<Database>,
        name: &str,
        key: SigningKey,
        config: StoreConfig,
    ) -> Result<PgStore, StoreError> {
        if config.queue_depth == 0 {
            return Err(StoreError::Config(
                "the queue depth must be positive".into(),
            ));
        }
        let (pg, name_owned, vk) = (db.pg.clone(), name.to_string(), key.verifying_key());
        let patience = db.config.connect_timeout;
        let opened = db.run(async move { open_log(&pg, &name_owned, &vk, patience).await })?;
        let Opened {
            client,
            log,
            size,
            runs,
            tail,
            latest_head,
            head_seq,
        } = opened;
        let leaves = PgLeaves {
            db: Arc::clone(db),
            log,
            name: name.to_string(),
            last: Mutex::new(None),
        };
        let tree = StoredTree::new(leaves, size, runs, tail);
        if let Some(h) = &latest_head {
            let root = tree
                .prover()
                .root(h.head.size)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            if root != h.head.root {
                return Err(StoreError::Corrupt {
                    path: format!("log {name}"),
                    what: format!(
                        "the tree rebuilt from the rows does not match the signed head at size {}; run `coldtrail verify --store …`",
                        h.head.size
                    ),
                });
            }
        }
        let shared = Arc::new(Shared {
            db: Arc::clone(db),
            log,
            name: name.to_string(),
            key: key.verifying_key(),
            state: RwLock::new(State { tree, latest_head }),
            gate: Arc::default(),
            max_entry_bytes: config.max_entry_bytes,
        });
        let (tx, rx) = mpsc::channel(config.queue_depth);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let writer = Writer {
            shared: Arc::clone(&shared),
            log_id: log_id(&key.verifying_key()),
            key,
            config: config.clone(),
            client: Some(client),
            head_seq,
            last_head_at: Instant::now(),
        };
        db.handle.spawn(async move {
            writer.run(rx).await;
            let _ = done_tx.send(());
        });
        Ok(PgStore {
            front: Front::new(
                Arc::clone(&shared.gate),
                tx,
                config.queue_depth,
                config.max_entry_bytes,
            ),
            shared,
            done: Mutex::new(Some(done)),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Entries `[from, to)` with every byte checked against the tree.
    fn read(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let size = self.len();
        if to > size || from > to {
            return Err(StoreError::NoSuchEntry {
                index: to.max(from),
                size,
            });
        }
        if from == to {
            return Ok(Vec::new());
        }
        // Whole runs: every id of a complete run is needed to check its root.
        let lo = from - from % RUN;
        let hi = (to.div_ceil(RUN) * RUN).min(size);
        let (name, max) = (&self.shared.name, self.shared.max_entry_bytes);
        let found = self.shared.db.query(
            "reading entries",
            "SELECT idx, id, codec, CASE WHEN idx >= $4 AND idx < $5 THEN body END
             FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            vec![
                Box::new(self.shared.log),
                Box::new(lo as i64),
                Box::new(hi as i64),
                Box::new(from as i64),
                Box::new(to as i64),
            ],
        )?;
        let mut rows: Vec<(Digest, Option<Vec<u8>>)> = Vec::with_capacity(found.len());
        for (r, want) in found.iter().zip(lo..) {
            if r.get::<_, i64>(0) as u64 != want {
                return Err(missing(name, want));
            }
            let id = digest(r.get(1), || entry_place(name, want))?;
            let body = match r.get::<_, Option<&[u8]>>(3) {
                None => None,
                Some(b) => {
                    Some(
                        decode_body(r.get(2), b, max).map_err(|what| StoreError::Corrupt {
                            path: entry_place(name, want),
                            what: what.into(),
                        })?,
                    )
                }
            };
            rows.push((id, body));
        }
        if rows.len() as u64 != hi - lo {
            return Err(missing(name, lo + rows.len() as u64));
        }
        let changed = |i: u64, what: &str| StoreError::Corrupt {
            path: entry_place(&self.shared.name, i),
            what: format!(
                "{what}; the row was changed outside coldtrail: run `coldtrail verify --store …`"
            ),
        };
        // The leaf of an entry read is the hash of its bytes, not its
        // stored id; the rest of its run contributes stored ids.
        let mut leaves = Vec::with_capacity(rows.len());
        for ((id, body), i) in rows.iter().zip(lo..) {
            match body {
                Some(b) => {
                    let leaf = entry_id(b);
                    if leaf != *id {
                        return Err(changed(i, "its bytes do not hash to its id"));
                    }
                    leaves.push(leaf);
                }
                None => leaves.push(*id),
            }
        }
        // The tree may have grown since `size` was read: a run read in part
        // may be complete now, so runs are told apart by what was read.
        let st = self.shared.state.read().expect("state lock");
        let tail_start = st.tree.size() - st.tree.tail().len() as u64;
        for (run, i) in leaves
            .chunks(RUN as usize)
            .zip((lo..).step_by(RUN as usize))
        {
            if run.len() as u64 == RUN {
                if Some(chunk_root(run)) != st.tree.run_root(i / RUN) {
                    return Err(changed(
                        i,
                        &format!("entries {i}..{} do not match their subtree root", i + RUN),
                    ));
                }
                continue;
            }
            let known = if i >= tail_start {
                st.tree.tail()[(i - tail_start) as usize..][..run.len()].to_vec()
            } else {
                st.tree
                    .read_leaves(i, run.len() as u64)
                    .map_err(|e| StoreError::Database(e.to_string()))?
            };
            if let Some(k) = run.iter().zip(&known).position(|(a, b)| a != b) {
                return Err(changed(
                    i + k as u64,
                    "its id does not match the log's tree",
                ));
            }
        }
        drop(st);
        Ok(rows.into_iter().filter_map(|(_, body)| body).collect())
    }
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

/// Takes the log's session advisory lock, trying again for `patience`: a
/// process that just ended may still hold it until its server session
/// notices.
async fn lock_log(client: &Client, log: i32, patience: Duration) -> Result<bool, StoreError> {
    let deadline = Instant::now() + patience;
    loop {
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LOG_LOCK_CLASS, &log],
            )
            .await
            .map_err(|e| classify("locking the log", e))?
            .get(0);
        if locked || Instant::now() >= deadline {
            return Ok(locked);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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

async fn open_log(
    pg: &tokio_postgres::Config,
    name: &str,
    key: &VerifyingKey,
    patience: Duration,
) -> Result<Opened, StoreError> {
    let client = connect(pg).await?;
    let q = |what: &'static str| move |e| db_error(what, e);
    let id = log_id(key);
    client
        .execute(
            "INSERT INTO coldtrail_logs (name, public_key, log_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&name, &key.as_bytes().as_slice(), &id.0.as_slice()],
        )
        .await
        .map_err(q("creating the log"))?;
    let row = client
        .query_opt(
            "SELECT log, public_key FROM coldtrail_logs WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(q("finding the log"))?
        .ok_or_else(|| {
            StoreError::Config(format!(
                "log {name} could not be created: another log already has the key given"
            ))
        })?;
    let log: i32 = row.get(0);
    let stored = verifying_key(row.get(1), name)?;
    if stored != *key {
        return Err(StoreError::Config(format!(
            "log {name} in the database belongs to log {}, not to the key given (log {})",
            log_id(&stored),
            id
        )));
    }
    if !lock_log(&client, log, patience).await? {
        return Err(StoreError::Config(format!(
            "log {name} is in use by another process (a running server?); stop it first"
        )));
    }
    let size: i64 = client
        .query_one(
            "SELECT coalesce(max(idx) + 1, 0) FROM coldtrail_entries WHERE log = $1",
            &[&log],
        )
        .await
        .map_err(q("reading the log's size"))?
        .get(0);
    let size = size as u64;
    let mut runs = Vec::with_capacity((size / RUN) as usize);
    for (r, want) in client
        .query(
            "SELECT run, root FROM coldtrail_nodes WHERE log = $1 AND run < $2 ORDER BY run",
            &[&log, &((size / RUN) as i64)],
        )
        .await
        .map_err(q("reading subtree roots"))?
        .iter()
        .zip(0u64..)
    {
        let run: i64 = r.get(0);
        if run as u64 != want {
            break;
        }
        runs.push(digest(r.get(1), || {
            format!("coldtrail_nodes row (log {name}, run {want})")
        })?);
    }
    if runs.len() as u64 != size / RUN {
        return Err(StoreError::Corrupt {
            path: format!("coldtrail_nodes row (log {name}, run {})", runs.len()),
            what: "the row is missing".into(),
        });
    }
    let tail_start = size - size % RUN;
    let mut tail = Vec::new();
    for (r, want) in client
        .query(
            "SELECT idx, id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 ORDER BY idx",
            &[&log, &(tail_start as i64)],
        )
        .await
        .map_err(q("reading the newest entries"))?
        .iter()
        .zip(tail_start..)
    {
        if r.get::<_, i64>(0) as u64 != want {
            return Err(missing(name, want));
        }
        tail.push(digest(r.get(1), || entry_place(name, want))?);
    }
    if tail.len() as u64 != size - tail_start {
        return Err(missing(name, tail_start + tail.len() as u64));
    }
    let head = client
        .query_opt(
            "SELECT seq, size, record FROM coldtrail_heads WHERE log = $1 ORDER BY seq DESC LIMIT 1",
            &[&log],
        )
        .await
        .map_err(q("reading the latest head"))?;
    let (latest_head, head_seq) = match head {
        None => (None, 0),
        Some(r) => {
            let seq: i64 = r.get(0);
            let h = decode_head_row(name, seq, r.get(1), r.get(2), key)?;
            if h.head.size > size {
                return Err(StoreError::Corrupt {
                    path: format!("coldtrail_heads row (log {name}, seq {seq})"),
                    what: format!(
                        "a signed head commits to {} entries but the log has {size}: acknowledged entries are missing",
                        h.head.size
                    ),
                });
            }
            (Some(h), seq + 1)
        }
    };
    Ok(Opened {
        client,
        log,
        size,
        runs,
        tail,
        latest_head,
        head_seq,
    })
}

/// A `coldtrail_heads` row, checked: it decodes, is signed by the log's key
/// for this log, and its size column agrees.
fn decode_head_row(
    name: &str,
    seq: i64,
    size: i64,
    record: &[u8],
    key: &VerifyingKey,
) -> Result<SignedTreeHead, StoreError> {
    let h = parse_head_row(name, seq, record)?;
    h.verify(key)
        .map_err(|e| head_row_error(name, seq, format!("{e}")))?;
    check_head_size(name, seq, size, &h)?;
    Ok(h)
}

/// A heads row's record decoded; its signature and size not yet checked
/// (the audit checks signatures on every core).
fn parse_head_row(name: &str, seq: i64, record: &[u8]) -> Result<SignedTreeHead, StoreError> {
    SignedTreeHead::from_bytes(record)
        .map_err(|e| head_row_error(name, seq, format!("does not decode: {e}")))
}

fn check_head_size(name: &str, seq: i64, size: i64, h: &SignedTreeHead) -> Result<(), StoreError> {
    if h.head.size != size as u64 {
        return Err(head_row_error(
            name,
            seq,
            format!(
                "its size column says {size} but the signed head says {}",
                h.head.size
            ),
        ));
    }
    Ok(())
}

fn head_row_error(name: &str, seq: i64, what: String) -> StoreError {
    StoreError::Corrupt {
        path: format!("coldtrail_heads row (log {name}, seq {seq})"),
        what,
    }
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

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        if let Err(e) = self.sign_head(false).await {
            self.stop(e.to_string());
        }
        // Readers' asks for a head, kept until the next one is signed.
        let mut soon = Vec::new();
        loop {
            let since = self.last_head_at.elapsed();
            let first = match head_wait(&self.config, since, self.tail_unsigned(), !soon.is_empty())
            {
                Some(wait) => match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(r)) => Some(r),
                    Ok(None) => break,
                    Err(_) => None,
                },
                None => match rx.recv().await {
                    Some(r) => Some(r),
                    None => break,
                },
            };
            let mut group = Group::default();
            let mut next = first;
            while let Some(req) = next.take() {
                self.shared.gate.taken();
                if group.add(req, &self.config) {
                    break;
                }
                next = rx.try_recv().ok();
            }
            soon.append(&mut group.soon_waiters);
            if let Some(why) = self.shared.gate.stopped() {
                group.soon_waiters = std::mem::take(&mut soon);
                group.refuse(&why);
                continue;
            }
            if !group.appends.is_empty() {
                metrics::histogram!(GROUP_ENTRIES).record(group.entries as f64);
                match self.commit(&group).await {
                    Ok(first_index) => group.committed(first_index),
                    Err(e) => {
                        let why = e.to_string();
                        self.stop(why.clone());
                        group.refuse_appends(&why);
                    }
                }
            }
            let since = self.last_head_at.elapsed();
            if let Some(force) = head_due(
                &self.config,
                since,
                !group.head_waiters.is_empty(),
                !soon.is_empty(),
            ) {
                let res = self.sign_head(force).await;
                if let Err(e) = &res {
                    self.stop(e.to_string());
                }
                group.answer_heads(&mut soon, force, &res);
            }
        }
        if !self.shared.gate.is_stopped() {
            let _ = self.sign_head(false).await;
        }
        // Released before the store's drop returns: the next open, in this
        // process or another, finds the log free at once.
        if let Some(c) = &self.client {
            let _ = c
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&LOG_LOCK_CLASS, &self.shared.log],
                )
                .await;
        }
    }

    fn stop(&self, why: String) {
        tracing::error!(log = %self.shared.name, why = %why, "PostgreSQL log stopped accepting writes");
        self.shared.gate.stop_first(why);
    }

    fn tail_unsigned(&self) -> bool {
        let st = self.shared.state.read().expect("state lock");
        super::front::tail_unsigned(&self.shared.gate, st.latest_head.as_ref(), st.tree.size())
    }

    /// The writer's connection, reconnected (and the log's lock retaken)
    /// if the last one failed.
    async fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_none() {
            self.reconnect().await?;
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let client = connect(&self.shared.db.pg).await?;
        if !lock_log(
            &client,
            self.shared.log,
            self.shared.db.config.connect_timeout,
        )
        .await?
        {
            return Err(StoreError::Stopped(format!(
                "log {} was taken by another process while this one reconnected",
                self.shared.name
            )));
        }
        self.client = Some(client);
        Ok(())
    }

    /// Writes the group as one transaction; returns its first index.
    async fn commit(&mut self, group: &Group) -> Result<u64, StoreError> {
        let (first, tail) = {
            let st = self.shared.state.read().expect("state lock");
            (st.tree.size(), st.tree.tail().to_vec())
        };
        let ids: Vec<Digest> = group.ids().copied().collect();
        let mut idx = Vec::with_capacity(ids.len());
        let mut id_bytes = Vec::with_capacity(ids.len());
        let mut codecs = Vec::with_capacity(ids.len());
        let mut bodies = Vec::with_capacity(ids.len());
        for (e, (i, id)) in group.entries().zip((first..).zip(&ids)) {
            let (codec, body) = encode_body(e);
            idx.push(i as i64);
            id_bytes.push(id.0.to_vec());
            codecs.push(codec);
            bodies.push(body);
        }
        // The runs this group completes, and their roots.
        let mut run = tail;
        let (mut runs, mut roots) = (Vec::new(), Vec::new());
        for (id, i) in ids.iter().zip(first..) {
            run.push(*id);
            if run.len() as u64 == RUN {
                runs.push((i / RUN) as i64);
                roots.push(chunk_root(&run).0.to_vec());
                run.clear();
            }
        }
        let log = self.shared.log;
        let name = self.shared.name.clone();
        let started = Instant::now();
        let group_rows = GroupRows {
            log,
            idx,
            ids: id_bytes,
            codecs,
            bodies,
            runs,
            roots,
        };
        let mut retry = Retry::new(self.shared.db.config.retry_for);
        loop {
            let res = match self.client().await {
                Ok(c) => insert_group(c, &name, &group_rows).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => break,
                Err(e) => {
                    self.client = None;
                    retry.pause("committing a group", e).await?;
                }
            }
        }
        metrics::histogram!(FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
        // Readers may hold the state lock across a database round trip on
        // this runtime: block outside the runtime's scheduling.
        let nodes = tokio::task::block_in_place(|| {
            self.shared
                .state
                .write()
                .expect("state lock")
                .tree
                .push_leaves(&ids)
        });
        debug_assert_eq!(nodes.len(), group_rows.roots.len());
        Ok(first)
    }

    async fn sign_head(&mut self, force: bool) -> Result<Option<SignedTreeHead>, StoreError> {
        self.last_head_at = Instant::now();
        let (size, root, prev) = {
            let st = self.shared.state.read().expect("state lock");
            let size = st.tree.size();
            if !force && (size == 0 || st.latest_head.is_some_and(|h| h.head.size == size)) {
                return Ok(None);
            }
            // The root of the whole tree comes from memory (run roots and
            // the tail): no database reads under the lock.
            let root = st
                .tree
                .prover()
                .root(size)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            (size, root, st.latest_head)
        };
        let timestamp_ms = self
            .config
            .clock
            .now_ms()
            .max(prev.map_or(0, |h| h.head.timestamp_ms));
        let sth = TreeHead {
            log_id: self.log_id,
            size,
            root,
            timestamp_ms,
        }
        .sign(&self.key);
        let (log, seq, record) = (self.shared.log, self.head_seq, sth.to_bytes());
        let mut retry = Retry::new(self.shared.db.config.retry_for);
        loop {
            let res = match self.client().await {
                Ok(c) => insert_head(c, log, seq, size, &record).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => break,
                Err(e) => {
                    self.client = None;
                    retry.pause("recording a signed head", e).await?;
                }
            }
        }
        self.head_seq += 1;
        metrics::histogram!(super::HEAD_SECONDS).record(self.last_head_at.elapsed().as_secs_f64());
        tokio::task::block_in_place(|| {
            self.shared.state.write().expect("state lock").latest_head = Some(sth);
        });
        Ok(Some(sth))
    }
}

/// Transient failures are retried with growing pauses until `retry_for`
/// has passed; anything else ends the retries at once.
struct Retry {
    deadline: Instant,
    pause: Duration,
    limit: Duration,
}

impl Retry {
    fn new(limit: Duration) -> Retry {
        Retry {
            deadline: Instant::now() + limit,
            pause: Duration::from_millis(50),
            limit,
        }
    }

    async fn pause(&mut self, what: &str, err: StoreError) -> Result<(), StoreError> {
        if !transient(&err) {
            return Err(err);
        }
        if Instant::now() + self.pause > self.deadline {
            return Err(StoreError::Database(format!(
                "{what} kept failing for {:?}: {err}",
                self.limit
            )));
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        Ok(())
    }
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

/// Inserts a group in one transaction. Rows already there are skipped:
/// if all of them are, an earlier try committed before its answer was lost,
/// which is success if they are these rows; any other overlap is refused
/// (and rolled back).
async fn insert_group(c: &mut Client, name: &str, g: &GroupRows) -> Result<(), StoreError> {
    let n = g.idx.len() as u64;
    let tx = c
        .transaction()
        .await
        .map_err(|e| classify("beginning", e))?;
    let inserted = tx
        .execute(
            "INSERT INTO coldtrail_entries (log, idx, id, codec, body)
             SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::smallint[], $5::bytea[])
             ON CONFLICT DO NOTHING",
            &[&g.log, &g.idx, &g.ids, &g.codecs, &g.bodies],
        )
        .await
        .map_err(|e| classify("inserting entries", e))?;
    if inserted == n {
        tx.execute(
            "INSERT INTO coldtrail_nodes (log, run, root)
             SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
            &[&g.log, &g.runs, &g.roots],
        )
        .await
        .map_err(|e| classify("inserting subtree roots", e))?;
        return tx.commit().await.map_err(|e| classify("committing", e));
    }
    drop(tx);
    let first = g.idx[0];
    let stored = c
        .query(
            "SELECT id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            &[&g.log, &first, &(first + n as i64)],
        )
        .await
        .map_err(|e| classify("checking an earlier try", e))?;
    let same = inserted == 0
        && stored.len() as u64 == n
        && stored
            .iter()
            .zip(&g.ids)
            .all(|(r, id)| r.get::<_, &[u8]>(0) == id.as_slice());
    if same {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: entry_place(name, first as u64),
        what: format!(
            "{} of these {n} entries' rows were already there and differ from what this store wrote: another writer? the log is stopped",
            n - inserted
        ),
    })
}

/// Records a signed head; a retry finding it already there is success.
async fn insert_head(
    c: &mut Client,
    log: i32,
    seq: i64,
    size: u64,
    record: &[u8],
) -> Result<(), StoreError> {
    let n = c
        .execute(
            "INSERT INTO coldtrail_heads (log, seq, size, record) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&log, &seq, &(size as i64), &record],
        )
        .await
        .map_err(|e| classify("inserting a signed head", e))?;
    if n == 1 {
        return Ok(());
    }
    let there = c
        .query_one(
            "SELECT record FROM coldtrail_heads WHERE log = $1 AND seq = $2",
            &[&log, &seq],
        )
        .await
        .map_err(|e| classify("checking an earlier try", e))?;
    if there.get::<_, &[u8]>(0) == record {
        Ok(())
    } else {
        Err(StoreError::Stopped(format!(
            "signed head {seq} was already recorded by another writer"
        )))
    }
}

impl Store for PgStore {
    fn public_key(&self) -> VerifyingKey {
        self.shared.key
    }

    fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        self.front.submit(entries)
    }

    fn len(&self) -> u64 {
        self.shared.state.read().expect("state lock").tree.size()
    }

    fn queued(&self) -> usize {
        self.shared.gate.queued()
    }

    fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.len();
        if index >= size {
            return Err(StoreError::NoSuchEntry { index, size });
        }
        Ok(self.read(index, index + 1)?.remove(0))
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(from, to)
    }

    fn entry_id(&self, index: u64) -> Result<Digest, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        let size = st.tree.size();
        if index >= size {
            return Err(StoreError::NoSuchEntry { index, size });
        }
        let mut v = st
            .tree
            .read_leaves(index, 1)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(v.remove(0))
    }

    fn find(&self, id: &Digest) -> Result<Option<u64>, StoreError> {
        let size = self.len() as i64;
        let candidates: Vec<i64> = self
            .shared
            .db
            .query(
                "finding an entry by id",
                "SELECT idx FROM coldtrail_entries WHERE id = $2 AND log = $1 AND idx < $3 ORDER BY idx",
                vec![Box::new(self.shared.log), Box::new(id.0.to_vec()), Box::new(size)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for i in candidates {
            if self.entry_id(i as u64)? == *id {
                return Ok(Some(i as u64));
            }
        }
        Ok(None)
    }

    fn root(&self, size: u64) -> Result<Digest, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_root(size, |e| StoreError::Database(e.to_string()))
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_inclusion(index, size, |e| StoreError::Database(e.to_string()))
    }

    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_consistency(size1, size2, |e| StoreError::Database(e.to_string()))
    }

    fn request_head(&self) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.front.request_head(false)
    }

    fn request_head_soon(&self) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.front.request_head(true)
    }

    fn latest_head(&self) -> Option<SignedTreeHead> {
        self.shared.state.read().expect("state lock").latest_head
    }

    fn first_head_covering(&self, size: u64) -> Result<Option<SignedTreeHead>, StoreError> {
        // Head sizes never go back: the first by sequence is the smallest.
        let rows = self.shared.db.query(
            "finding a signed head",
            "SELECT seq, size, record FROM coldtrail_heads WHERE log = $1 AND size >= $2 ORDER BY seq LIMIT 1",
            vec![Box::new(self.shared.log), Box::new(size as i64)],
        )?;
        rows.first()
            .map(|r| {
                decode_head_row(
                    &self.shared.name,
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    &self.shared.key,
                )
            })
            .transpose()
    }
}
