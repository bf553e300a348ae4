//! coldtrail's HTTP write API (an actix-web scope the binary mounts).
//!
//! Partners authenticate with bearer tokens; devices sign their batches with
//! their own ed25519 keys, registered, rotated and revoked through ledger
//! entries. A write is answered only after the group commit that holds it;
//! the answer names each entry's shard, index and id so that its proof can
//! be fetched later. Every refusal is `application/problem+json` with a
//! stable code ([`api::ApiError`]), and nothing of a refused request is
//! written.

mod derived;
pub mod epcis;
pub mod identity;
pub mod read;
pub mod readings_file;
pub mod routes;
pub mod view;
pub mod wire;
pub mod write;

pub use routes::{configure, not_found, ApiDoc};
pub use wire::DeviceClient;
pub use write::{Ingest, Limits, Opened};

use api::ApiError;

/// A shard's failure as the API's refusal: what the store refuses as the
/// store's refusal, a shard that does not exist as not found, anything
/// else as the ledger being unavailable.
pub fn shard_refusal(e: shards::ShardError) -> ApiError {
    match e {
        shards::ShardError::Store(s) => s.into(),
        shards::ShardError::NoSuchShard(s) => ApiError::NotFound(format!(
            "there is no shard {s} on this node; shards are numbered from 0, as in the answers to writes"
        )),
        other => ApiError::Unavailable(other.to_string()),
    }
}
