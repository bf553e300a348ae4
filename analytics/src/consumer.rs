//! The analytics feed consumer: reads committed entries, drives the
//! [`Engine`], appends the verdicts it proposes, and flushes tables and state
//! with the feed cursor.
//!
//! Exactly once, across kill -9:
//! - Table rows: parts are written before the cursor that covers them is
//!   committed; parts of an uncommitted flush are deleted at open, and their
//!   rows consumed again.
//! - Verdicts: appended (and durable) before the cursor moves past the entry
//!   that caused them. At open, every verdict already on the ledger past the
//!   cursor is read first, so re-consuming never records one twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use ledger::entry::Entry;
use shards::feed::{FeedBatch, Subscription};
use shards::Node;

use crate::engine::{Engine, EngineState, VerdictKey};
use crate::persist::{analytics_dir, Manifest, TableStore};
use crate::profile::RulesConfig;
use crate::tables::{associations_batch, Rows};
use crate::AnalyticsError;

/// The feed consumer's name (its cursor file).
pub const CONSUMER: &str = "analytics";
/// The persisted state's format version (2: the engine keeps custody).
const STATE_VERSION: u32 = 2;
/// Entries per feed read.
const FEED_BATCH: usize = 4096;

#[derive(Debug, Clone)]
pub struct Options {
    /// Flush once this many rows are waiting.
    pub flush_rows: usize,
    /// Flush at least this often while rows are waiting.
    pub flush_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // Half a million rows of builders is ~60 MB; twice that kept the
            // large world's demo within 1 GiB by too little.
            flush_rows: 1 << 19,
            flush_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    version: u32,
    manifest: Manifest,
    engine: EngineState,
}

/// The analytics consumer of one node.
pub struct Consumer {
    node: Arc<Node>,
    sub: Subscription,
    pub engine: Engine,
    store: TableStore,
    manifest: Manifest,
    options: Options,
    last_flush: Instant,
    status: Option<Arc<Status>>,
    /// Per shard, the index after the last entry applied to the engine.
    applied: Vec<u64>,
    /// Per shard, how far [`Consumer::look_ahead`] has read.
    ahead: Vec<u64>,
}

impl Consumer {
    /// Opens the consumer from its committed cursor and state.
    pub fn open(
        node: Arc<Node>,
        config: RulesConfig,
        options: Options,
    ) -> Result<Consumer, AnalyticsError> {
        let sub = Subscription::open(Arc::clone(&node), CONSUMER, FEED_BATCH)?;
        let cursor_path = node.data_dir().join("cursors").join(CONSUMER);
        let (manifest, state) = if sub.state().is_empty() {
            (Manifest::default(), EngineState::default())
        } else {
            let p: Persisted =
                postcard::from_bytes(sub.state()).map_err(|e| AnalyticsError::Corrupt {
                    path: cursor_path.display().to_string(),
                    what: format!(
                        "{e}; run `coldtrail analytics rebuild` to rebuild it from the logs"
                    ),
                })?;
            if p.version != STATE_VERSION {
                return Err(AnalyticsError::Corrupt {
                    path: cursor_path.display().to_string(),
                    what: format!("state version {} (this build reads {STATE_VERSION}); run `coldtrail analytics rebuild`", p.version),
                });
            }
            (p.manifest, p.engine)
        };
        let store = TableStore::open(analytics_dir(node.data_dir()), &manifest)?;
        let applied = sub.cursors().to_vec();
        let mut engine = Engine::new(config, state);
        // Verdicts recorded after the cursor (before a crash) must not be
        // recorded again when their causes are consumed again.
        for v in verdicts_on_ledger(&node, sub.cursors())? {
            engine.state.recorded.insert(VerdictKey::of(&v));
        }
        Ok(Consumer {
            node,
            sub,
            engine,
            store,
            manifest,
            options,
            last_flush: Instant::now(),
            status: None,
            ahead: applied.clone(),
            applied,
        })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn store(&self) -> &TableStore {
        &self.store
    }

    /// A SQL session over the flushed tables and the rows not flushed yet.
    pub async fn session(&mut self) -> Result<datafusion::prelude::SessionContext, AnalyticsError> {
        let tail = &mut self.engine.tail;
        let (events, subjects) = tail.events.snapshot();
        let rows = vec![
            ("readings", tail.readings.snapshot()),
            ("events", events),
            ("event_subjects", subjects),
            ("verdicts", tail.verdicts.snapshot()),
        ];
        crate::sql::session(self.store.dir(), rows).await
    }

    /// Whether every committed entry has been consumed (not necessarily flushed).
    pub fn caught_up(&self) -> bool {
        self.sub.caught_up()
    }

    /// Consumes what is committed now, appending the verdicts it finds, and
    /// flushing whenever enough rows wait. Returns the entries consumed.
    pub async fn catch_up(&mut self) -> Result<u64, AnalyticsError> {
        let mut n = 0;
        while let Some(b) = self.sub.try_next()? {
            n += self.consume(b).await?;
        }
        Ok(n)
    }

    async fn consume(&mut self, b: FeedBatch) -> Result<u64, AnalyticsError> {
        if b.entries.iter().any(|e| self.engine.is_new_device(e)) {
            self.look_ahead(b.shard)?;
        }
        self.apply(&b).await?;
        if let Some(st) = &self.status {
            st.applied
                .lock()
                .expect("status lock")
                .clone_from(&self.applied);
        }
        Ok(b.entries.len() as u64)
    }

    /// Before a logger's first reading is judged: a device's registration and
    /// its logger associations were committed (on other shards, perhaps)
    /// before ingest accepted its readings, so everything committed on the
    /// other shards is read ahead for who owns what and who watches what.
    /// Each entry is read ahead once; its rows come when it is consumed.
    fn look_ahead(&mut self, except: u32) -> Result<(), AnalyticsError> {
        for (s, shard) in self.node.shards().iter().enumerate() {
            if s as u32 == except {
                continue;
            }
            let end = shard.committed();
            let mut i = self.ahead[s].max(self.sub.read_position()[s]);
            while i < end {
                let to = end.min(i + FEED_BATCH as u64);
                for (k, e) in shard
                    .store()
                    .entries(i, to)
                    .map_err(shards::ShardError::from)?
                    .iter()
                    .enumerate()
                {
                    self.engine.look_ahead(s as u32, i + k as u64, e);
                }
                i = to;
            }
            self.ahead[s] = end;
        }
        Ok(())
    }

    /// Applies a batch entry by entry, flushing whenever enough rows wait
    /// (partway through the batch if need be).
    async fn apply(&mut self, b: &FeedBatch) -> Result<(), AnalyticsError> {
        for (i, e) in b.entries.iter().enumerate() {
            let index = b.first_index + i as u64;
            self.engine.apply(b.shard, index, e);
            self.applied[b.shard as usize] = index + 1;
            if let Some(st) = &self.status {
                st.applied.lock().expect("status lock")[b.shard as usize] = index + 1;
            }
            if self.engine.tail.rows() >= self.options.flush_rows {
                self.flush_now().await?;
            }
        }
        self.append_outbox().await
    }

    async fn append_outbox(&mut self) -> Result<(), AnalyticsError> {
        for p in std::mem::take(&mut self.engine.outbox) {
            self.node
                .append(&p.partition_key, vec![Entry::Verdict(p.verdict)])
                .await?;
        }
        Ok(())
    }

    /// Records the proposed verdicts (they must be on the ledger before the
    /// cursor passes their cause), then flushes.
    async fn flush_now(&mut self) -> Result<(), AnalyticsError> {
        self.append_outbox().await?;
        self.flush()
    }

    /// Writes the waiting rows as Parquet parts and commits them with the
    /// cursor (what was applied) and the engine's state. Verdicts still in the
    /// outbox are not recorded: callers append them first.
    fn flush(&mut self) -> Result<(), AnalyticsError> {
        debug_assert!(
            self.engine.outbox.is_empty(),
            "verdicts are recorded before the cursor passes their cause"
        );
        let mut manifest = self.manifest.clone();
        manifest.generation += 1;
        let tail = &mut self.engine.tail;
        if !tail.readings.is_empty() {
            self.store
                .write_part(&mut manifest, "readings", &tail.readings.finish())?;
        }
        if !tail.events.is_empty() {
            let (events, subjects) = tail.events.finish();
            self.store.write_part(&mut manifest, "events", &events)?;
            self.store
                .write_part(&mut manifest, "event_subjects", &subjects)?;
        }
        if !tail.verdicts.is_empty() {
            self.store
                .write_part(&mut manifest, "verdicts", &tail.verdicts.finish())?;
        }
        self.store
            .write_associations(&associations_batch(&self.engine.state.watches))?;
        let persisted = Persisted {
            version: STATE_VERSION,
            manifest,
            engine: std::mem::take(&mut self.engine.state),
        };
        let bytes = postcard::to_allocvec(&persisted)
            .map_err(|e| AnalyticsError::Config(format!("encoding analytics state: {e}")));
        self.engine.state = persisted.engine;
        self.sub.commit_to(&self.applied, &bytes?)?;
        self.manifest = persisted.manifest;
        self.last_flush = Instant::now();
        if let Some(st) = &self.status {
            *st.flushed.lock().expect("status lock") = self.sub.cursors().to_vec();
        }
        Ok(())
    }

    /// Consumes and flushes until everything committed now is flushed.
    pub async fn sync(&mut self) -> Result<(), AnalyticsError> {
        self.catch_up().await?;
        self.flush_now().await?;
        // Verdicts appended while catching up are entries too.
        while !self.sub.caught_up() {
            self.catch_up().await?;
            self.flush_now().await?;
        }
        Ok(())
    }

    /// Runs until `stop` resolves: consumes as entries commit, flushes every
    /// `flush_interval` while rows wait, and flushes once more at the end.
    pub async fn run(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Consumer, AnalyticsError> {
        tokio::pin!(stop);
        loop {
            self.catch_up().await?;
            let behind = self.engine.tail.rows() > 0 || self.applied != self.sub.cursors();
            if behind && self.last_flush.elapsed() >= self.options.flush_interval {
                self.flush_now().await?;
            }
            let wait = self.options.flush_interval;
            let next = tokio::select! {
                _ = &mut stop => break,
                r = tokio::time::timeout(wait, self.sub.next()) => r,
            };
            if let Ok(b) = next {
                self.consume(b?).await?;
            }
        }
        self.sync().await?;
        Ok(self)
    }
}

/// Every verdict entry on `node`'s logs from `from` (an index per shard) on.
pub fn verdicts_on_ledger(
    node: &Node,
    from: &[u64],
) -> Result<Vec<ledger::entry::RuleVerdict>, AnalyticsError> {
    let mut out = Vec::new();
    for (shard, from) in node.shards().iter().zip(from) {
        let end = shard.committed();
        let mut i = *from;
        while i < end {
            let to = end.min(i + FEED_BATCH as u64);
            for e in shard
                .store()
                .entries(i, to)
                .map_err(shards::ShardError::from)?
            {
                if ledger::entry::kind_of(&e) == Some("verdict") {
                    if let Ok(Entry::Verdict(v)) = Entry::from_bytes(&e) {
                        out.push(v);
                    }
                }
            }
            i = to;
        }
    }
    Ok(out)
}

/// What a running consumer has durably done, for callers that wait on it.
#[derive(Debug, Default)]
pub struct Status {
    /// The committed cursor per shard after the last flush.
    flushed: std::sync::Mutex<Vec<u64>>,
    /// Per shard, the index after the last entry the rules have judged.
    applied: std::sync::Mutex<Vec<u64>>,
    /// Why the consumer stopped, if it failed.
    failed: std::sync::Mutex<Option<String>>,
}

impl Status {
    pub fn flushed(&self) -> Vec<u64> {
        self.flushed.lock().expect("status lock").clone()
    }

    /// Per shard, the index after the last entry the rules have judged
    /// (not yet flushed, perhaps).
    pub fn applied(&self) -> Vec<u64> {
        self.applied.lock().expect("status lock").clone()
    }

    pub fn failed(&self) -> Option<String> {
        self.failed.lock().expect("status lock").clone()
    }

    /// Whether everything committed on `node` now has been consumed and flushed.
    pub fn caught_up_with(&self, node: &Node) -> bool {
        let flushed = self.flushed();
        flushed.len() == node.shards().len()
            && node
                .shards()
                .iter()
                .zip(&flushed)
                .all(|(s, f)| *f >= s.committed())
    }
}

/// A consumer running on a thread of its own (so flushing Parquet never
/// stalls the server's event loop).
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), AnalyticsError>>>,
    pub status: Arc<Status>,
}

impl Running {
    /// Opens the consumer (errors surface here) and starts it.
    pub fn spawn(
        node: Arc<Node>,
        config: RulesConfig,
        options: Options,
    ) -> Result<Running, AnalyticsError> {
        let mut consumer = Consumer::open(node, config, options)?;
        let status = Arc::new(Status::default());
        *status.flushed.lock().expect("status lock") = consumer.sub.cursors().to_vec();
        *status.applied.lock().expect("status lock") = consumer.sub.cursors().to_vec();
        consumer.status = Some(Arc::clone(&status));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("analytics".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| AnalyticsError::io(std::path::Path::new("tokio runtime"), e))?;
                let r = rt.block_on(consumer.run(async {
                    let _ = rx.await;
                }));
                if let Err(e) = &r {
                    *st.failed.lock().expect("status lock") = Some(e.to_string());
                }
                r.map(|_| ())
            })
            .map_err(|e| AnalyticsError::io(std::path::Path::new("analytics thread"), e))?;
        Ok(Running {
            stop: Some(tx),
            thread: Some(thread),
            status,
        })
    }

    /// Stops after consuming and flushing what is committed now.
    pub fn stop(mut self) -> Result<(), AnalyticsError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AnalyticsError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(AnalyticsError::Config(
                "the analytics thread panicked".into(),
            )),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
