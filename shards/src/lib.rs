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
//!
//! ## Shards, receipts, feed (`shards`)
//!
//! A node's data directory holds `NODE` (its shard count, and `store postgres` when its logs are
//! in a database), `keys/shard-NNN.key` (one log key per shard, 0600), `shard-NNN/` (one log each,
//! embedded store) and `cursors/` (feed consumers).
//!
//! - **Routing.** `Router::shard_for(key)` = BLAKE3 (routing domain) of the key, mapped onto
//!   N shards. Readings are partitioned by device, events by lot/shipment/container, identity
//!   changes by organisation. The mapping is pinned by a test.
//! - **Changing N.** Refused: a node opened with another shard count than its `NODE` file
//!   says stops with a message naming both counts. Every subject's home is its hash over N,
//!   so a new N would strand each subject's history on its old home. Moving to another N
//!   will need a re-homing job that replays every log into a new node (not built).
//! - **Sequencer.** `Shard::append` encodes and hashes its entries first (entries that come
//!   encoded, `ledger::entry::Encoded`, are not encoded again: a binary device batch is
//!   appended as the bytes its device sent and signed, which the strict decoder guarantees are
//!   its canonical encoding), then takes the shard's sequencer lock only to assign indices,
//!   add a `ReceiptOut` right after each entry for every subject homed on another shard
//!   (numbered per channel `(A, B)` from 0 without gaps), and queue the whole group on the
//!   store; the store's writer commits it with one fsync. The sequencer's state (next index,
//!   outbox positions per channel, next receipt expected from each shard, subject -> entries)
//!   is derived from the log: at open, from its checkpoint (`checkpoints/sequencer-NNN`, see
//!   "Checkpoints") and the entries after it, or by reading the whole log (only the header
//!   of readings entries) when there is no usable checkpoint.
//! - **Relay.** `Node::relay_once` sends, per channel, every committed receipt the destination
//!   does not yet have, in runs of up to 512: each run carries one signed head of the sender
//!   and an inclusion proof per receipt. `Shard::accept_batch` checks addressing, the head's
//!   signature under the sender's key, each proof, and the channel order, then commits the
//!   accepted `ReceiptIn` entries as one group. Already-committed receipts are refused as
//!   replays (idempotent), a gap as skipped; a run with any forgery commits nothing. The
//!   transport is a trait (`ReceiptTransport`): in-process, or over NATS JetStream
//!   (`jetstream`: a durable stream, a consumer per destination shard).
//!   `spawn_relay` runs it after every commit and on a retry timer.
//! - **Feed.** `feed::Subscription` hands out committed entries per shard in order, reading
//!   them from the store (no per-consumer buffer); `commit(batch, state)` replaces the
//!   consumer's cursor file (cursors plus the consumer's own state) atomically and durably,
//!   which makes delivery exactly-once for a consumer that keeps its state there.
//! - **Mirrors.** In a network, each member publishes its shards' logs (`jetstream::LogPublisher`:
//!   runs of entries, each under one of the shard's signed heads with the consistency proof from
//!   the run's end) and follows every other member's into mirrors (`jetstream::MemberFollower`,
//!   `mirror::Mirror`), which check each run before keeping it and catch a member that signs two
//!   histories. A follower vouches for each head its mirror verified with a cosignature
//!   (`Node::cosign`, the operator key), which the member keeps (`jetstream::CosignatureInbox`)
//!   and serves with its checkpoints. `serve` wires them (`src/networking.rs`); the verifier's
//!   routes serve other members' entries and proofs from them (`mirror::Mirrors`); the rest of
//!   the read side (lineage, rules, search) does not read mirrors yet.
//! - **History.** `Node::history(subject)` walks the subject's home shard's entries about it,
//!   following each `ReceiptIn` to the entry it points at on the sender's shard; every item
//!   carries its inclusion proof and signed head.

pub mod checkpoint;
pub mod feed;
pub mod jetstream;
pub mod keyset;
pub mod mirror;
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
pub use shard::{verify_delivery, Accepted, Committed, Opened, ReceiptError, Shard};

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
    /// Between nodes: NATS JetStream could not be reached or refused.
    #[error("receipt transport: {0}")]
    Transport(String),
}

impl ShardError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> ShardError {
        ShardError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
