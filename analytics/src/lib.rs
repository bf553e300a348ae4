//! coldtrail's read side: everything here is derived from the ledger and can
//! be rebuilt from the logs alone.
//!
//! - [`profile`]: product profiles and their rules (RULES.md as data).
//! - [`rules`]: the rule engine, one per-logger state machine that both the
//!   streaming consumer and the batch evaluator drive.
//! - [`engine`]: entries in, table rows, findings and verdicts out (pure).
//! - [`consumer`]: the feed consumer that drives the engine, appends its
//!   verdicts, and flushes [`tables`] as Parquet ([`persist`]) with its cursor.
//! - [`batch`]: the same rules over the persisted tables.
//! - [`sql`]: DataFusion over the tables.
//! - [`custody`]: who held which lot from when, and so which events count.
//! - [`watches`]: which logger watched which lot or container, when.
//! - [`readings`]: a device's readings downsampled, read from the ledger.
//! - [`explain`]: the words verdicts are written in.
//! - [`quantity`]: what a reading measures that a rule reads, and its scale.
//! - [`lineage`]: the lot genealogy graph (traces, co-exposure, recalls as
//!   recorded, FSMA 204 rows, EPCIS queries), built from the logs and kept
//!   current from the feed.
//! - [`recall`]: planning recall changes (open, widen, close) against it.
//! - [`search`]: the tantivy index over what the graph names.
//!
//! ## The read side (`analytics`)
//!
//! 1. **Feed.** `Consumer` reads committed entries through a `feed::Subscription` named
//!    `analytics`, shard by shard. Before the first readings of a logger it has not seen, it
//!    reads every other shard ahead, up to its committed end, for registrations and
//!    association events only (each entry once; `Engine::look_ahead`, idempotent): they were
//!    committed before ingest accepted the logger's readings, so its owner and what it watches
//!    are known when its first reading is judged. Rows come when each entry is consumed in order.
//! 2. **Engine** (`engine.rs`, pure): each entry becomes rows of `readings`, `events`,
//!    `event_subjects` (Arrow builders, the unflushed tail), updates `Watches` (association and
//!    aggregation intervals) and owners, and each reading goes to its logger's `DeviceEval`
//!    (`rules/`), under the profile of the product it was first set to watch (`rules.json`:
//!    GTIN -> profile; `device_health` otherwise). A finding is attributed (`attribute`) to what
//!    the logger watched during it, through containers, and proposed as verdicts: a breach per
//!    subject, a quarantine per lot when the rule says so; impossible data proposes a
//!    suspension of the device.
//! 3. **Verdicts** are appended (awaited, durable) on the subject's home shard before the
//!    cursor moves past their cause; each `VerdictKey` (rule, subject, kind, start) is
//!    recorded once: the engine remembers every key it proposed or saw in the feed, and at open
//!    reads every verdict already on the logs past the cursor.
//! 4. **Flush** (every `flush_rows` rows, or each second while rows wait): Parquet parts are
//!    written and fsync'd (`persist.rs`), then the cursor file is replaced with the manifest
//!    (which parts count) and the engine state (postcard) in one atomic write. Parts not in
//!    the committed manifest are deleted at open; their rows are consumed again.
//! 5. **Batch** (`batch.rs`): the same `DeviceEval` over the `readings` table in table order
//!    (each logger's rows are in its sequence order there, as in the feed): no second
//!    definition of any rule. **SQL** (`sql.rs`): DataFusion over the parts (plus, in-process,
//!    the tail). The server runs the consumer on its own thread; `coldtrail sql`, `breaches` and
//!    `export parquet` catch the tables up first when they can open the node, and read what the
//!    server last flushed when it runs.
//!
//! Rule semantics (time weighting, gaps, strict or inclusive, deadband, clear delay, reported
//! times, one breach per excursion) are written once, in `analytics/src/rules/mod.rs`, and
//! pinned by a unit test each (`rules/tests.rs`).

pub mod batch;
pub mod consumer;
pub mod custody;
pub mod engine;
pub mod explain;
pub mod lineage;
pub mod persist;
pub mod profile;
pub mod quantity;
pub mod readings;
pub mod recall;
pub mod rules;
pub mod search;
pub mod sql;
pub mod tables;
pub mod watches;

/// The DataFusion (and Arrow, Parquet) this crate is built on, for callers.
pub use datafusion;

pub use consumer::{Consumer, Options, Running};
pub use engine::{Engine, EngineState};
pub use profile::RulesConfig;
pub use rules::Finding;

/// Errors of the analytics layer.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("rules configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Shard(#[from] shards::ShardError),
    #[error("analytics state {path} is damaged: {what}")]
    Corrupt { path: String, what: String },
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl AnalyticsError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> AnalyticsError {
        AnalyticsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
