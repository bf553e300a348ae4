//! `Idempotency-Key`: a retried write returns the first answer and writes
//! nothing twice.
//!
//! Answers are kept per (organisation, key) with a fingerprint of the request
//! they answered; a key reused for different content is refused. Answers are
//! appended to the journal `DIR/idempotency.jsonl` (fsync'd) before they are
//! sent, so a retry after a server restart still gets the first answer. At
//! most `MAX_KEYS` answers are kept; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::journal::Journal;
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
    journal: Journal<Line>,
}

impl IdempotencyStore {
    pub fn open(data_dir: &Path) -> std::io::Result<IdempotencyStore> {
        // A torn last line (crash mid-append) is not read: its answer was
        // never sent, so its retry runs afresh.
        let (journal, lines) =
            Journal::<Line>::open(&data_dir.join("idempotency.jsonl"), MAX_KEYS)?;
        let mut keys = Keys::default();
        for l in lines {
            let _ = keys.cell(&l.key).set(l.answer);
        }
        Ok(IdempotencyStore {
            keys: Mutex::new(keys),
            journal,
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
                self.journal
                    .append(&Line {
                        key: full.clone(),
                        answer: answer.clone(),
                    })
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
