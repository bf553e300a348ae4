//! The schema's types: thin views over what `analytics` and `readstate`
//! compute, each naming the ledger entries it rests on. One file per
//! resource: `proofs.rs` (entries, proofs, heads), `parties.rs`,
//! `event.rs`, `verdict.rs`, `lot.rs`, `trace.rs`, `recall.rs`,
//! `device.rs`, `search.rs`.

use std::sync::Arc;

use analytics::lineage::{At, EventView, LotView, VerdictView};
use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use readstate::verifier::{HeadJson, ProofJson};

use crate::context::{
    caller, cost, loader, refusal, with_graph, write_path, Answer, DeviceOfKey, EventsKey, LotKey,
    OrgKey, OwnerKey, ProofKey, VerdictsKey, WatchersKey,
};
use crate::page::{page, Page};

mod device;
mod event;
mod lot;
mod parties;
mod proofs;
mod recall;
mod search;
mod trace;
mod verdict;

pub use device::*;
pub use event::*;
pub use lot::*;
pub use parties::*;
pub use proofs::*;
pub use recall::*;
pub use search::*;
pub use trace::*;
pub use verdict::*;

/// Unix epoch milliseconds as a time.
pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
