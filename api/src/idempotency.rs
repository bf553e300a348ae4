//! `Idempotency-Key`: a retried write returns the first answer and writes
//! nothing twice.
//!
//! Answers are kept per (organisation, key) with a fingerprint of the request
//! they answered; a key reused for different content is refused. Answers are
//! appended to the journal `DIR/idempotency.jsonl` (fsync'd) before they are
//! sent, so a retry after a server restart still gets the first answer. At
//! most `MAX_KEYS` answers are kept; the oldest go first.
//!
//! A write can commit and still leave no answer: the server crashes between
//! the commit and the answer's record, or a write over several shards commits
//! on one and fails on another. So before a keyed write first runs, its key
//! and fingerprint are recorded too (the *intent*, fsync'd). A retry of a key
//! with an intent and no answer runs as [`Attempt::Again`]: the write then
//! finishes what is missing and answers for what is already there, instead
//! of refusing its own earlier half as a replay. A new key for the same
//! content has no intent, so a replay under it stays refused.

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

/// How a keyed write runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Nothing ran under this key before.
    First,
    /// An earlier attempt with the same content ran and left no answer: it
    /// may have committed all, part or none of its write.
    Again,
}

/// A line of the journal. Untagged: an answer line is what journals held
/// before intents were recorded, so those still read.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Answer {
        key: String,
        #[serde(flatten)]
        answer: Answer,
    },
    Intent {
        key: String,
        /// The fingerprint of the request about to run.
        intent: String,
    },
}

#[derive(Default)]
struct Keys {
    cells: HashMap<String, Arc<OnceCell<Answer>>>,
    order: VecDeque<String>,
    /// Keys whose intent is recorded and whose answer is not, with the
    /// fingerprint of that intent.
    unanswered: HashMap<String, String>,
}

impl Keys {
    fn cell(&mut self, key: &str) -> Arc<OnceCell<Answer>> {
        if let Some(c) = self.cells.get(key) {
            return Arc::clone(c);
        }
        if self.order.len() >= MAX_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.cells.remove(&old);
                self.unanswered.remove(&old);
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
        // A torn last line (crash mid-append) is not read: an answer on it
        // was never sent, and an intent on it ran nothing yet. Two lines per
        // key at most (intent, answer).
        let (journal, lines) =
            Journal::<Line>::open(&data_dir.join("idempotency.jsonl"), 2 * MAX_KEYS)?;
        let mut keys = Keys::default();
        for l in lines {
            match l {
                Line::Intent { key, intent } => {
                    keys.cell(&key);
                    keys.unanswered.insert(key, intent);
                }
                Line::Answer { key, answer } => {
                    let _ = keys.cell(&key).set(answer);
                    keys.unanswered.remove(&key);
                }
            }
        }
        Ok(IdempotencyStore {
            keys: Mutex::new(keys),
            journal,
        })
    }

    /// Runs `write` until it answers once per (org, key); later calls with the
    /// same key get that answer, or a refusal if their fingerprint differs. A
    /// failed `write` stores no answer: the retry runs again, as
    /// [`Attempt::Again`] when its content is the same.
    pub async fn once<F, Fut>(
        &self,
        org: &str,
        key: &str,
        fingerprint: String,
        write: F,
    ) -> Result<Answer, ApiError>
    where
        F: FnOnce(Attempt) -> Fut,
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
                // Only one caller per key gets here at a time (the cell's
                // init), so the intent and the attempt cannot interleave.
                let attempt = match self.unanswered(&full) {
                    Some(f) if f == fingerprint => Attempt::Again,
                    _ => {
                        self.record(Line::Intent {
                            key: full.clone(),
                            intent: fingerprint.clone(),
                        })?;
                        self.keys
                            .lock()
                            .expect("idempotency lock")
                            .unanswered
                            .insert(full.clone(), fingerprint.clone());
                        Attempt::First
                    }
                };
                let answer = write(attempt).await?;
                self.record(Line::Answer {
                    key: full.clone(),
                    answer: answer.clone(),
                })?;
                self.keys
                    .lock()
                    .expect("idempotency lock")
                    .unanswered
                    .remove(&full);
                Ok::<_, ApiError>(answer)
            })
            .await?;
        if answer.fingerprint != fingerprint {
            return Err(ApiError::IdempotencyKeyReused(key.to_string()));
        }
        Ok(answer.clone())
    }

    fn unanswered(&self, key: &str) -> Option<String> {
        let keys = self.keys.lock().expect("idempotency lock");
        keys.unanswered.get(key).cloned()
    }

    fn record(&self, line: Line) -> Result<(), ApiError> {
        self.journal
            .append(&line)
            .map_err(|e| ApiError::Unavailable(format!("recording an idempotency key: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(fingerprint: &str, body: &str) -> Answer {
        Answer {
            fingerprint: fingerprint.into(),
            status: 201,
            body: body.into(),
            location: None,
        }
    }

    /// Runs `once` and tells how the write ran (`None`: it did not run).
    fn run(
        store: &IdempotencyStore,
        key: &str,
        fingerprint: &str,
        result: Result<&str, ApiError>,
    ) -> (Option<Attempt>, Result<Answer, ApiError>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut ran = None;
        let out = rt.block_on(store.once("org", key, fingerprint.into(), |attempt| {
            ran = Some(attempt);
            let result = result.map(|body| answer(fingerprint, body));
            async move { result }
        }));
        (ran, out)
    }

    fn journal_lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("idempotency.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn an_answer_is_given_once_and_replayed_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdempotencyStore::open(dir.path()).unwrap();
        let (ran, a) = run(&store, "k", "f", Ok("first"));
        assert_eq!(ran, Some(Attempt::First));
        assert_eq!(a.unwrap().body, "first");
        drop(store);
        let store = IdempotencyStore::open(dir.path()).unwrap();
        let (ran, a) = run(&store, "k", "f", Ok("second"));
        assert_eq!(ran, None);
        assert_eq!(a.unwrap().body, "first");
        let (ran, a) = run(&store, "k", "other", Ok("third"));
        assert_eq!(ran, None);
        assert!(matches!(a, Err(ApiError::IdempotencyKeyReused(_))));
        // The intent goes to disk before the write runs, the answer after.
        let lines = journal_lines(dir.path());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("\"intent\":\"f\""), "{lines:?}");
        assert!(lines[1].contains("\"body\":\"first\""), "{lines:?}");
    }

    /// The state a crash between a write's commit and its answer's record
    /// leaves: the intent without the answer. The retry runs as `Again`; a
    /// new key for the same content, or the key with other content, runs
    /// as `First`.
    #[test]
    fn a_key_whose_answer_a_crash_lost_runs_again_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdempotencyStore::open(dir.path()).unwrap();
        run(&store, "k", "f", Ok("first")).1.unwrap();
        drop(store);
        let path = dir.path().join("idempotency.jsonl");
        let intent_only = format!("{}\n", journal_lines(dir.path())[0]);
        std::fs::write(&path, &intent_only).unwrap();

        let store = IdempotencyStore::open(dir.path()).unwrap();
        assert_eq!(run(&store, "new", "f", Ok("n")).0, Some(Attempt::First));
        assert_eq!(run(&store, "k", "f", Ok("again")).0, Some(Attempt::Again));
        assert_eq!(run(&store, "k", "f", Ok("x")).1.unwrap().body, "again");

        // The key with other content is a new attempt (its first failed
        // before recording anything but its intent).
        std::fs::write(&path, &intent_only).unwrap();
        let store = IdempotencyStore::open(dir.path()).unwrap();
        assert_eq!(run(&store, "k", "g", Ok("g")).0, Some(Attempt::First));
    }

    #[test]
    fn a_failed_write_leaves_its_retry_an_attempt_again_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdempotencyStore::open(dir.path()).unwrap();
        let (ran, a) = run(&store, "k", "f", Err(ApiError::Unavailable("down".into())));
        assert_eq!(ran, Some(Attempt::First));
        assert!(a.is_err());
        let (ran, a) = run(&store, "k", "f", Ok("done"));
        assert_eq!(ran, Some(Attempt::Again));
        assert_eq!(a.unwrap().body, "done");
        // Answered: nothing runs again, after reopening either.
        drop(store);
        let store = IdempotencyStore::open(dir.path()).unwrap();
        assert_eq!(run(&store, "k", "f", Ok("no")).0, None);
        // One intent, one answer: the retry did not record its intent twice.
        assert_eq!(journal_lines(dir.path()).len(), 2);
    }

    #[test]
    fn journals_of_answers_only_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("idempotency.jsonl"),
            "{\"key\":\"org\\u0000k\",\"fingerprint\":\"f\",\"status\":201,\"body\":\"old\"}\n",
        )
        .unwrap();
        let store = IdempotencyStore::open(dir.path()).unwrap();
        let (ran, a) = run(&store, "k", "f", Ok("new"));
        assert_eq!(ran, None);
        assert_eq!(a.unwrap().body, "old");
    }
}
