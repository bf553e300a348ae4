//! Policy changes made by people: releasing a quarantined lot, and recording a recall change (what the read side asks of the write path, `api::port::WritePort`).

use super::*;

impl Ingest {
    /// Releases a lot from quarantine: investigators and operators only.
    pub async fn release_lot(
        &self,
        who: &Principal,
        lot: &str,
        reason: &str,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        if who.role == Role::Partner {
            return Err(ApiError::Forbidden(
                "only investigator (QA) or operator tokens release a quarantined lot".into(),
            ));
        }
        let _guard = self.registry_lock.lock().await;
        let entry = Entry::Verdict(RuleVerdict {
            rule: "quarantine_release".into(),
            subject: lot.to_string(),
            kind: VerdictKind::Release,
            from_ms: self.node.clock().now_ms(),
            to_ms: None,
            explanation: format!("released from quarantine by {}: {reason}", who.org),
            evidence: Vec::new(),
        });
        let (quarantined, last) = {
            let id = self.identity.read().expect("identity lock");
            (
                id.quarantined.contains_key(lot),
                id.lot_changes.get(lot).cloned(),
            )
        };
        // The release an earlier attempt committed (the same caller and
        // reason: both are in its explanation) is answered, not refused as
        // no longer quarantined.
        if let Some(done) = self.committed_change(attempt, last, lot, &entry)? {
            return Ok(done);
        }
        if !quarantined {
            return Err(ApiError::NotQuarantined(lot.to_string()));
        }
        self.commit(lot, vec![entry], lot).await
    }

    /// Records a recall change (opened, widened, closed) on `home`'s shard,
    /// the recalled lot's: investigators and operators only, in their own name.
    /// What the recall names is computed by the read side (`analytics::recall`).
    pub(super) async fn record_recall(
        &self,
        who: &Principal,
        home: &str,
        change: ledger::entry::RecallChange,
    ) -> Result<WriteResult, ApiError> {
        if who.role == Role::Partner {
            return Err(ApiError::Forbidden(
                "recalls are opened, widened and closed by investigator or operator tokens".into(),
            ));
        }
        let by = match &change {
            ledger::entry::RecallChange::Opened { by, .. }
            | ledger::entry::RecallChange::Widened { by, .. }
            | ledger::entry::RecallChange::Closed { by, .. } => by,
        };
        if by != &who.org {
            return Err(ApiError::Forbidden(format!(
                "a recall change is recorded in the caller's name ({}), not {by:?}",
                who.org
            )));
        }
        self.commit(home, vec![Entry::Recall(change)], home).await
    }
}

impl api::port::WritePort for Ingest {
    fn record_recall<'a>(
        &'a self,
        who: &'a Principal,
        home: &'a str,
        change: ledger::entry::RecallChange,
    ) -> futures_util::future::BoxFuture<'a, Result<WriteResult, ApiError>> {
        Box::pin(self.record_recall(who, home, change))
    }

    fn committed_recall(
        &self,
        at: &EntryRef,
        home: &str,
    ) -> Result<(ledger::entry::RecallChange, WriteResult), ApiError> {
        let entry = self.committed_entry(at)?;
        let Entry::Recall(change) = &entry else {
            return Err(ApiError::Unavailable(format!(
                "entry {} of shard {} is not the recall change the graph says",
                at.index, at.shard
            )));
        };
        Ok((change.clone(), self.answer_committed(at, home, &entry)))
    }

    fn release_lot<'a>(
        &'a self,
        who: &'a Principal,
        lot: &'a str,
        reason: &'a str,
        attempt: Attempt,
    ) -> futures_util::future::BoxFuture<'a, Result<WriteResult, ApiError>> {
        Box::pin(self.release_lot(who, lot, reason, attempt))
    }

    fn device(&self, id: &str) -> Option<api::port::DeviceRecord> {
        self.device(id).map(|d| api::port::DeviceRecord {
            org: d.org,
            keys: d
                .keys
                .iter()
                .map(|(from, k)| (*from, k.to_bytes()))
                .collect(),
            revoked_at_ms: d.revoked_at_ms,
            suspended: d.suspended,
            entries: d.entries,
        })
    }
}
