//! The write API as library functions; the HTTP handlers in `routes` only
//! parse, authorise, call one of these and map the result.
//!
//! By job: `batches.rs` (signed device batches), `capture.rs` (EPCIS
//! capture and captured events read back), `devices.rs` (device changes),
//! `locations.rs` (location delegations),
//! `policy.rs` (lot releases and recall changes), `retry.rs` (answers for
//! retries whose earlier attempt committed); this file holds the state,
//! opening it, following the ledger, and the one commit path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::StreamExt;
use ledger::entry::{
    Encoded, Entry, EntryRef, IdentityChange, RuleVerdict, SignedBatch, VerdictKind,
};
use ledger::Digest;
use shards::Node;

use crate::derived::{Derived, EventLoc};
use crate::identity::IdentityState;
use api::answer::{WriteResult, Written};
use api::frame::WriteFrame;
use api::idempotency::Attempt;
use api::problem::ApiError;
use api::tokens::{Principal, Role, TokenStore};

mod batches;
mod capture;
mod devices;
mod locations;
mod policy;
mod retry;

pub use batches::encode_batches;
use batches::*;
use devices::*;

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

/// The ingest tier's state.
pub struct Ingest {
    pub(crate) node: Arc<Node>,
    pub(crate) identity: RwLock<IdentityState>,
    /// Admission, tokens, body limit and idempotency: shared with every
    /// edge that writes.
    frame: Arc<WriteFrame>,
    pub(crate) limits: Limits,
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
    /// The write frame (admission, tokens, body limit, idempotency) the
    /// write API runs in; the node hands it to every edge that writes.
    pub fn frame(&self) -> &Arc<WriteFrame> {
        &self.frame
    }

    /// Builds the identity state and the eventID index from the logs: from
    /// the checkpoint and the entries after it when there is a usable one,
    /// else from every entry.
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
            frame: Arc::new(
                WriteFrame::open(
                    &dir,
                    Arc::new(TokenStore::new(&dir, Arc::clone(node.clock()))),
                    limits.max_in_flight,
                    limits.max_body_bytes,
                )
                .map_err(|e| shards::ShardError::io(&dir.join("idempotency.jsonl"), e))?,
            ),
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
}

impl Ingest {
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

    /// The organisation registered under `gln`, written in any GS1
    /// spelling of it (EPC URN or Digital Link), if one is.
    pub fn registered_org(&self, gln: &str) -> Option<String> {
        let id = self.identity.read().expect("identity lock");
        if id.orgs.contains_key(gln) {
            return Some(gln.to_string());
        }
        let canonical = gs1::canonical_id(gln)?;
        id.orgs
            .keys()
            .find(|k| gs1::canonical_id(k).as_deref() == Some(canonical.as_str()))
            .cloned()
    }

    pub fn data_dir(&self) -> &Path {
        self.node.data_dir()
    }

    /// The node's bearer tokens: every edge authenticates with them.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        self.frame.tokens()
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
            .map_err(crate::write_refusal)?;
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
}
