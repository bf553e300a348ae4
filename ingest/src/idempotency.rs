//! `Idempotency-Key`: a retried write returns the first answer and writes
//! nothing twice.
//!
//! Answers are kept per (organisation, key) with a fingerprint of the request
//! they answered; a key reused for different content is refused. Answers are
//! appended to `DIR/idempotency.jsonl` (fsync'd) before they are sent, so a
//! retry after a server restart still gets the first answer. At most
//! `MAX_KEYS` answers are kept; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::problem::ApiError;

pub const MAX_KEYS: usize = 100_000;

/// A first answer, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    #[serde(flatten)]
    answer: Answer,
}

#[derive(Default)]
struct Keys {
    cells: HashMap<String, Arc<OnceCell<Answer>>>,
    order: VecDeque<String>,
}

impl Keys {
    fn cell(&mut self, key: &str) -> Arc<OnceCell<Answer>> {
        if let Some(c) = self.cells.get(key) {
            return Arc::clone(c);
        }
        if self.order.len() >= MAX_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.cells.remove(&old);
            }
        }
        let c = Arc::new(OnceCell::new());
        self.cells.insert(key.to_string(), Arc::clone(&c));
        self.order.push_back(key.to_string());
        c
    }
}

pub struct IdempotencyStore {
    keys: Mutex<Keys>,
    file: Mutex<File>,
}

impl IdempotencyStore {
    pub fn open(data_dir: &Path) -> std::io::Result<IdempotencyStore> {
        let path = data_dir.join("idempotency.jsonl");
        let mut keys = Keys::default();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                // A torn last line (crash mid-append) is skipped: its answer
                // was never sent, so its retry runs afresh.
                let Ok(line) = line else { break };
                if let Ok(l) = serde_json::from_str::<Line>(&line) {
                    let _ = keys.cell(&l.key).set(l.answer);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(IdempotencyStore {
            keys: Mutex::new(keys),
            file: Mutex::new(file),
        })
    }

    /// Runs `write` once per (org, key); later calls with the same key get the
    /// first answer, or a refusal if their fingerprint differs. A failed
    /// `write` stores nothing: the retry runs again.
    pub async fn once<F, Fut>(
        &self,
        org: &str,
        key: &str,
        fingerprint: String,
        write: F,
    ) -> Result<Answer, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Answer, ApiError>>,
    {
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::InvalidBody(
                "Idempotency-Key must be 1 to 255 characters".into(),
            ));
        }
        let full = format!("{org}\u{0}{key}");
        let cell = self.keys.lock().expect("idempotency lock").cell(&full);
        let answer = cell
            .get_or_try_init(|| async {
                let answer = write().await?;
                let line = serde_json::to_string(&Line {
                    key: full.clone(),
                    answer: answer.clone(),
                })
                .expect("answers serialise");
                let mut f = self.file.lock().expect("idempotency file lock");
                writeln!(f, "{line}")
                    .and_then(|_| f.sync_data())
                    .map_err(|e| {
                        ApiError::Unavailable(format!("recording the idempotent answer: {e}"))
                    })?;
                Ok::<_, ApiError>(answer)
            })
            .await?;
        if answer.fingerprint != fingerprint {
            return Err(ApiError::IdempotencyKeyReused(key.to_string()));
        }
        Ok(answer.clone())
    }
}
