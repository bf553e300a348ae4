//! A list of records kept as one JSON file in the data directory (named
//! queries, subscriptions): read whole at start, replaced whole and
//! durably (`ledger::durable`) on every change, so a crash leaves the old
//! list or the new one and a change acknowledged survives a restart.

use std::path::{Path, PathBuf};

use api::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a list file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a list of {what}: {message}; fix or remove it")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
}

/// The records in `path` (none if the file does not exist yet); `what`
/// names them in a refusal.
pub fn read<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Vec<T>, ListFileError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ListFileError::Invalid {
            path: path.to_path_buf(),
            what,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ListFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces `path` with `records`, durably.
pub fn write<T: Serialize>(
    path: &Path,
    records: &[&T],
    mode: ledger::durable::Mode,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec_pretty(records).expect("records serialise");
    ledger::durable::replace(path, &bytes, mode)
        .map_err(|e| ApiError::Unavailable(format!("{}: {e}", path.display())))
}
