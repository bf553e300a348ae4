//! The one write a read edge makes: a recall change. The read side plans it
//! (against the lineage graph); the write path records it, with its frame
//! (the caller's role and name checked, the entry committed on its home
//! shard). This trait is all of the write path the read side sees.

use futures_util::future::BoxFuture;
use ledger::entry::{EntryRef, RecallChange};

use crate::answer::WriteResult;
use crate::problem::ApiError;
use crate::tokens::Principal;

pub trait RecallLedger: Send + Sync {
    /// Appends `change` on the shard of `home` (the lot whose shard records
    /// it) in `who`'s name. Partners are refused, and so is a change in
    /// another organisation's name than the caller's.
    fn record<'a>(
        &'a self,
        who: &'a Principal,
        home: &'a str,
        change: RecallChange,
    ) -> BoxFuture<'a, Result<WriteResult, ApiError>>;

    /// The recall change committed at `at` by an earlier attempt whose
    /// answer was lost, and the answer [`RecallLedger::record`] gave it.
    fn committed(&self, at: &EntryRef, home: &str)
        -> Result<(RecallChange, WriteResult), ApiError>;
}
