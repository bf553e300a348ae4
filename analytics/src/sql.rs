//! SQL over the analytics tables (DataFusion).
//!
//! Tables: `readings`, `events`, `event_subjects`, `verdicts` (Parquet parts
//! plus, in-process, the rows not yet flushed) and `associations`.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::persist::{ASSOCIATIONS, PART_TABLES};
use crate::tables;
use crate::AnalyticsError;

/// Every table's name and schema.
pub fn schemas() -> Vec<(&'static str, SchemaRef)> {
    vec![
        ("readings", tables::readings_schema()),
        ("events", tables::events_schema()),
        ("event_subjects", tables::event_subjects_schema()),
        ("verdicts", tables::verdicts_schema()),
        (ASSOCIATIONS, tables::associations_schema()),
    ]
}

/// A session over the Parquet files in `dir` (a node's `analytics/`), with
/// `tail` (rows not yet flushed, by table) added to the tables they belong to.
pub async fn session(
    dir: &std::path::Path,
    tail: Vec<(&'static str, datafusion::arrow::array::RecordBatch)>,
) -> Result<SessionContext, AnalyticsError> {
    let ctx = SessionContext::new();
    for (name, schema) in schemas() {
        let path = dir.join(name);
        let has_files = std::fs::read_dir(&path)
            .map(|d| {
                d.flatten()
                    .any(|f| f.path().extension().is_some_and(|e| e == "parquet"))
            })
            .unwrap_or(false);
        let extra: Vec<_> = tail
            .iter()
            .filter(|(t, b)| *t == name && b.num_rows() > 0)
            .map(|(_, b)| b.clone())
            .collect();
        let flushed = format!("{name}_flushed");
        if has_files {
            let opts = ParquetReadOptions::default()
                .schema(&schema)
                .file_extension(".parquet");
            ctx.register_parquet(
                if extra.is_empty() { name } else { &flushed },
                path.to_string_lossy().as_ref(),
                opts,
            )
            .await?;
        } else {
            let empty = MemTable::try_new(Arc::clone(&schema), vec![vec![]])?;
            ctx.register_table(
                if extra.is_empty() { name } else { &flushed },
                Arc::new(empty),
            )?;
        }
        if !extra.is_empty() {
            let mem = MemTable::try_new(Arc::clone(&schema), vec![extra])?;
            ctx.register_table(format!("{name}_tail").as_str(), Arc::new(mem))?;
            ctx.sql(&format!(
                "CREATE VIEW {name} AS SELECT * FROM {flushed} UNION ALL SELECT * FROM {name}_tail"
            ))
            .await?;
        }
    }
    debug_assert!(PART_TABLES
        .iter()
        .all(|t| schemas().iter().any(|(n, _)| n == t)));
    Ok(ctx)
}

/// Writes each table as one Parquet file `DIR/<table>.parquet`.
pub async fn export_parquet(
    ctx: &SessionContext,
    out: &std::path::Path,
) -> Result<Vec<(String, u64)>, AnalyticsError> {
    std::fs::create_dir_all(out).map_err(|e| AnalyticsError::io(out, e))?;
    let mut written = Vec::new();
    for (name, _) in schemas() {
        let df = ctx.table(name).await?;
        let rows = df.clone().count().await? as u64;
        let path = out.join(format!("{name}.parquet"));
        df.write_parquet(
            path.to_string_lossy().as_ref(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
        written.push((path.display().to_string(), rows));
    }
    Ok(written)
}
