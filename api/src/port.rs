//! All of the write path a read edge sees, as a narrow interface the write
//! path (`ingest`) implements and the node hands to the read side: the
//! changes people make from a read edge (a recall change, a lot released
//! from quarantine) and the device identities the write path keeps. The read
//! side plans a recall against its lineage graph; the write path records it
//! with its frame (the caller's role and name checked, the entry committed on
//! its home shard).

use futures_util::future::BoxFuture;
use ledger::entry::{EntryRef, RecallChange};

use crate::answer::WriteResult;
use crate::idempotency::Attempt;
use crate::problem::ApiError;
use crate::tokens::Principal;

/// A registered device as the write path's identity state knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// The organisation that registered it.
    pub org: String,
    /// Keys in the order they became valid: `(valid_from_ms, ed25519 public key)`.
    pub keys: Vec<(i64, [u8; 32])>,
    pub revoked_at_ms: Option<i64>,
    /// Suspended by policy (why), until its owner reinstates it.
    pub suspended: Option<String>,
    /// The ledger entries this state rests on: registration, rotations,
    /// revocation, suspensions and reinstatements.
    pub entries: Vec<EntryRef>,
}

pub trait WritePort: Send + Sync {
    /// Appends `change` on the shard of `home` (the lot whose shard records
    /// it) in `who`'s name. Partners are refused, and so is a change in
    /// another organisation's name than the caller's.
    fn record_recall<'a>(
        &'a self,
        who: &'a Principal,
        home: &'a str,
        change: RecallChange,
    ) -> BoxFuture<'a, Result<WriteResult, ApiError>>;

    /// The recall change committed at `at` by an earlier attempt whose
    /// answer was lost, and the answer [`WritePort::record_recall`] gave it.
    fn committed_recall(
        &self,
        at: &EntryRef,
        home: &str,
    ) -> Result<(RecallChange, WriteResult), ApiError>;

    /// Releases a quarantined lot (a release verdict in `who`'s name):
    /// investigators and operators only; a lot not quarantined is refused.
    fn release_lot<'a>(
        &'a self,
        who: &'a Principal,
        lot: &'a str,
        reason: &'a str,
        attempt: Attempt,
    ) -> BoxFuture<'a, Result<WriteResult, ApiError>>;

    /// The device registered as `id`, if one is.
    fn device(&self, id: &str) -> Option<DeviceRecord>;
}
