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
//! - [`watches`]: which logger watched which lot or container, when.
//! - [`readings`]: a device's readings downsampled, read from the ledger.
//! - [`explain`]: the words verdicts are written in.

pub mod batch;
pub mod consumer;
pub mod engine;
pub mod explain;
pub mod lineage;
pub mod persist;
pub mod profile;
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
