//! A witness: an independent party that checks each checkpoint a log sends
//! it is consistent with the last one it cosigned for that log, and cosigns
//! it, so a client that trusts a quorum of witnesses trusts a head without
//! trusting the log's operator (C2SP `tlog-witness`, over `ledger::note`'s
//! checkpoints and `cosignature/v1`).
//!
//! A witness has its own key and its own data directory, and nothing of any
//! node's: it knows the logs it watches by their public keys (a log's origin
//! follows from its key: `coldtrail/blake3/<log id>`), and keeps, per log,
//! the latest checkpoint it cosigned (`latest.json`, replaced durably before
//! any answer). Submissions whose signatures check are persisted in a group
//! commit (`Witness::commit`): one write at a time, each submission checked
//! against the state every earlier accepted one left, so two requests can
//! never roll a log back (request A checked at size N, B checked and stored
//! at N + K, then A stored at N), and one fsync answers many logs.
//!
//! `POST /add-checkpoint`, as `tlog-witness` says: a body of `old <size>`, up
//! to 63 base64 consistency-proof lines (this crate's BLAKE3 tree,
//! `ledger::merkle`), a blank line, and the signed checkpoint. Answers: 200
//! with the cosignature line; 400 for a malformed body or an old size above
//! the checkpoint's; 403 when no signature by the log's key verifies; 404
//! for a log it does not watch; 409 with the size it holds (`text/x.tlog.size`)
//! when the old size is not that size, and 409 when a checkpoint of the size
//! it holds names another root; 422 when the consistency proof fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, ResponseError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::clock::SharedClock;
use ledger::merkle::Blake3Merkle;
use ledger::note::{Checkpoint, Note};
use ledger::Digest;
use serde::{Deserialize, Serialize};

pub mod client;
pub mod cosigned;

/// The witness state's file in its data directory.
pub const STATE_FILE: &str = "latest.json";
/// The witness key's file in its data directory.
pub const KEY_FILE: &str = "witness.key";
/// Most consistency-proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body taken.
pub const MAX_BODY: usize = 128 * 1024;

/// Why a checkpoint was not cosigned, as `tlog-witness` answers each.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Malformed(String),
    #[error("this witness does not watch the log {0}")]
    UnknownLog(String),
    #[error("no signature by the log's key verifies: {0}")]
    Untrusted(String),
    /// The old size is not the size this witness last cosigned.
    #[error("{0}\n")]
    StaleOldSize(u64),
    #[error("a checkpoint of size {0} with another root was cosigned: the log forked")]
    Fork(u64),
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
    #[error("the witness cannot persist its state: {0}")]
    Storage(String),
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::UnknownLog(_) => StatusCode::NOT_FOUND,
            Refusal::Untrusted(_) => StatusCode::FORBIDDEN,
            Refusal::StaleOldSize(_) | Refusal::Fork(_) => StatusCode::CONFLICT,
            Refusal::BadProof(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let content_type = match self {
            Refusal::StaleOldSize(_) => "text/x.tlog.size",
            _ => "text/plain; charset=utf-8",
        };
        let body = match self {
            Refusal::StaleOldSize(size) => format!("{size}\n"),
            other => format!("{other}\n"),
        };
        HttpResponse::build(self.status_code())
            .content_type(content_type)
            .body(body)
    }
}

/// The latest checkpoint cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    pub size: u64,
    /// The root, hex.
    pub root: String,
    /// The checkpoint as received (its signatures included).
    pub checkpoint: String,
}

/// A witness over a set of logs.
pub struct Witness {
    name: String,
    key: SigningKey,
    /// The logs watched, by origin.
    logs: BTreeMap<String, VerifyingKey>,
    path: PathBuf,
    clock: SharedClock,
    /// By origin; replaced on disk before any cosignature leaves. Only the
    /// group commit's leader changes it (`Witness::commit`).
    latest: Mutex<BTreeMap<String, Latest>>,
    commits: Mutex<Commits>,
    /// Signalled when a batch's answers are in `commits`.
    written: std::sync::Condvar,
}

/// A request to `add-checkpoint`, parsed.
struct Submission<'a> {
    old: u64,
    proof: Vec<Digest>,
    note: &'a str,
}

fn parse(body: &str) -> Result<Submission<'_>, Refusal> {
    let bad = |m: &str| Refusal::Malformed(m.to_string());
    let (old_line, rest) = body
        .split_once('\n')
        .ok_or_else(|| bad("the body must start with an `old <size>` line"))?;
    let old = old_line
        .strip_prefix("old ")
        .filter(|s| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s.len() == 1 || !s.starts_with('0'))
        })
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            bad("the first line must be `old <size>`, the size in decimal without leading zeroes")
        })?;
    // No proof line is empty, so the first blank line ends them (the
    // checkpoint's own blank line comes after).
    let (proof_lines, note) = match rest.strip_prefix('\n') {
        Some(note) => ("", note),
        None => rest.split_once("\n\n").ok_or_else(|| {
            bad("the proof lines must end with a blank line before the checkpoint")
        })?,
    };
    let proof: Vec<Digest> = if proof_lines.is_empty() {
        Vec::new()
    } else {
        proof_lines
            .split('\n')
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(Digest)
                    .ok_or_else(|| {
                        bad("each consistency proof line must be a 32-byte hash in base64")
                    })
            })
            .collect::<Result<_, _>>()?
    };
    if proof.len() > MAX_PROOF_LINES {
        return Err(bad("at most 63 consistency proof lines"));
    }
    Ok(Submission { old, proof, note })
}

impl Witness {
    /// The witness `name` with the key and state in `dir` (the key made on
    /// first use), watching `logs`.
    pub fn open(
        dir: &Path,
        name: &str,
        logs: &[VerifyingKey],
        clock: SharedClock,
    ) -> Result<Witness, String> {
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return Err(format!("{name:?}: a witness name must be non-empty, without spaces or plus signs (a schema-less URL such as witness.example/w1)"));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key_path = dir.join(KEY_FILE);
        let key = if key_path.exists() {
            ledger::keys::read_key_file(&key_path).map_err(|e| e.to_string())?
        } else {
            let k = ledger::keys::generate().map_err(|e| e.to_string())?;
            ledger::keys::write_key_file(&key_path, &k).map_err(|e| e.to_string())?;
            k
        };
        let path = dir.join(STATE_FILE);
        let latest = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Witness {
            name: name.to_string(),
            key,
            logs: logs
                .iter()
                .map(|k| (ledger::note::origin(&ledger::head::log_id(k)), *k))
                .collect(),
            path,
            clock,
            latest: Mutex::new(latest),
            commits: Mutex::default(),
            written: std::sync::Condvar::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The latest checkpoint cosigned for the log `origin`.
    pub fn latest(&self, origin: &str) -> Option<Latest> {
        self.latest
            .lock()
            .expect("witness lock")
            .get(origin)
            .cloned()
    }

    /// `add-checkpoint` of a request body as received (UTF-8 or refused).
    pub fn add_checkpoint_bytes(&self, body: &[u8]) -> Result<String, Refusal> {
        let text = std::str::from_utf8(body)
            .map_err(|_| Refusal::Malformed("the body must be UTF-8".into()))?;
        self.add_checkpoint(text)
    }

    /// `add-checkpoint`: checks the submission and, if it holds, records the
    /// checkpoint durably and returns its cosignature line.
    pub fn add_checkpoint(&self, body: &str) -> Result<String, Refusal> {
        let s = parse(body)?;
        let note = Note::parse(s.note).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse(&note.text).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let key = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| Refusal::UnknownLog(checkpoint.origin.clone()))?;
        note.verify_signature(&checkpoint.origin, key)
            .map_err(|e| Refusal::Untrusted(e.to_string()))?;
        if s.old > checkpoint.size {
            return Err(Refusal::Malformed(format!(
                "the old size {} is above the checkpoint's {}",
                s.old, checkpoint.size
            )));
        }
        self.commit(Pending {
            origin: checkpoint.origin,
            old: s.old,
            size: checkpoint.size,
            root: checkpoint.root,
            proof: s.proof,
            checkpoint: s.note.to_string(),
        })?;
        let now_s = (self.clock.now_ms().max(0) / 1000) as u64;
        Ok(ledger::note::cosign(
            &note.text, &self.name, &self.key, now_s,
        ))
    }
}

/// A submission whose signature checked, waiting to be checked against
/// the state and made durable.
struct Pending {
    origin: String,
    old: u64,
    size: u64,
    root: Digest,
    proof: Vec<Digest>,
    checkpoint: String,
}

/// Submissions queued for the next state write, and the answers of the
/// writes done (by ticket), under one lock.
#[derive(Default)]
struct Commits {
    queue: Vec<(u64, Pending)>,
    answers: BTreeMap<u64, Result<(), Refusal>>,
    next_ticket: u64,
    /// A caller is checking and writing a batch now (the leader).
    writing: bool,
}

/// Whether `p` may follow what `held` says of its log: the old size is the
/// size held, and the checkpoint extends it (equal and the same root, or
/// larger with a consistency proof that checks).
fn follows(held: Option<&Latest>, p: &Pending) -> Result<(), Refusal> {
    let held_size = held.map_or(0, |l| l.size);
    if p.old != held_size {
        return Err(Refusal::StaleOldSize(held_size));
    }
    match held {
        Some(h) if h.size == p.size => {
            if h.root != p.root.to_hex() {
                return Err(Refusal::Fork(h.size));
            }
            if !p.proof.is_empty() {
                return Err(Refusal::BadProof(
                    "between equal sizes the proof is empty".into(),
                ));
            }
        }
        // Every tree grew from the empty one: from size 0 there is
        // nothing to prove (below), whether or not it was cosigned.
        Some(h) if h.size > 0 => {
            let old_root = Digest::from_hex(&h.root)
                .ok_or_else(|| Refusal::Storage("a stored root is not hex".into()))?;
            ledger::merkle::verify_consistency::<Blake3Merkle>(
                h.size, p.size, &p.proof, &old_root, &p.root,
            )
            .map_err(|e| Refusal::BadProof(e.to_string()))?;
        }
        _ if !p.proof.is_empty() => {
            return Err(Refusal::BadProof("from size 0 the proof is empty".into()));
        }
        _ => {}
    }
    Ok(())
}

impl Witness {
    /// Checks `p` against the state and makes it durable, in a group
    /// commit: whoever finds no write in progress takes every submission
    /// queued, checks them in queue order against the state as each one
    /// leaves it, writes the state once and answers them all; the others
    /// wait for their answer. One write at a time, and each submission is
    /// checked against every one accepted before it, so no log is ever
    /// rolled back; none is answered before the write that holds it.
    fn commit(&self, p: Pending) -> Result<(), Refusal> {
        let mut c = self.commits.lock().expect("witness commits lock");
        let ticket = c.next_ticket;
        c.next_ticket += 1;
        c.queue.push((ticket, p));
        loop {
            if let Some(answer) = c.answers.remove(&ticket) {
                return answer;
            }
            if c.writing {
                c = self.written.wait(c).expect("witness commits lock");
                continue;
            }
            c.writing = true;
            let batch = std::mem::take(&mut c.queue);
            drop(c);
            let answers = self.write_batch(batch);
            c = self.commits.lock().expect("witness commits lock");
            c.writing = false;
            c.answers.extend(answers);
            self.written.notify_all();
        }
    }

    /// The leader's part: every submission of `batch` checked in order, the
    /// state written once if any was accepted (all of them refused with the
    /// storage error if the write fails), the answers by ticket.
    fn write_batch(&self, batch: Vec<(u64, Pending)>) -> Vec<(u64, Result<(), Refusal>)> {
        let mut latest = self.latest.lock().expect("witness lock");
        let mut next = latest.clone();
        let mut answers = Vec::with_capacity(batch.len());
        for (ticket, p) in batch {
            let answer = follows(next.get(&p.origin), &p);
            if answer.is_ok() {
                next.insert(
                    p.origin,
                    Latest {
                        size: p.size,
                        root: p.root.to_hex(),
                        checkpoint: p.checkpoint,
                    },
                );
            }
            answers.push((ticket, answer));
        }
        if next != *latest {
            let bytes = serde_json::to_vec_pretty(&next).expect("the state serialises");
            match ledger::durable::replace(&self.path, &bytes, ledger::durable::Mode::Shared) {
                Ok(()) => *latest = next,
                Err(e) => {
                    let why = format!("{}: {e}", self.path.display());
                    for (_, a) in &mut answers {
                        if a.is_ok() {
                            *a = Err(Refusal::Storage(why.clone()));
                        }
                    }
                }
            }
        }
        answers
    }
}

/// Registers `POST /add-checkpoint`.
pub fn configure(witness: Arc<Witness>) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::from(witness))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("/add-checkpoint", web::post().to(add_checkpoint));
    }
}

async fn add_checkpoint(
    witness: web::Data<Witness>,
    body: web::Bytes,
) -> Result<HttpResponse, Refusal> {
    // Verifying and the fsync block: off the async threads.
    let line = web::block(move || witness.add_checkpoint_bytes(&body))
        .await
        .map_err(|e| Refusal::Storage(e.to_string()))??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(line))
}

#[cfg(test)]
mod tests;
