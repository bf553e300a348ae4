//! SQL over the analytics tables (DataFusion).
//!
//! Tables: `readings`, `events`, `event_subjects`, `verdicts` (Parquet parts
//! plus, in-process, the rows not yet flushed) and `associations`.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
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
/// Writes one Parquet file per table in `out`, keeping only the rows whose
/// ledger entry (their `shard`, `entry_index`) `keep` keeps: a copy for
/// someone who may read some entries only. Answers each file and its rows.
pub async fn export_parquet_where(
    ctx: &SessionContext,
    out: &std::path::Path,
    keep: &mut dyn FnMut(u32, u64) -> Result<bool, AnalyticsError>,
) -> Result<Vec<(String, u64)>, AnalyticsError> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    use datafusion::arrow::compute::filter_record_batch;
    use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
    use futures_util::StreamExt;

    std::fs::create_dir_all(out).map_err(|e| AnalyticsError::io(out, e))?;
    let mut written = Vec::new();
    for (name, schema) in schemas() {
        let path = out.join(format!("{name}.parquet"));
        let file = std::fs::File::create(&path).map_err(|e| AnalyticsError::io(&path, e))?;
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
        let mut stream = ctx.table(name).await?.execute_stream().await?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let column = |c: &str| {
                batch.column_by_name(c).ok_or_else(|| {
                    AnalyticsError::Config(format!("table {name} has no column {c}"))
                })
            };
            let shard = column("shard")?.as_primitive::<UInt32Type>().clone();
            let index = column("entry_index")?.as_primitive::<UInt64Type>().clone();
            let mask = (0..batch.num_rows())
                .map(|r| keep(shard.value(r), index.value(r)).map(Some))
                .collect::<Result<BooleanArray, _>>()?;
            let kept = filter_record_batch(&batch, &mask)?;
            rows += kept.num_rows() as u64;
            writer.write(&kept)?;
        }
        writer.close()?;
        written.push((path.display().to_string(), rows));
    }
    Ok(written)
}

/// Writes one Parquet file per table in `out`, every row (the operator's
/// copy). Answers each file and its rows.
pub async fn export_parquet(
    ctx: &SessionContext,
    out: &std::path::Path,
) -> Result<Vec<(String, u64)>, AnalyticsError> {
    export_parquet_where(ctx, out, &mut |_, _| Ok(true)).await
}
