//! coldtrail's HTTP write API (an actix-web scope the binary mounts).
//!
//! Partners authenticate with bearer tokens; devices sign their batches with
//! their own ed25519 keys, registered, rotated and revoked through ledger
//! entries. A write is answered only after the group commit that holds it;
//! the answer names each entry's shard, index and id so that its proof can
//! be fetched later. Every refusal is `application/problem+json` with a
//! stable code ([`problem::ApiError`]), and nothing of a refused request is
//! written.

pub mod api;
mod derived;
pub mod epcis;
pub mod idempotency;
pub mod identity;
pub mod journal;
pub mod observe;
pub mod params;
pub mod problem;
pub mod read;
pub mod readings_file;
pub mod routes;
pub mod tokens;
pub mod view;
pub mod wire;

pub use api::{Ingest, Limits, Opened, WriteResult, Written};
pub use problem::ApiError;
pub use routes::{configure, not_found, ApiDoc};
pub use tokens::{Principal, Role, TokenStore};
pub use wire::DeviceClient;
