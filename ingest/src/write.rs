//! The write API as library functions; the HTTP handlers in `routes` only
//! parse, authorise, call one of these and map the result.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::StreamExt;
use ledger::entry::{
    Encoded, Entry, EntryRef, IdentityChange, RuleVerdict, SignedBatch, VerdictKind,
};
use ledger::Digest;
use serde::{Deserialize, Serialize};
use shards::Node;

use crate::derived::Derived;
use crate::identity::IdentityState;
use api::answer::{WriteResult, Written};
use api::idempotency::Attempt;
use api::problem::ApiError;
use api::tokens::{Principal, Role, TokenStore};

/// Appends one EPCIS capture keeps in flight at once.
const CAPTURE_IN_FLIGHT: usize = 256;

/// Bounds of the write path. Each has a tested behaviour at the limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// Requests being processed at once (429 above).
    pub max_in_flight: usize,
    /// How far ahead of the server clock a reading may be (422 above).
    pub future_slack_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_in_flight: 256,
            future_slack_ms: 5 * 60_000,
        }
    }
}

/// Where a captured event is, and its content fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventLoc {
    pub shard: u32,
    pub index: u64,
    pub fingerprint: String,
}

/// The ingest tier's state.
pub struct Ingest {
    pub(crate) node: Arc<Node>,
    pub(crate) identity: RwLock<IdentityState>,
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) limits: Limits,
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    pub(crate) idempotency: api::idempotency::IdempotencyStore,
    /// eventID -> where its events are (several: corrections by errorDeclaration).
    pub(crate) events: RwLock<HashMap<String, Vec<EventLoc>>>,
    /// Captures check and append under this lock, so one eventID cannot be
    /// captured twice by two racing requests.
    pub(crate) capture_lock: tokio::sync::Mutex<()>,
    /// Device registrations, rotations and revocations check and append
    /// under this lock, so two racing registrations cannot both pass.
    pub(crate) registry_lock: tokio::sync::Mutex<()>,
    /// Recent capture jobs, for `GET /capture/{id}` (bounded, oldest dropped),
    /// journalled so they survive restarts.
    pub(crate) captures: std::sync::Mutex<std::collections::VecDeque<(String, WriteResult)>>,
    capture_journal: api::journal::Journal<(String, WriteResult)>,
    /// The identity state and eventID index of the committed entries alone
    /// (the copies above also hold what the write path reserved): what
    /// checkpoints are made of, kept current by [`Ingest::follow`].
    derived: std::sync::Mutex<Derived>,
    opened: Opened,
}

/// How ingest's state was rebuilt at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Committed entries on all shards.
    pub entries: u64,
    /// Entries read to rebuild the state: all, or those after the checkpoint.
    pub scanned: u64,
    pub from_checkpoint: bool,
}

/// Capture jobs remembered for `GET /capture/{id}`.
const MAX_CAPTURE_JOBS: usize = 10_000;

impl Ingest {
    /// Builds the identity state and the eventID index from the logs: from
    /// the checkpoint and the entries after it when there is a usable one,
    /// else from every entry.
    /// The largest request body any route reads (`Limits::max_body_bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.limits.max_body_bytes
    }

    pub fn open(node: Arc<Node>, limits: Limits) -> Result<Ingest, shards::ShardError> {
        let loaded = Derived::load(&node);
        let from_checkpoint = loaded.is_some();
        let mut derived = loaded.unwrap_or_else(|| Derived::new(node.shards().len()));
        let committed: Vec<u64> = node.shards().iter().map(|s| s.committed()).collect();
        let scanned = derived.catch_up(&node, &committed)?;
        let opened = Opened {
            entries: committed.iter().sum(),
            scanned,
            from_checkpoint,
        };
        tracing::info!(
            entries = opened.entries,
            scanned,
            from_checkpoint,
            "identity state and eventID index rebuilt"
        );
        let (identity, events) = (derived.identity.clone(), derived.events.clone());
        let dir = node.data_dir().to_path_buf();
        let jobs_path = dir.join("capture-jobs.jsonl");
        let (capture_journal, jobs) = api::journal::Journal::open(&jobs_path, MAX_CAPTURE_JOBS)
            .map_err(|e| shards::ShardError::io(&jobs_path, e))?;
        Ok(Ingest {
            tokens: Arc::new(TokenStore::new(&dir, Arc::clone(node.clock()))),
            idempotency: api::idempotency::IdempotencyStore::open(&dir)
                .map_err(|e| shards::ShardError::io(&dir.join("idempotency.jsonl"), e))?,
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight)),
            identity: RwLock::new(identity),
            events: RwLock::new(events),
            derived: std::sync::Mutex::new(derived),
            opened,
            capture_lock: tokio::sync::Mutex::new(()),
            registry_lock: tokio::sync::Mutex::new(()),
            captures: std::sync::Mutex::new(jobs.into()),
            capture_journal,
            limits,
            node,
        })
    }

    /// Follows what commits after the start-up scan: folds every entry into
    /// the state checkpoints are made of, and the policies other parts of
    /// the node record (analytics suspends devices and quarantines lots by
    /// appending verdicts) into the write-side state: policies reach ingest
    /// as ledger entries, never as calls.
    pub fn follow(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>, shards::ShardError> {
        let from = self.derived.lock().expect("derived lock").positions.clone();
        let mut feed = shards::feed::Subscription::follow(Arc::clone(&self.node), from, 4096)?;
        let me = Arc::clone(self);
        Ok(tokio::spawn(async move {
            while let Ok(batch) = feed.next().await {
                let mut derived = me.derived.lock().expect("derived lock");
                for (bytes, index) in batch.entries.iter().zip(batch.first_index..) {
                    derived.apply(batch.shard, index, bytes);
                    if ledger::entry::kind_of(bytes) == Some("verdict") {
                        if let Ok(e) = Entry::from_bytes(bytes) {
                            let at = EntryRef {
                                shard: batch.shard,
                                index,
                                id: ledger::entry_id(bytes),
                            };
                            me.identity.write().expect("identity lock").apply(&e, at);
                        }
                    }
                }
            }
        }))
    }

    /// Writes the checkpoint of ingest's state, first reading what the
    /// follower has not folded yet (everything committed now is in it).
    /// Blocks while it reads and writes: call it off the async workers.
    pub fn checkpoint(&self) -> Result<(), shards::ShardError> {
        let mut derived = self.derived.lock().expect("derived lock");
        let committed: Vec<u64> = self.node.shards().iter().map(|s| s.committed()).collect();
        derived.catch_up(&self.node, &committed)?;
        derived.save(&self.node)
    }

    /// How the state was rebuilt at open.
    pub fn opened(&self) -> Opened {
        self.opened
    }

    /// Puts a suspended device of the caller's organisation back in service.
    pub async fn reinstate_device(
        &self,
        who: &Principal,
        device: &str,
        reason: &str,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let _guard = self.registry_lock.lock().await;
        let entry = Entry::Verdict(RuleVerdict {
            rule: "reinstated".into(),
            subject: device.to_string(),
            kind: VerdictKind::Reinstate,
            from_ms: self.node.clock().now_ms(),
            to_ms: None,
            explanation: format!("reinstated by {}: {reason}", who.org),
            evidence: Vec::new(),
        });
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        if self
            .identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?
            .suspended
            .is_none()
        {
            return Err(ApiError::NotSuspended(device.to_string()));
        }
        self.commit(device, vec![entry], device).await
    }

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
    async fn record_recall(
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

    /// A registered device as the identity state knows it (keys over time,
    /// revocation, suspension, the entries it rests on).
    pub fn device(&self, device: &str) -> Option<crate::identity::Device> {
        self.identity
            .read()
            .expect("identity lock")
            .devices
            .get(device)
            .cloned()
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn data_dir(&self) -> &Path {
        self.node.data_dir()
    }

    /// The node's bearer tokens: every edge authenticates with them.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    fn writer(&self, who: &Principal) -> Result<(), ApiError> {
        match who.role {
            Role::Partner | Role::Operator => Ok(()),
            Role::Investigator => Err(ApiError::Forbidden(
                "investigator tokens read; they cannot write".into(),
            )),
        }
    }

    /// Appends entries homed on `key`'s shard and folds them into the identity state.
    pub(crate) async fn commit(
        &self,
        key: &str,
        entries: Vec<Entry>,
        subject: &str,
    ) -> Result<WriteResult, ApiError> {
        let c = self
            .node
            .append(key, entries.clone())
            .await
            .map_err(crate::shard_refusal)?;
        let mut id = self.identity.write().expect("identity lock");
        for (e, (index, digest)) in entries.iter().zip(&c.entries) {
            let at = EntryRef {
                shard: c.shard,
                index: *index,
                id: *digest,
            };
            id.apply(e, at);
        }
        Ok(WriteResult {
            entries: c
                .entries
                .iter()
                .map(|(index, d)| Written {
                    shard: c.shard,
                    index: *index,
                    id: d.to_hex(),
                    subject: subject.to_string(),
                })
                .collect(),
            receipts: c.receipts.len(),
            ..WriteResult::default()
        })
    }

    /// Registers a device of the caller's organisation under `public_key`.
    pub async fn register_device(
        &self,
        who: &Principal,
        device: &str,
        public_key: VerifyingKey,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        check_id(device, "device")?;
        let _guard = self.registry_lock.lock().await;
        let entry = Entry::Identity(IdentityChange::DeviceRegistered {
            org: who.org.clone(),
            device: device.to_string(),
            public_key: public_key.to_bytes(),
            at_ms: self.node.clock().now_ms(),
        });
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        {
            let id = self.identity.read().expect("identity lock");
            if !id.orgs.contains_key(&who.org) {
                return Err(ApiError::UnknownOrganisation(who.org.clone()));
            }
            if id.devices.contains_key(device) {
                return Err(ApiError::DeviceExists(device.to_string()));
            }
        }
        self.commit(&who.org, vec![entry], device).await
    }

    /// Rotates a device's key: the new key signs readings from now on.
    pub async fn rotate_key(
        &self,
        who: &Principal,
        device: &str,
        public_key: VerifyingKey,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.change_device(who, device, attempt, |org, device, at_ms| {
            IdentityChange::KeyRotated {
                org,
                device,
                public_key: public_key.to_bytes(),
                at_ms,
            }
        })
        .await
    }

    /// Revokes a device: nothing it signs is accepted any more.
    pub async fn revoke_device(
        &self,
        who: &Principal,
        device: &str,
        reason: &str,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.change_device(who, device, attempt, |org, device, at_ms| {
            IdentityChange::DeviceRevoked {
                org,
                device,
                reason: reason.to_string(),
                at_ms,
            }
        })
        .await
    }

    /// Appends an identity change to a device of the caller's organisation.
    async fn change_device(
        &self,
        who: &Principal,
        device: &str,
        attempt: Attempt,
        change: impl FnOnce(String, String, i64) -> IdentityChange,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let _guard = self.registry_lock.lock().await;
        self.identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?;
        let entry = Entry::Identity(change(
            who.org.clone(),
            device.to_string(),
            self.node.clock().now_ms(),
        ));
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        self.commit(&who.org, vec![entry], device).await
    }

    /// For a retry whose earlier attempt may have committed
    /// ([`Attempt::Again`]): the answer that attempt would have given, if
    /// `change` is `last`, the last entry `subject`'s state rests on (the
    /// same change but for its time). Called under `registry_lock`, so no
    /// other change to the subject runs meanwhile. A change made since the
    /// attempt (a rule's suspension, say) hides it; the retry then runs as a
    /// new request.
    fn committed_change(
        &self,
        attempt: Attempt,
        last: Option<EntryRef>,
        subject: &str,
        change: &Entry,
    ) -> Result<Option<WriteResult>, ApiError> {
        let Some(at) = last.filter(|_| attempt == Attempt::Again) else {
            return Ok(None);
        };
        let entry = self.entry_decoded(at.shard, at.index)?;
        if untimed(&entry) != untimed(change) {
            return Ok(None);
        }
        Ok(Some(self.answer_committed(&at, subject, &entry)))
    }

    /// The answer a write of the one entry `entry`, committed at `at`, gave:
    /// where it is, and the receipts it made. For retries whose earlier
    /// attempt committed and lost its answer.
    fn answer_committed(&self, at: &EntryRef, subject: &str, entry: &Entry) -> WriteResult {
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
    fn committed_device_change(
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

    /// Accepts signed device batches, all or none: each must come from a
    /// device of the caller's organisation, be signed by the key valid at its
    /// first reading, and continue the device's sequence.
    pub async fn submit_batches(
        &self,
        who: &Principal,
        batches: Vec<SignedBatch>,
    ) -> Result<WriteResult, ApiError> {
        self.submit_encoded(who, encode_batches(batches)).await
    }

    /// [`Ingest::submit_batches`] for batches kept with their canonical bytes
    /// ([`Encoded::readings`], as the binary wire form carries them): the
    /// signatures are checked over those bytes and they are appended as they
    /// are, never encoded again.
    pub async fn submit_encoded(
        &self,
        who: &Principal,
        encoded: Vec<Encoded>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let (batches, messages): (Vec<&SignedBatch>, Vec<Digest>) = encoded
            .iter()
            .map(batch_of)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        if let Some(b) = batches.iter().find(|b| b.batch.readings.is_empty()) {
            return Err(ApiError::InvalidBody(format!(
                "the batch of device {:?} starting at sequence {} holds no readings; send at least one",
                b.batch.device, b.batch.first_seq
            )));
        }
        let now = self.node.clock().now_ms();
        // Bounds and ownership first, then every signature in one batch check.
        let keys: Vec<VerifyingKey> = {
            let id = self.identity.read().expect("identity lock");
            let mut keys = Vec::with_capacity(batches.len());
            for b in &batches {
                if let Some(r) = b
                    .batch
                    .readings
                    .iter()
                    .find(|r| r.time_ms > now + self.limits.future_slack_ms)
                {
                    return Err(ApiError::ClockInFuture {
                        at_ms: r.time_ms,
                        now_ms: now,
                        slack_ms: self.limits.future_slack_ms,
                    });
                }
                let device = id.device_of(&who.org, &b.batch.device)?;
                if let Some(why) = &device.suspended {
                    return Err(ApiError::DeviceSuspended {
                        device: b.batch.device.clone(),
                        reason: why.clone(),
                    });
                }
                let at = b.batch.readings.first().map_or(now, |r| r.time_ms);
                keys.push(device.key_at(&b.batch.device, at)?);
            }
            keys
        };
        verify_signatures(&batches, &messages, &keys)?;
        // Sequence check and reservation in one hold of the lock, so two
        // copies of one batch cannot both pass.
        let reserved: Vec<(String, u64, u64)> = {
            let mut id = self.identity.write().expect("identity lock");
            let mut next: HashMap<&str, u64> = HashMap::new();
            for b in &batches {
                let dev = b.batch.device.as_str();
                let expected = match next.get(dev) {
                    Some(n) => *n,
                    None => id.device_of(&who.org, dev)?.next_seq,
                };
                if b.batch.first_seq < expected {
                    return Err(ApiError::ReplayedSequence {
                        device: dev.to_string(),
                        got: b.batch.first_seq,
                        expected,
                    });
                }
                next.insert(dev, b.batch.next_seq());
            }
            next.into_iter()
                .map(|(dev, n)| {
                    let d = id.devices.get_mut(dev).expect("checked above");
                    let old = d.next_seq;
                    d.next_seq = n;
                    (dev.to_string(), old, n)
                })
                .collect()
        };
        // Commit per device (each on its home shard), concurrently.
        let devices: Vec<String> = batches.iter().map(|b| b.batch.device.clone()).collect();
        let mut by_device: HashMap<String, Vec<Encoded>> = HashMap::new();
        for (dev, e) in devices.into_iter().zip(encoded) {
            by_device.entry(dev).or_default().push(e);
        }
        let commits = by_device.into_iter().map(|(dev, entries)| async move {
            self.node
                .append_encoded(&dev, entries)
                .await
                .map(|c| (dev, c))
        });
        let results = futures_util::future::join_all(commits).await;
        let mut out = WriteResult::default();
        let mut failure = None;
        for r in results {
            match r {
                Ok((dev, c)) => {
                    out.receipts += c.receipts.len();
                    out.entries
                        .extend(c.entries.iter().map(|(index, d)| Written {
                            shard: c.shard,
                            index: *index,
                            id: d.to_hex(),
                            subject: dev.clone(),
                        }));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            // Give back the reservations that did not commit.
            let mut id = self.identity.write().expect("identity lock");
            for (dev, old, new) in reserved {
                if !out.entries.iter().any(|w| w.subject == dev) {
                    if let Some(d) = id.devices.get_mut(&dev) {
                        if d.next_seq == new {
                            d.next_seq = old;
                        }
                    }
                }
            }
            return Err(crate::shard_refusal(e));
        }
        out.entries.sort_by_key(|w| (w.shard, w.index));
        Ok(out)
    }

    /// [`Ingest::submit_encoded`] for a retry whose earlier attempt may have
    /// committed some or all of `encoded` (see [`crate::idempotency`]):
    /// what is already on its device's home shard, byte for byte, is
    /// answered with where it is; the rest is submitted as usual. The answer
    /// is the one the earlier attempt would have given, had it finished.
    pub async fn submit_encoded_again(
        &self,
        who: &Principal,
        encoded: Vec<Encoded>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let mut found = Vec::new();
        let mut rest = Vec::new();
        for e in encoded {
            match self.committed_batch(who, &e)? {
                Some(w) => found.push(w),
                None => rest.push(e),
            }
        }
        let mut out = if rest.is_empty() {
            WriteResult::default()
        } else {
            self.submit_encoded(who, rest).await?
        };
        out.entries.extend(found);
        out.entries.sort_by_key(|w| (w.shard, w.index));
        Ok(out)
    }

    /// Where `e`, a device batch of the caller's organisation, is committed,
    /// if it is.
    fn committed_batch(&self, who: &Principal, e: &Encoded) -> Result<Option<Written>, ApiError> {
        let (sb, _) = batch_of(e)?;
        let device = sb.batch.device.as_str();
        self.identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?;
        let shard = self
            .node
            .shard(self.node.router().shard_for(device))
            .map_err(crate::shard_refusal)?;
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

impl Ingest {
    /// Captures EPCIS events: each is appended on the home shard of the
    /// identifier it is chiefly about (receipts carry it to the others'). An
    /// event whose eventID was captured before is answered with where it is
    /// when its content is the same, refused when it differs, and appended
    /// when it is a correction (it carries an `errorDeclaration`).
    pub async fn capture(
        &self,
        who: &Principal,
        captured: Vec<crate::epcis::Captured>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        if !self
            .identity
            .read()
            .expect("identity lock")
            .orgs
            .contains_key(&who.org)
        {
            return Err(ApiError::UnknownOrganisation(who.org.clone()));
        }
        let _guard = self.capture_lock.lock().await;
        let mut out = WriteResult::default();
        let mut new = Vec::new();
        {
            let events = self.events.read().expect("events lock");
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for c in &captured {
                let id = c.event.event_id.as_str();
                let earlier = events.get(id);
                if let Some(loc) =
                    earlier.and_then(|v| v.iter().find(|l| l.fingerprint == c.fingerprint))
                {
                    out.already_captured.push(Written {
                        shard: loc.shard,
                        index: loc.index,
                        id: String::new(),
                        subject: id.to_string(),
                    });
                    continue;
                }
                if (earlier.is_some() || seen.contains_key(id)) && !c.declares_error {
                    return Err(ApiError::DuplicateEvent(id.to_string()));
                }
                seen.insert(id, &c.fingerprint);
                new.push(c.clone());
            }
        }
        let commits = new.iter().map(|c| async move {
            let r = self
                .node
                .append(&c.partition_key, vec![Entry::Custody(c.event.clone())])
                .await;
            r.map(|committed| (c, committed))
        });
        // A bounded number in flight, in order: a document of thousands of
        // events must not fill a shard's append queue on its own (that is
        // other callers' room, refused as busy when full).
        let results: Vec<_> = futures_util::stream::iter(commits)
            .buffered(CAPTURE_IN_FLIGHT)
            .collect()
            .await;
        let mut events = self.events.write().expect("events lock");
        let mut failure = None;
        for r in results {
            match r {
                Ok((c, committed)) => {
                    let (index, id) = committed.entries[0];
                    events
                        .entry(c.event.event_id.clone())
                        .or_default()
                        .push(EventLoc {
                            shard: committed.shard,
                            index,
                            fingerprint: c.fingerprint.clone(),
                        });
                    out.receipts += committed.receipts.len();
                    out.entries.push(Written {
                        shard: committed.shard,
                        index,
                        id: id.to_hex(),
                        subject: c.event.event_id.clone(),
                    });
                }
                Err(e) => failure = Some(e),
            }
        }
        drop(events);
        if let Some(e) = failure {
            return Err(crate::shard_refusal(e));
        }
        let job = ledger::Domain::CaptureJob
            .hash_parts(&[out
                .entries
                .iter()
                .chain(&out.already_captured)
                .map(|w| format!("{}/{};", w.shard, w.index))
                .collect::<String>()
                .as_bytes()])
            .to_hex()[..24]
            .to_string();
        out.capture_id = Some(job.clone());
        // Durable before the answer names the job: `GET /capture/{id}`
        // finds it after a restart too.
        self.capture_journal
            .append(&(job.clone(), out.clone()))
            .map_err(|e| ApiError::Unavailable(format!("recording the capture job: {e}")))?;
        let mut jobs = self.captures.lock().expect("captures lock");
        if jobs.len() >= MAX_CAPTURE_JOBS {
            jobs.pop_front();
        }
        jobs.push_back((job, out.clone()));
        Ok(out)
    }

    /// A capture job by id, if it is still remembered.
    pub fn capture_job(&self, id: &str) -> Option<WriteResult> {
        self.captures
            .lock()
            .expect("captures lock")
            .iter()
            .find(|(j, _)| j == id)
            .map(|(_, r)| r.clone())
    }

    /// The captured event stored as entry `index` of `shard`, as received,
    /// with the entry it rests on (`coldtrail:entry`) so a reader can go on
    /// to its proof.
    pub fn event_document(&self, shard: u32, index: u64) -> Result<serde_json::Value, ApiError> {
        let bytes = self.entry_bytes(shard, index)?;
        let Ok(Entry::Custody(c)) = Entry::from_bytes(&bytes) else {
            return Err(ApiError::Unavailable(format!(
                "entry {shard}/{index} is not an event"
            )));
        };
        let mut event: serde_json::Value = serde_json::from_slice(&c.document)
            .map_err(|e| ApiError::Unavailable(format!("stored event {}: {e}", c.event_id)))?;
        if let Some(fields) = event.as_object_mut() {
            fields.insert(
                crate::epcis::ENTRY_EXTENSION.into(),
                crate::view::entry_ref(&ledger::entry::EntryRef {
                    shard,
                    index,
                    id: ledger::entry_id(&bytes),
                }),
            );
        }
        Ok(event)
    }
}

/// Checks every signature, in one batch verification when there are several;
/// names the first bad one.
/// `messages[i]` is what `batches[i]`'s device signed.
fn verify_signatures(
    batches: &[&SignedBatch],
    messages: &[Digest],
    keys: &[VerifyingKey],
) -> Result<(), ApiError> {
    let messages: Vec<[u8; 32]> = messages.iter().map(|m| m.0).collect();
    let sigs: Vec<Signature> = batches
        .iter()
        .map(|b| Signature::from_bytes(&b.signature))
        .collect();
    if batches.len() > 1 {
        let msgs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, keys).is_ok() {
            return Ok(());
        }
    }
    for (i, ((m, s), k)) in messages.iter().zip(&sigs).zip(keys).enumerate() {
        if k.verify_strict(m, s).is_err() {
            let b = &batches[i].batch;
            return Err(ApiError::BadSignature {
                index: i,
                device: b.device.clone(),
                at_ms: b.readings.first().map_or(0, |r| r.time_ms),
            });
        }
    }
    Ok(())
}

/// The signed batch `e` holds (and its signed message), or why it is refused.
fn batch_of(e: &Encoded) -> Result<(&SignedBatch, Digest), ApiError> {
    e.signed_batch()
        .ok_or_else(|| ApiError::InvalidBody("only device batches are submitted here".into()))
}

/// `e` with the time it was made zeroed: two attempts at one change differ
/// only there.
fn untimed(e: &Entry) -> Entry {
    let mut e = e.clone();
    match &mut e {
        Entry::Identity(
            IdentityChange::OrgRegistered { at_ms, .. }
            | IdentityChange::DeviceRegistered { at_ms, .. }
            | IdentityChange::KeyRotated { at_ms, .. }
            | IdentityChange::DeviceRevoked { at_ms, .. },
        ) => *at_ms = 0,
        Entry::Verdict(v) => v.from_ms = 0,
        _ => {}
    }
    e
}

/// Device batches as readings entries, each encoded once.
pub fn encode_batches(batches: Vec<SignedBatch>) -> Vec<Encoded> {
    batches
        .into_iter()
        .map(|b| Encoded::new(Entry::Readings(b)))
        .collect()
}

/// Identifiers are short, printable and non-empty.
pub(crate) fn check_id(s: &str, what: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::InvalidBody(format!(
            "{what} {s:?} must be 1 to 256 characters without spaces or control characters"
        )));
    }
    Ok(())
}

impl api::recall::RecallLedger for Ingest {
    fn record<'a>(
        &'a self,
        who: &'a Principal,
        home: &'a str,
        change: ledger::entry::RecallChange,
    ) -> futures_util::future::BoxFuture<'a, Result<WriteResult, ApiError>> {
        Box::pin(self.record_recall(who, home, change))
    }

    fn committed(
        &self,
        at: &EntryRef,
        home: &str,
    ) -> Result<(ledger::entry::RecallChange, WriteResult), ApiError> {
        let entry = self.entry_decoded(at.shard, at.index)?;
        let Entry::Recall(change) = &entry else {
            return Err(ApiError::Unavailable(format!(
                "entry {} of shard {} is not the recall change the graph says",
                at.index, at.shard
            )));
        };
        Ok((change.clone(), self.answer_committed(at, home, &entry)))
    }
}
