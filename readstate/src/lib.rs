//! What the read edges (`web`'s routes, `graphql`) share: the lineage graph
//! kept current by the feed, the readings index, the search index, reads
//! that wait for the writer's own writes, and the one path recall changes
//! take (planned by `analytics::recall`, recorded through
//! [`api::port::WritePort`], all this crate sees of the write path, inside
//! the node's one [`api::frame::WriteFrame`]).
//! [`verifier::Reads`] reads the logs as a verifier does (entries by place
//! and id with their decoded [`view`], heads, proofs, the key document):
//! every edge that shows a ledger entry or proof reads it here.

use std::sync::{Arc, RwLock};

use analytics::lineage::Lineage;
use analytics::readings::{Series, SeriesError};
use analytics::recall::{Ask, RecallError};
use analytics::search::SearchIndex;
use api::frame::WriteFrame;
use api::port::WritePort;
use api::{ApiError, TokenStore, WriteResult};
use shards::Node;

pub mod access;
pub mod listfile;
pub mod queries;
pub mod subscriptions;
pub mod verifier;
pub mod view;

pub use verifier::Reads;

/// A shard's failure as a read's refusal: what the store refuses as the
/// store's refusal, a shard that does not exist (the caller named it) as not
/// found, anything else as the ledger being unavailable.
pub fn shard_refusal(e: shards::ShardError) -> ApiError {
    match e {
        shards::ShardError::Store(s) => s.into(),
        shards::ShardError::NoSuchShard(s) => ApiError::NotFound(format!(
            "there is no shard {s} on this node; shards are numbered from 0, as in the answers to writes"
        )),
        other => ApiError::Unavailable(other.to_string()),
    }
}
/// What the read routes share.
pub struct ReadState {
    pub node: Arc<Node>,
    /// Every read route authenticates its caller with the node's tokens.
    pub tokens: Arc<TokenStore>,
    /// The verifier's reads of the node's logs: entries, heads, proofs, the
    /// key document, captured events.
    pub reads: Reads,
    /// What consumer pages hand their verifier to read the entries they show.
    pub grant: access::Grant,
    /// The frame writes over HTTP run in (admission, token, body limit,
    /// idempotency): the write path's own, so recall changes share it.
    pub frame: Arc<WriteFrame>,
    /// How recall changes and releases are recorded, and device identities.
    writes: Arc<dyn WritePort>,
    /// Kept up to date by `analytics::lineage::follow`.
    pub lineage: Arc<RwLock<Lineage>>,
    /// The named EPCIS queries (`/queries`).
    pub queries: queries::NamedQueries,
    /// Their subscriptions (`/queries/{name}/subscriptions`).
    pub subscriptions: subscriptions::Subscriptions,
    /// Held from planning a recall change to recording it: two changes to
    /// recalls never plan against the same state.
    pub recall_lock: tokio::sync::Mutex<()>,
    /// Which readings entries of each device cover which times.
    pub readings: analytics::readings::ReadingsIndex,
    /// The rules' configuration (product profiles), when the node has one:
    /// pages show a product's allowed range from it.
    pub rules: Option<Arc<analytics::RulesConfig>>,
    /// The search index and the size of the graph it was built from; rebuilt
    /// when the graph has grown.
    search: std::sync::Mutex<Option<BuiltIndex>>,
}

/// A search index and the graph size (events, identifiers) it was built at.
type BuiltIndex = ((usize, usize), Arc<SearchIndex>);

impl ReadState {
    /// Waits until the read model has read everything committed when the
    /// request began, so a reader sees its own acknowledged writes.
    pub async fn fresh(&self) -> Result<(), ApiError> {
        let committed: Vec<u64> = self.node.shards().iter().map(|s| s.committed()).collect();
        for _ in 0..2_500 {
            if self
                .lineage
                .read()
                .expect("lineage lock")
                .covers(&committed)
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        Err(ApiError::Unavailable(
            "the read model is more than 5 s behind the ledger".into(),
        ))
    }

    pub fn new(
        node: Arc<Node>,
        frame: Arc<WriteFrame>,
        writes: Arc<dyn WritePort>,
        lineage: Arc<RwLock<Lineage>>,
        grant: access::Grant,
        queries: queries::NamedQueries,
        subscriptions: subscriptions::Subscriptions,
    ) -> ReadState {
        ReadState {
            grant,
            queries,
            subscriptions,
            reads: Reads::new(Arc::clone(&node)),
            node,
            tokens: Arc::clone(frame.tokens()),
            frame,
            writes,
            lineage,
            recall_lock: tokio::sync::Mutex::new(()),
            readings: analytics::readings::ReadingsIndex::new(),
            rules: None,
            search: std::sync::Mutex::new(None),
        }
    }

    /// The write path, as far as the read side sees it.
    pub fn writes(&self) -> &dyn WritePort {
        self.writes.as_ref()
    }

    /// Entry `index` of `shard` (decoded, and its bytes) when `who` may read
    /// its content, or a page's `grant` for it is presented
    /// ([`access::may_read`]); otherwise the refusal. Waits for the read
    /// model first, so a partner reads its own acknowledged writes.
    pub async fn readable_entry(
        &self,
        who: Option<&api::Principal>,
        grant: Option<&str>,
        shard: u32,
        index: u64,
    ) -> Result<(ledger::entry::Entry, Vec<u8>), ApiError> {
        let (entry, bytes) = self.reads.entry_with_bytes(shard, index)?;
        if grant.is_some_and(|g| self.grant.allows(g, shard, index)) {
            return Ok((entry, bytes));
        }
        self.checked(who, entry, bytes, &format!("{shard}/{index}"))
            .await
    }

    /// `entry` (at `place`) if `who` may read it, else the refusal that
    /// names the place. A caller with a token is answered from a read model
    /// that has seen the ledger up to now.
    async fn checked(
        &self,
        who: Option<&api::Principal>,
        entry: ledger::entry::Entry,
        bytes: Vec<u8>,
        place: &str,
    ) -> Result<(ledger::entry::Entry, Vec<u8>), ApiError> {
        if who.is_some() {
            self.fresh().await?;
        }
        let graph = self.lineage.read().expect("lineage lock");
        if access::may_read(&graph, who, &entry) {
            Ok((entry, bytes))
        } else {
            Err(access::refusal(who, place))
        }
    }

    /// The same state, serving checkpoints with the witnesses' cosignatures
    /// in `c`.
    pub fn with_cosigned(mut self, c: Arc<witness::cosigned::Cosigned>) -> ReadState {
        self.reads = self.reads.with_cosigned(c);
        self
    }

    /// The same state, answering for other members' logs from `mirrors`.
    pub fn with_mirrors(mut self, mirrors: shards::mirror::Mirrors) -> ReadState {
        self.reads = self.reads.with_mirrors(mirrors);
        self
    }

    /// Entry `index` of `member`'s log `shard`, from this node's mirror,
    /// decoded and as bytes, if `who` may read it (the one visibility model,
    /// over what this node's read model knows).
    pub async fn readable_member_entry(
        &self,
        who: Option<&api::Principal>,
        member: &str,
        shard: u32,
        index: u64,
    ) -> Result<(ledger::entry::Entry, Vec<u8>), ApiError> {
        let (entry, bytes) = self.reads.member_entry_with_bytes(member, shard, index)?;
        self.checked(who, entry, bytes, &format!("{member}/{shard}/{index}"))
            .await
    }

    /// The same state, with the rules' configuration pages read ranges from.
    pub fn with_rules(mut self, rules: analytics::RulesConfig) -> ReadState {
        self.rules = Some(Arc::new(rules));
        self
    }

    /// `device`'s readings in `[from_ms, to_ms)` in buckets of `bucket_ms`,
    /// read from the ledger (blocking: call it off the async threads).
    /// A bad range or too many buckets is the `bucket` parameter's fault.
    pub fn device_series(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        bucket: &str,
    ) -> Result<Series, ApiError> {
        self.readings
            .series(&self.node, device, from_ms, to_ms, bucket_ms)
            .map_err(|e| readings_refusal(e, bucket))
    }

    /// A page of `device`'s readings in `[from_ms, to_ms)` after sequence
    /// number `after`, as `who` may read them: only from the entries
    /// [`access::may_read`] admits, so a partner sees its own devices'
    /// readings and a logger's while it watched lots of the partner's
    /// (blocking, like [`ReadState::device_series`]; call
    /// [`ReadState::fresh`] first to see the caller's own writes).
    pub fn device_readings(
        &self,
        who: &api::Principal,
        device: &str,
        (from_ms, to_ms): (i64, i64),
        after: Option<u64>,
        limit: usize,
    ) -> Result<analytics::readings::Page, ApiError> {
        if self
            .lineage
            .read()
            .expect("lineage lock")
            .device_owner(device)
            .is_none()
        {
            return Err(ApiError::NotFound(format!(
                "no device {device:?} is registered on this node"
            )));
        }
        // The one model decides, entry by entry.
        let admit = |b: &ledger::entry::SignedBatch| {
            let graph = self.lineage.read().expect("lineage lock");
            access::may_read_batch(&graph, who, b)
        };
        let page = self
            .readings
            .page(&self.node, device, from_ms, to_ms, after, limit, &admit)
            .map_err(|e| readings_refusal(e, "limit"))?;
        // A partner that may read none of the device's readings is told so
        // rather than shown an empty page, as the entry routes do.
        if page.count == 0 && !self.may_see_device(who, device) {
            return Err(ApiError::Forbidden(format!(
                "the readings of {device} concern organisations other than {}: a partner reads its own devices' readings, and a logger's while it watched its lots",
                who.org
            )));
        }
        Ok(page)
    }

    /// Whether `who` reads everything or owns `device` or was ever
    /// concerned with what it watched.
    fn may_see_device(&self, who: &api::Principal, device: &str) -> bool {
        matches!(who.role, api::Role::Investigator | api::Role::Operator)
            || self.lineage.read().expect("lineage lock").readings_concern(
                device,
                i64::MIN,
                i64::MAX,
                &who.org,
            )
    }

    /// The readings of every logger that watched `lot` (directly or
    /// through a container) in `[from_ms, to_ms)`, each logger's series
    /// limited to when it watched: one series per logger, however often
    /// it watched. Blocking, like [`ReadState::device_series`].
    pub fn lot_series(
        &self,
        lot: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        bucket: &str,
    ) -> Result<Vec<Series>, ApiError> {
        let watchers = self
            .lineage
            .read()
            .expect("lineage lock")
            .watchers(lot, from_ms, to_ms);
        let mut out: Vec<Series> = Vec::new();
        for w in watchers {
            let (f, t) = (
                w.from_ms.max(from_ms),
                w.to_ms.map_or(to_ms, |t| t.min(to_ms)),
            );
            let s = self.device_series(&w.device, f, t, bucket_ms, bucket)?;
            match out.iter_mut().find(|x| x.device == w.device) {
                Some(prev) => {
                    prev.buckets.extend(s.buckets);
                    prev.buckets.sort_by_key(|b| b.from_ms);
                    prev.buckets.dedup_by_key(|b| b.from_ms);
                    prev.from_ms = prev.from_ms.min(s.from_ms);
                    prev.to_ms = prev.to_ms.max(s.to_ms);
                    prev.entries_read += s.entries_read;
                }
                None => out.push(s),
            }
        }
        Ok(out)
    }

    /// The search index of the graph as it is now.
    pub fn search_index(&self) -> Result<Arc<SearchIndex>, ApiError> {
        let mut cached = self.search.lock().expect("search lock");
        let (size, docs) = {
            let g = self.lineage.read().expect("lineage lock");
            let size = (g.event_count(), g.identifier_count());
            if let Some((built, index)) = cached.as_ref() {
                if *built == size {
                    return Ok(Arc::clone(index));
                }
            }
            (size, g.search_docs())
        };
        let index =
            Arc::new(SearchIndex::build(docs).map_err(|e| ApiError::Unavailable(e.to_string()))?);
        *cached = Some((size, Arc::clone(&index)));
        Ok(index)
    }
}

/// A recall refusal as the API's refusal.
pub fn recall_error(e: RecallError) -> ApiError {
    match e {
        RecallError::UnknownLot(_) | RecallError::UnknownRecall(_) => {
            ApiError::NotFound(e.to_string())
        }
        RecallError::Closed(id) => ApiError::RecallClosed(id),
        RecallError::TooLarge(_) | RecallError::NoReason => ApiError::InvalidBody(e.to_string()),
    }
}

/// Appends a planned recall change, folds it into the read state at once
/// (so the next read sees it), and answers with the recall.
async fn record(
    state: &ReadState,
    who: &api::Principal,
    home: &str,
    change: ledger::entry::RecallChange,
    set: Option<analytics::recall::AffectedSet>,
) -> Result<WriteResult, ApiError> {
    let mut result = state
        .writes
        .record_recall(who, home, change.clone())
        .await?;
    let w = result.entries.first().expect("one entry was written");
    let at = ledger::entry::EntryRef {
        shard: w.shard,
        index: w.index,
        id: ledger::Digest::from_hex(&w.id).expect("written ids are hex"),
    };
    let mut g = state.lineage.write().expect("lineage lock");
    g.apply_recall(&at, &change);
    result.recall = Some(recall_json(&g, &at, &change, set));
    Ok(result)
}

/// The answer a recall change committed at `at` (by an earlier attempt whose
/// answer was lost) gets: as [`record`] gave it.
fn committed(
    state: &ReadState,
    at: ledger::entry::EntryRef,
    home: &str,
    set: Option<analytics::recall::AffectedSet>,
) -> Result<WriteResult, ApiError> {
    let (change, mut result) = state.writes.committed_recall(&at, home)?;
    let g = state.lineage.read().expect("lineage lock");
    result.recall = Some(recall_json(&g, &at, &change, set));
    Ok(result)
}

/// The recall a change belongs to, as it is now, and what the traces its
/// set came from left out.
fn recall_json(
    g: &Lineage,
    at: &ledger::entry::EntryRef,
    change: &ledger::entry::RecallChange,
    set: Option<analytics::recall::AffectedSet>,
) -> serde_json::Value {
    let id = match change {
        ledger::entry::RecallChange::Opened { .. } => at.id,
        ledger::entry::RecallChange::Widened { recall, .. }
        | ledger::entry::RecallChange::Closed { recall, .. } => *recall,
    };
    serde_json::json!({
        "recall": g.recalls().get(&id.to_hex()),
        "cut": set.map(|s| s.cut).unwrap_or_default(),
    })
}

/// What a recall change is planned into: the entry, the lot whose shard
/// records it, and (opening, widening) the set it names.
pub type Plan = (
    ledger::entry::RecallChange,
    String,
    Option<analytics::recall::AffectedSet>,
);

impl ReadState {
    /// Plans and records one recall change in `who`'s name: one change at a
    /// time, planned against the graph once it has read every write
    /// acknowledged before. The HTTP routes and GraphQL's mutations share it.
    ///
    /// `again` is what a retry whose earlier attempt may have committed
    /// ([`Attempt::Again`](api::idempotency::Attempt)) asks for: it is
    /// answered with the change that attempt made, when the graph shows it
    /// (`analytics::recall::committed`), instead of being planned again.
    pub async fn change_recall<F>(
        &self,
        who: &api::Principal,
        again: Option<Ask>,
        plan: F,
    ) -> Result<WriteResult, ApiError>
    where
        F: FnOnce(&Lineage, &api::Principal, i64) -> Result<Plan, RecallError>,
    {
        let _one_at_a_time = self.recall_lock.lock().await;
        self.fresh().await?;
        let (earlier, planned) = {
            let g = self.lineage.read().expect("lineage lock");
            let earlier = again.and_then(|ask| analytics::recall::committed(&g, &ask, &who.org));
            (earlier, plan(&g, who, self.node.clock().now_ms()))
        };
        if let Some((at, home)) = earlier {
            // Planned again only for what the answer says the traces left
            // out; a closed recall plans none.
            let set = planned.ok().and_then(|(_, _, set)| set);
            return committed(self, at.entry_ref(), &home, set);
        }
        let (change, home, set) = planned.map_err(recall_error)?;
        record(self, who, &home, change, set).await
    }
}

/// A readings read's failure as the API says it: the store's own refusal,
/// an unavailable shard, or else the fault of the parameter `param`.
fn readings_refusal(e: SeriesError, param: &str) -> ApiError {
    match e {
        // The device's home shard exists: what fails is its store.
        SeriesError::Shard(shards::ShardError::Store(s)) => s.into(),
        SeriesError::Shard(s) => ApiError::Unavailable(s.to_string()),
        other => ApiError::InvalidParameter {
            name: param.into(),
            message: other.to_string(),
        },
    }
}
