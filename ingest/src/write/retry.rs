//! Retries whose earlier attempt may have committed (`Attempt::Again`): the answer a committed change would have had, found on the ledger instead of the change being made twice.

use super::*;

impl Ingest {
    /// For a retry whose earlier attempt may have committed
    /// ([`Attempt::Again`]): the answer that attempt would have given, if
    /// `change` is `last`, the last entry `subject`'s state rests on (the
    /// same change but for its time). Called under `registry_lock`, so no
    /// other change to the subject runs meanwhile. A change made since the
    /// attempt (a rule's suspension, say) hides it; the retry then runs as a
    /// new request.
    pub(super) fn committed_change(
        &self,
        attempt: Attempt,
        last: Option<EntryRef>,
        subject: &str,
        change: &Entry,
    ) -> Result<Option<WriteResult>, ApiError> {
        let Some(at) = last.filter(|_| attempt == Attempt::Again) else {
            return Ok(None);
        };
        let entry = self.committed_entry(&at)?;
        if untimed(&entry) != untimed(change) {
            return Ok(None);
        }
        Ok(Some(self.answer_committed(&at, subject, &entry)))
    }

    /// An entry this write path committed earlier (a retry's answer rests
    /// on it), decoded.
    pub(crate) fn committed_entry(&self, at: &EntryRef) -> Result<Entry, ApiError> {
        let bytes = self
            .node
            .shard(at.shard)
            .and_then(|s| s.store().entry(at.index).map_err(shards::ShardError::from))
            .map_err(crate::write_refusal)?;
        Entry::from_bytes(&bytes).map_err(|e| {
            ApiError::Unavailable(format!(
                "entry {} of shard {} does not decode ({e}); run `coldtrail verify`",
                at.index, at.shard
            ))
        })
    }

    /// The answer a write of the one entry `entry`, committed at `at`, gave:
    /// where it is, and the receipts it made. For retries whose earlier
    /// attempt committed and lost its answer.
    pub(super) fn answer_committed(
        &self,
        at: &EntryRef,
        subject: &str,
        entry: &Entry,
    ) -> WriteResult {
        WriteResult {
            entries: vec![Written {
                shard: at.shard,
                index: at.index,
                id: at.id.to_hex(),
                subject: subject.to_string(),
            }],
            receipts: self.node.router().elsewhere(entry, at.shard).count(),
            ..WriteResult::default()
        }
    }

    /// [`Ingest::committed_change`] for a device of `who`'s organisation,
    /// given the last entry its state rests on.
    pub(super) fn committed_device_change(
        &self,
        attempt: Attempt,
        who: &Principal,
        device: &str,
        change: &Entry,
    ) -> Result<Option<WriteResult>, ApiError> {
        let last = match self
            .identity
            .read()
            .expect("identity lock")
            .devices
            .get(device)
        {
            Some(d) if d.org == who.org => d.entries.last().cloned(),
            _ => None,
        };
        self.committed_change(attempt, last, device, change)
    }
}

impl Ingest {
    /// Where `e`, a device batch of the caller's organisation, is committed,
    /// if it is.
    pub(super) fn committed_batch(
        &self,
        who: &Principal,
        e: &Encoded,
    ) -> Result<Option<Written>, ApiError> {
        let (sb, _) = batch_of(e)?;
        let device = sb.batch.device.as_str();
        self.identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?;
        let shard = self
            .node
            .shard(self.node.router().shard_for(device))
            .map_err(crate::write_refusal)?;
        let id = e.id();
        Ok(match shard.store().find(&id)? {
            Some(index) if index < shard.committed() => Some(Written {
                shard: shard.id(),
                index,
                id: id.to_hex(),
                subject: device.to_string(),
            }),
            _ => None,
        })
    }
}
