//! coldtrail's tamper-evident ledger.
//!
//! - [`clock`]: the one way time reaches a decision (injected, so tests drive it).
//! - [`entry`]: what the ledger records, with a canonical, versioned encoding;
//!   [`reading`]: the compact encoding of a device's sensor batch.
//! - [`hash`]: BLAKE3 with one domain per purpose.
//! - [`merkle`]: RFC 9162-shaped Merkle proofs, generic over the hash, and the
//!   small verifier clients reuse; [`head`]: signed tree heads;
//!   [`keyset`]: a node's log keys, signed by its operator key;
//!   [`network`]: a network's member nodes, each version signed by a
//!   majority of the members before it.
//! - [`durable`] (feature `store`): replacing a file durably, the one way it is done.
//! - [`store`] (feature `store`): the `Store` boundary and the embedded,
//!   append-only segment store with group commit, recovery and audit.
//!
//! Built without default features, the crate is only the verifier half
//! (entries, hashing, proofs, heads): no storage, no threads.

pub mod clock;
pub mod codec;
#[cfg(feature = "store")]
pub mod durable;
pub mod entry;
pub mod hash;
pub mod head;
#[cfg(feature = "store")]
pub mod keys;
pub mod keyset;
pub mod merkle;
pub mod network;
pub mod note;
pub mod reading;
#[cfg(feature = "store")]
pub mod store;

pub use codec::DecodeError;
pub use entry::{entry_id, Entry};
pub use hash::{Digest, Domain};
pub use head::{SignedTreeHead, TreeHead};
pub use merkle::{Blake3Merkle, MerkleHasher, ProofError};
