//! coldtrail's sharded ledger.
//!
//! A [`Node`] runs N shards, each a log of its own ([`Shard`]) under its own
//! key. A [`Router`] gives every subject (device, lot, shipment, container,
//! organisation) a home shard. An entry is appended on the home shard of its
//! partition key; for each other subject it concerns, a cross-shard receipt is
//! committed in the same group, and the relay delivers it, with its inclusion
//! proof and the sender's signed head, to the subject's home shard, which
//! checks it and commits it exactly once, in channel order.
//!
//! The [`feed`] hands every committed entry to consumers exactly once, in
//! shard order, from durable cursors; [`Node::history`] returns everything
//! about a subject, across shards, with a proof for each entry.

pub mod checkpoint;
pub mod feed;
pub mod keyset;
mod node;
mod router;
mod shard;

pub use node::{
    pinned, repoint_store, HistoryItem, LocalTransport, Node, NodeConfig, ProvenEntry,
    ReceiptTransport,
};

/// The future type [`ReceiptTransport`] implementations return.
pub mod node_future {
    pub use crate::node::BoxFuture;
}
pub use router::Router;
pub use shard::{Accepted, Committed, Opened, ReceiptError, Shard};

/// Errors of the sharded ledger.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Store(#[from] ledger::store::StoreError),
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error("{0}")]
    Config(String),
    #[error("shard {shard}: {what}")]
    Corrupt { shard: u32, what: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] ledger::keys::KeyError),
    #[error("no shard {0} on this node")]
    NoSuchShard(u32),
}

impl ShardError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> ShardError {
        ShardError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
