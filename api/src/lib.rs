//! The vocabulary every HTTP surface of a node shares: the write API
//! (`ingest`), the read edge (`web`) and GraphQL (`graphql`) are siblings
//! over it.
//!
//! - [`answer`]: what a successful write answers;
//! - [`problem`]: every refusal's stable code, status and message
//!   (`application/problem+json`), and their OpenAPI schema;
//! - [`params`]: query and path parameters, each failure naming the parameter;
//! - [`tokens`]: bearer tokens, the principal a token names, and roles;
//! - [`body`]: reading a body within its limit, as sent, and as JSON;
//! - [`frame`]: the frame every write runs in (admission, token, body,
//!   idempotency), one per node, shared by the edges that write;
//! - [`idempotency`] over [`journal`]: `Idempotency-Key` answers kept durably;
//! - [`observe`]: request ids, the request log line, counters and latencies;
//! - [`port`]: all of the write path the read side sees (recall changes,
//!   lot releases, device identities), as a narrow interface the write
//!   path implements.
//!
//! Architecture invariant: this crate depends on nothing of ours above
//! `ledger` (it knows no shards, no analytics, no ingest).

pub mod answer;
pub mod body;
pub mod discovery;
pub mod frame;
pub mod idempotency;
pub mod journal;
pub mod observe;
pub mod params;
pub mod port;
pub mod problem;
pub mod tokens;
pub mod wire;

pub use answer::{EntryRefJson, WriteResult, Written};
pub use problem::{ApiError, Epcis};
pub use tokens::{Principal, Role, TokenStore};
