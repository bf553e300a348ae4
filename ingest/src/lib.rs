//! coldtrail's HTTP write API (an actix-web scope the binary mounts).
//!
//! Partners authenticate with bearer tokens; devices sign their batches with
//! their own ed25519 keys, registered, rotated and revoked through ledger
//! entries. A write is answered only after the group commit that holds it;
//! the answer names each entry's shard, index and id so that its proof can
//! be fetched later. Every refusal is `application/problem+json` with a
//! stable code ([`api::ApiError`]), and nothing of a refused request is
//! written.
//!
//! ## The write path over HTTP (`ingest`)
//!
//! 1. A handler takes one of `max_in_flight` permits (none left: 429 + Retry-After), reads the
//!    bearer token (`tokens.json` holds only BLAKE3 hashes; re-read when it changes), reads
//!    the body up to `max_body_bytes` (413 past it), and hands it to one `Ingest` function.
//! 2. `submit_batches` checks bounds and clocks, ownership and the key valid at the first
//!    reading (identity state), verifies all signatures in one ed25519 batch verification,
//!    then, under the identity lock, checks and reserves each device's sequence numbers, and
//!    appends each device's batches on its home shard. The answer (201) lists shard, index and
//!    id per entry; proofs come from `GET /v1/shards/{s}/entries/{i}/proof`.
//! 3. `capture` parses the EPCIS document (`epcis.rs`) into custody events, each homed on the
//!    identifier it is chiefly about; receipts carry it to the other subjects' shards. The
//!    capture job (`GET /capture/{id}`) is journalled (`capture-jobs.jsonl`) before the
//!    answer names it, so it is found after a restart.
//! 4. With an `Idempotency-Key`, the key and the request's fingerprint (the *intent*) are
//!    recorded before the write runs, and the first answer before it is sent (both fsync'd,
//!    `idempotency.jsonl`); a retry gets the answer back without running again. A key with an
//!    intent and no answer (a crash between commit and record, or a write that committed on
//!    one shard and failed on another) runs again as `Attempt::Again`: for device batches,
//!    `submit_encoded_again` answers for the batches already on the ledger byte for byte and
//!    submits the rest; a device change (register, rotate, revoke, reinstate) is answered
//!    with the device's last entry when that is the same change but for its time, and a lot
//!    release with the lot's last quarantine or release entry likewise (`IdentityState::
//!    lot_changes`); a recall change (open, widen, close) with the step the graph shows the
//!    same caller made for the same request (`analytics::recall::committed`: the newest open
//!    recall of the lot opened for that reason; the recall's last step a widening naming the
//!    lot, or its closing); a capture answers its events as already captured (eventIDs). A
//!    change made since by someone else hides the earlier attempt, and the retry runs as a new
//!    request. Both files are `journal::Journal`s: JSON lines, fsync'd (concurrent
//!    appends share one flush), a torn last line cut off at open, the newest N kept and the
//!    file compacted at open when it holds twice as many.
//!
//! The identity state (organisations, devices, keys over time, revocations, next sequence
//! numbers) and the eventID index are derived: rebuilt at start from their checkpoint and the
//! logs after it (or from all logs), then kept up to date as the server commits. The write
//! path's copies also hold sequence numbers it reserved and has not committed; checkpoints are
//! made from a second fold of committed entries only (`ingest/src/derived.rs`), which the
//! follower keeps current from the feed. A device's readings and suspensions are homed on its
//! own shard and its registration on its organisation's: the fold keeps what it sees of a
//! device before its registration and hands it over when the registration comes. Invariant: a device batch is committed only if its signature
//! verifies under the key its identity entries give for its time, and its first sequence
//! number is at least the device's next; a revoked device signs nothing more.

mod derived;
pub mod epcis;
pub mod identity;
pub mod readings_file;
pub mod routes;
pub mod wire;
pub mod write;

pub use routes::{configure, not_found, openapi, ApiDoc};
pub use wire::DeviceClient;
pub use write::{Ingest, Limits, Opened};

use api::ApiError;

/// A write's failure at its shard as the API's refusal: what the store
/// refuses as the store's refusal, anything else as the ledger being
/// unavailable. (Writes reach shards by routing, never by a caller's shard
/// number; the read side's `readstate::shard_refusal` also answers that.)
pub(crate) fn write_refusal(e: shards::ShardError) -> ApiError {
    match e {
        shards::ShardError::Store(s) => s.into(),
        other => ApiError::Unavailable(other.to_string()),
    }
}
