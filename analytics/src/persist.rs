//! Parquet files under `DATA/analytics/`, and which of them count.
//!
//! Append-only tables (`readings`, `events`, `event_subjects`, `verdicts`)
//! grow by part files, one per flush and table; `associations` (intervals
//! that close later) is rewritten whole. The [`Manifest`] naming the parts
//! is committed with the feed cursor, atomically: a part written but not yet
//! in a committed manifest is an orphan of a crash, and opening deletes it
//! (its rows are consumed again from the cursor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;

/// The append-only tables, in the order they are written.
pub const PART_TABLES: [&str; 4] = ["readings", "events", "event_subjects", "verdicts"];
/// The table rewritten whole at each flush.
pub const ASSOCIATIONS: &str = "associations";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub generation: u64,
    /// table -> part file names, in order.
    pub parts: BTreeMap<String, Vec<String>>,
}

/// The analytics directory of a node's data directory.
pub fn analytics_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("analytics")
}

pub struct TableStore {
    dir: PathBuf,
}

/// Column encodings that fit slowly changing sensor series: delta-encoded
/// integers (times, scaled temperatures, sequence numbers) compress to about
/// a byte a value before zstd.
fn properties(table: &str) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(1 << 20));
    if table == "readings" {
        for col in [
            "seq",
            "time",
            "temp_c",
            "humidity_pct",
            "battery_mv",
            "lat",
            "lon",
            "entry_index",
        ] {
            b = b
                .set_column_dictionary_enabled(ColumnPath::from(col), false)
                .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
        }
    }
    b.build()
}

impl TableStore {
    /// Opens the directory, deleting every part the manifest does not name.
    pub fn open(dir: PathBuf, manifest: &Manifest) -> Result<TableStore, AnalyticsError> {
        for t in PART_TABLES.iter().chain([&ASSOCIATIONS]) {
            let d = dir.join(t);
            std::fs::create_dir_all(&d).map_err(|e| AnalyticsError::io(&d, e))?;
            if *t == ASSOCIATIONS {
                continue;
            }
            let keep = manifest.parts.get(*t).cloned().unwrap_or_default();
            for f in std::fs::read_dir(&d).map_err(|e| AnalyticsError::io(&d, e))? {
                let f = f.map_err(|e| AnalyticsError::io(&d, e))?;
                let name = f.file_name().to_string_lossy().to_string();
                if !keep.contains(&name) {
                    std::fs::remove_file(f.path()).map_err(|e| AnalyticsError::io(&f.path(), e))?;
                }
            }
        }
        Ok(TableStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batch` as the next part of `table` (durably) and records it.
    pub fn write_part(
        &self,
        manifest: &mut Manifest,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<(), AnalyticsError> {
        let name = format!("part-{:08}.parquet", manifest.generation);
        let path = self.dir.join(table).join(&name);
        write_parquet(&path, batch, properties(table))?;
        let parts = manifest.parts.entry(table.to_string()).or_default();
        if !parts.contains(&name) {
            parts.push(name);
        }
        Ok(())
    }

    /// Replaces the `associations` table (durably, by rename).
    pub fn write_associations(&self, batch: &RecordBatch) -> Result<(), AnalyticsError> {
        let path = self.dir.join(ASSOCIATIONS).join("associations.parquet");
        write_parquet(&path, batch, properties(ASSOCIATIONS))
    }

    /// Every Parquet file of `table` that the manifest names.
    pub fn files(&self, manifest: &Manifest, table: &str) -> Vec<PathBuf> {
        if table == ASSOCIATIONS {
            let p = self.dir.join(ASSOCIATIONS).join("associations.parquet");
            return if p.exists() { vec![p] } else { Vec::new() };
        }
        manifest
            .parts
            .get(table)
            .map(|ps| ps.iter().map(|n| self.dir.join(table).join(n)).collect())
            .unwrap_or_default()
    }
}

/// Writes a whole Parquet file: to a temporary name, fsync, rename, fsync the directory.
pub fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<(), AnalyticsError> {
    ledger::durable::replace_with(path, ledger::durable::Mode::Shared, |file| {
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(std::io::Error::other)?;
        w.write(batch).map_err(std::io::Error::other)?;
        w.close().map(drop).map_err(std::io::Error::other)
    })
    .map_err(|e| AnalyticsError::io(path, e))
}
