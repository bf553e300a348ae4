//! A log's side of `tlog-witness`: sending a witness a checkpoint with a
//! consistency proof, and checking the cosignature it answers with.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use ledger::note::Note;
use ledger::Digest;
use serde::{Deserialize, Serialize};

/// A witness as a log's operator configures it: where it listens, its name
/// and its public key (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its submission prefix (`http://host:port`; `/add-checkpoint` is added).
    pub url: String,
    pub name: String,
    pub key: String,
}

impl Peer {
    /// The witness's public key, checked.
    pub fn public_key(&self) -> Result<VerifyingKey, String> {
        hex::decode(&self.key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| {
                format!(
                    "witness {}: its key must be an ed25519 public key in 64 hex digits",
                    self.name
                )
            })
    }
}

/// What a witness answered a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Its cosignature line, checked under its key.
    Cosigned(String),
    /// The old size sent was not the one it holds: it holds this size.
    Holds(u64),
    /// Any other answer (a refusal, a cosignature that does not verify),
    /// with its HTTP status.
    Refused { status: u16, why: String },
}

impl Answer {
    /// Whether the witness says the checkpoint contradicts what it cosigned
    /// before: a fork at the size it holds (409 without a size), or a
    /// consistency proof that fails (422).
    pub fn is_inconsistent(&self) -> bool {
        matches!(
            self,
            Answer::Refused {
                status: 409 | 422,
                ..
            }
        )
    }
}

/// The body of an `add-checkpoint` request.
pub fn request_body(old: u64, proof: &[Digest], checkpoint: &str) -> String {
    let lines: String = proof
        .iter()
        .map(|h| format!("{}\n", B64.encode(h.0)))
        .collect();
    format!("old {old}\n{lines}\n{checkpoint}")
}

/// Sends `checkpoint` (the log's signed note) to `peer` with the proof of
/// its consistency with size `old`; a network failure is an `Err`.
pub fn submit(
    agent: &ureq::Agent,
    peer: &Peer,
    key: &VerifyingKey,
    old: u64,
    proof: &[Digest],
    checkpoint: &str,
) -> Result<Answer, String> {
    let url = format!("{}/add-checkpoint", peer.url.trim_end_matches('/'));
    let response = agent
        .post(&url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(request_body(old, proof, checkpoint).as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(match status {
        200 => {
            // Keep only a line by this witness's key that verifies.
            let verified = body.lines().find_map(|line| {
                let note = Note::parse(&format!("{checkpoint}{line}\n")).ok()?;
                note.verify_cosignature(&peer.name, key).ok()?;
                Some(format!("{line}\n"))
            });
            match verified {
                Some(line) => Answer::Cosigned(line),
                None => Answer::Refused {
                    status,
                    why: format!("{}: no cosignature by its key verifies: {body}", peer.name),
                },
            }
        }
        409 => match body.trim_end_matches('\n').parse() {
            Ok(size) if !body.trim().is_empty() && body.ends_with('\n') => Answer::Holds(size),
            _ => Answer::Refused {
                status,
                why: format!("{}: 409 {body}", peer.name),
            },
        },
        other => Answer::Refused {
            status: other,
            why: format!("{}: {other} {body}", peer.name),
        },
    })
}
