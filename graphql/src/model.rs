//! The schema's types: thin views over what `analytics` and `ingest`
//! compute, each naming the ledger entries it rests on.

use std::sync::Arc;

use analytics::lineage::{At, EventView, LotView, VerdictView};
use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use ingest::read::{HeadJson, ProofJson};

use crate::context::{
    caller, cost, loader, refusal, with_graph, write_path, Answer, DeviceOfKey, EventsKey, LotKey,
    OrgKey, OwnerKey, ProofKey, VerdictsKey, WatchersKey,
};
use crate::page::{page, Page};

/// Unix epoch milliseconds as a time.
pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A ledger entry: where a fact is recorded. Its `proof` shows it is in the
/// shard's log under a head the shard's key signed.
#[derive(Debug, Clone, Copy)]
pub struct Entry(pub At);

impl Entry {
    /// The entry's proof, through the request's batching loader.
    pub async fn proof_of(&self, ctx: &Context<'_>) -> Answer<Proof> {
        let p = loader(ctx)
            .load_one(ProofKey::from(self.0))
            .await?
            .ok_or_else(|| refusal(api::ApiError::NotFound("no such entry".into())))?;
        Ok(Proof(p))
    }
}

#[Object]
impl Entry {
    /// The shard whose log holds the entry.
    async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// Its position in that log, from 0.
    async fn index(&self) -> u64 {
        self.0.index
    }
    /// The entry id: BLAKE3 (leaf domain) of its canonical bytes, hex.
    async fn id(&self) -> String {
        ledger::Digest(self.0.id).to_hex()
    }
    /// Its inclusion proof under the shard's newest signed head.
    async fn proof(&self, ctx: &Context<'_>) -> Answer<Proof> {
        self.proof_of(ctx).await
    }
}

/// An inclusion proof: the sibling hashes from the entry's leaf to the root
/// of a signed head. Check it as VERIFYING.md says.
pub struct Proof(pub Arc<ProofJson>);

#[Object]
impl Proof {
    /// The shard whose log holds the entry.
    async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// The entry's position in that log, from 0.
    async fn index(&self) -> u64 {
        self.0.index
    }
    /// The entry id, hex.
    async fn id(&self) -> &str {
        &self.0.id
    }
    /// Sibling hashes, leaf side first, hex.
    async fn path(&self) -> &[String] {
        &self.0.proof
    }
    /// The signed head the path leads to.
    async fn head(&self) -> Head {
        Head(self.0.head.clone())
    }
}

/// A signed tree head: a shard log's size and root, signed by its key.
pub struct Head(pub HeadJson);

#[Object]
impl Head {
    /// The shard whose log the head is of.
    async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// The log's ed25519 public key, hex: check it against the node's key
    /// document (`/.well-known/coldtrail/keys`), not against this answer.
    async fn public_key(&self) -> &str {
        &self.0.public_key
    }
    /// The log id: BLAKE3 of the log's public key, hex.
    async fn log_id(&self) -> &str {
        &self.0.log_id
    }
    /// Entries in the tree.
    async fn size(&self) -> u64 {
        self.0.size
    }
    /// The Merkle root, hex.
    async fn root(&self) -> &str {
        &self.0.root
    }
    /// When the head was signed.
    async fn signed_at(&self) -> DateTime<Utc> {
        time(self.0.timestamp_ms)
    }
    /// The ed25519 signature over the encoded head, hex.
    async fn signature(&self) -> &str {
        &self.0.signature
    }
}

/// A quantity as the event gave it.
#[derive(SimpleObject, Clone)]
pub struct Quantity {
    /// The amount, in `uom` (e.g. 500 with KGM: 500 kg).
    pub value: f64,
    /// UN/CEFACT unit code (KGM: kg), when given.
    pub uom: Option<String>,
}

impl From<&analytics::lineage::QuantityView> for Quantity {
    fn from(q: &analytics::lineage::QuantityView) -> Quantity {
        Quantity {
            value: q.value,
            uom: q.uom.clone(),
        }
    }
}

/// An organisation, by its GLN (SGLN URN).
pub struct Organization(pub String);

#[Object]
impl Organization {
    /// Its identifier as the ledger names it (SGLN URN).
    async fn id(&self) -> &str {
        &self.0
    }
    /// Its registered name.
    async fn name(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(org(ctx, &self.0).await?.map(|(n, _)| n))
    }
    /// grower, packer, processor, carrier, distribution_centre, retailer,
    /// manufacturer, clinic, investigator, operator.
    async fn role(&self, ctx: &Context<'_>) -> Answer<Option<&'static str>> {
        Ok(org(ctx, &self.0).await?.map(|(_, r)| r))
    }
}

/// A registered organisation's name and role, through the request's loader.
async fn org(ctx: &Context<'_>, id: &str) -> Answer<Option<(String, &'static str)>> {
    loader(ctx).load_one(OrgKey(id.to_string())).await
}

/// A place: a business location or read point (SGLN URN).
pub struct Location(pub String);

#[Object]
impl Location {
    /// The place as events name it (SGLN URN).
    async fn id(&self) -> &str {
        &self.0
    }
    /// The registered organisation at this GLN, when there is one.
    async fn organization(&self, ctx: &Context<'_>) -> Answer<Option<Organization>> {
        Ok(org(ctx, &self.0)
            .await?
            .map(|_| Organization(self.0.clone())))
    }
    /// Events that happened here, oldest first (partners: those they may see).
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Event>> {
        let who = caller(ctx);
        let events = with_graph(ctx, |g| g.events_at(&self.0));
        let events = events.into_iter().filter(|e| who.sees_event(e)).map(Event);
        page(ctx, events.collect(), first, after)
    }
}

/// An EPCIS event as the ledger records it.
#[derive(Clone)]
pub struct Event(pub EventView);

#[Object]
impl Event {
    /// The EPCIS eventID.
    async fn event_id(&self) -> &str {
        &self.0.event_id
    }
    /// ObjectEvent, AggregationEvent, TransformationEvent, AssociationEvent, TransactionEvent.
    async fn event_type(&self) -> &str {
        self.0.event_type
    }
    /// ADD, OBSERVE or DELETE (none for transformations).
    async fn action(&self) -> Option<&str> {
        self.0.action
    }
    /// The CBV business step (e.g. `shipping`, as the event gave it).
    async fn biz_step(&self) -> Option<&str> {
        self.0.biz_step.as_deref()
    }
    /// The CBV disposition (e.g. `in_transit`), as the event gave it.
    async fn disposition(&self) -> Option<&str> {
        self.0.disposition.as_deref()
    }
    /// When it happened (`eventTime`).
    async fn time(&self) -> DateTime<Utc> {
        time(self.0.time_ms)
    }
    /// The business location, or without one the read point.
    async fn location(&self) -> Option<Location> {
        self.0.location.clone().map(Location)
    }
    /// The organisation that captured it.
    async fn recorded_by(&self) -> Organization {
        Organization(self.0.recorded_by.clone())
    }
    /// The ledger entry that records it.
    async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}

/// A rule's verdict: a breach (or a quarantine, release, suspension,
/// reinstatement), explained in one sentence, with its evidence.
#[derive(Clone)]
pub struct Verdict(pub VerdictView);

#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
pub enum VerdictKind {
    /// A rule found the cold chain broken.
    Breach,
    /// The lot may not move on until QA releases it.
    Quarantine,
    /// QA released a quarantined lot.
    Release,
    /// A device sent impossible data; its batches are refused.
    Suspend,
    /// The device's owner put it back in service.
    Reinstate,
}

#[Object]
impl Verdict {
    /// The rule that decided it (e.g. `above_8c_10h`), or the policy.
    async fn rule(&self) -> &str {
        &self.0.rule
    }
    /// BREACH, QUARANTINE, RELEASE, SUSPEND or REINSTATE.
    async fn kind(&self) -> VerdictKind {
        match self.0.kind {
            "breach" => VerdictKind::Breach,
            "quarantine" => VerdictKind::Quarantine,
            "release" => VerdictKind::Release,
            "suspend" => VerdictKind::Suspend,
            _ => VerdictKind::Reinstate,
        }
    }
    /// What it is about: a lot, container or device identifier.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The lot it is about, when the subject is a lot.
    async fn lot(&self) -> Option<Lot> {
        analytics::watches::gtin_of(&self.0.subject).map(|_| Lot(self.0.subject.clone()))
    }
    /// When the excursion (or the policy) began.
    async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// When the excursion ended; none for policies and open excursions.
    async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
    /// The excursion's length in minutes, when it ended.
    async fn duration_minutes(&self) -> Option<f64> {
        self.0.to_ms.map(|t| (t - self.0.from_ms) as f64 / 60_000.0)
    }
    /// In plain words, with the logger and what it watched.
    async fn explanation(&self) -> &str {
        &self.0.explanation
    }
    /// The logger whose readings show it (read from the first evidence entry).
    async fn device(&self, ctx: &Context<'_>) -> Answer<Option<Device>> {
        let Some(e) = self.0.evidence.first() else {
            return Ok(None);
        };
        Ok(loader(ctx)
            .load_one(DeviceOfKey(e.shard, e.index))
            .await?
            .map(Device))
    }
    /// The readings entries it rests on.
    async fn evidence(&self) -> Vec<Entry> {
        self.0.evidence.iter().copied().map(Entry).collect()
    }
    /// The verdict entry on the ledger.
    async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}

/// A lot (a batch of one product), as EPCIS events name it.
#[derive(Clone)]
pub struct Lot(pub String);

impl Lot {
    async fn view(&self, ctx: &Context<'_>) -> Answer<Arc<LotView>> {
        loader(ctx)
            .load_one(LotKey(self.0.clone()))
            .await?
            .ok_or_else(|| refusal(crate::unknown_lot(&self.0)))
    }
}

/// Why a lot may not be sold.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LotStatus {
    /// Held by a quarantine verdict until QA releases it.
    pub quarantined: bool,
    /// In at least one open recall.
    pub recalled: bool,
    #[graphql(skip)]
    view: Arc<LotView>,
}

#[ComplexObject]
impl LotStatus {
    /// The quarantine verdict holding it.
    async fn quarantine(&self) -> Option<Verdict> {
        self.view.quarantine.clone().map(Verdict)
    }
    /// Every recall that names it, open or closed.
    async fn recalls(&self) -> Vec<Recall> {
        self.view.recalls.iter().cloned().map(Recall).collect()
    }
}

#[Object]
impl Lot {
    /// The identifier events use (LGTIN EPC URN or GS1 Digital Link URI).
    async fn id(&self) -> &str {
        &self.0
    }
    /// The product's GTIN-14.
    async fn gtin(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(self.view(ctx).await?.gtin.clone())
    }
    /// The lot number (GS1 AI 10).
    async fn lot_number(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(self.view(ctx).await?.lot_number.clone())
    }
    /// The quantity its first quantified event gives (e.g. kg).
    async fn quantity(&self, ctx: &Context<'_>) -> Answer<Option<Quantity>> {
        Ok(self.view(ctx).await?.quantity.as_ref().map(Quantity::from))
    }
    /// Who made or grew it: the organisation that recorded its first event.
    async fn origin(&self, ctx: &Context<'_>) -> Answer<Organization> {
        Ok(Organization(self.view(ctx).await?.origin.clone()))
    }
    /// Its first event (commissioning, or the transformation that made it).
    async fn first_event(&self, ctx: &Context<'_>) -> Answer<Event> {
        Ok(Event(self.view(ctx).await?.first_event.clone()))
    }
    /// Who has it now: the organisation that recorded its latest event.
    async fn holder(&self, ctx: &Context<'_>) -> Answer<Organization> {
        Ok(Organization(self.view(ctx).await?.now.holder.clone()))
    }
    /// Where it was last seen.
    async fn location(&self, ctx: &Context<'_>) -> Answer<Option<Location>> {
        Ok(self.view(ctx).await?.now.location.clone().map(Location))
    }
    /// Since when it has been there.
    async fn since(&self, ctx: &Context<'_>) -> Answer<DateTime<Utc>> {
        Ok(time(self.view(ctx).await?.now.since_ms))
    }
    /// Quarantine and recalls.
    async fn status(&self, ctx: &Context<'_>) -> Answer<LotStatus> {
        let v = self.view(ctx).await?;
        Ok(LotStatus {
            quarantined: v.quarantine.is_some(),
            recalled: v.recalls.iter().any(|r| r.open),
            view: v,
        })
    }
    /// The breaches the rules recorded about it, oldest first.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn breaches(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Verdict>> {
        let all = loader(ctx).load_one(VerdictsKey(self.0.clone())).await?;
        let breaches = all
            .iter()
            .flat_map(|v| v.iter())
            .filter(|v| v.kind == "breach")
            .cloned()
            .map(Verdict)
            .collect();
        page(ctx, breaches, first, after)
    }
    /// Every event that names it, oldest first (partners: those their
    /// organisation captured or that happened at its location).
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Event>> {
        let who = caller(ctx);
        let events = loader(ctx).load_one(EventsKey(self.0.clone())).await?;
        let events = events
            .iter()
            .flat_map(|e| e.iter())
            .filter(|e| who.sees_event(e));
        page(ctx, events.cloned().map(Event).collect(), first, after)
    }
    /// The loggers that watched it (directly or through a container), when.
    async fn watchers(&self, ctx: &Context<'_>) -> Answer<Vec<Watcher>> {
        let w = loader(ctx).load_one(WatchersKey(self.0.clone())).await?;
        Ok(w.iter()
            .flat_map(|w| w.iter())
            .cloned()
            .map(Watcher)
            .collect())
    }
    /// Its temperature as the loggers that watched it measured it, while
    /// they watched it, downsampled: one series per logger.
    #[graphql(complexity = "10 * child_complexity")]
    async fn readings(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(desc = "Bucket width in minutes (60: hourly)")] bucket_minutes: i32,
    ) -> Answer<Vec<Series>> {
        crate::lot_readings(ctx, &self.0, from, to, bucket_minutes).await
    }
    /// Its genealogy: forward (what was made from it) or backward.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn trace(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Direction::Forward")] direction: Direction,
        #[graphql(desc = "Transformations to follow; all when absent")] depth: Option<i32>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Trace> {
        caller(ctx).investigator("a trace")?;
        crate::trace(ctx, &self.0, direction, depth, first, after)
    }
}

/// A logger that watched a lot, and when.
pub struct Watcher(pub analytics::lineage::Watcher);

#[Object]
impl Watcher {
    /// The logger.
    async fn device(&self) -> Device {
        Device(self.0.device.clone())
    }
    /// The container it watched the lot through; none: the lot itself.
    async fn through(&self) -> Option<&str> {
        self.0.through.as_deref()
    }
    /// When it began watching the lot (within the asked interval).
    async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// None while it still watches.
    async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
}

#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Descendants: what was made from the lot.
    Forward,
    /// Ancestors: what the lot was made from.
    Backward,
}

/// A trace: the lots reached, each with how it was reached.
pub struct Trace {
    pub root: String,
    pub direction: Direction,
    pub lots: Page<TracedLot>,
    pub cuts: Vec<String>,
}

#[Object]
impl Trace {
    /// The traced lot.
    async fn root(&self) -> Lot {
        Lot(self.root.clone())
    }
    /// FORWARD (descendants) or BACKWARD (ancestors).
    async fn direction(&self) -> Direction {
        self.direction
    }
    /// The lot itself first (depth 0), then the others in the order reached.
    async fn lots(&self) -> &Page<TracedLot> {
        &self.lots
    }
    /// What the walk left out and why (cycles, fan-out, budget), in words.
    async fn cuts(&self) -> &[String] {
        &self.cuts
    }
}

/// A lot a trace reached.
#[derive(Clone)]
pub struct TracedLot(pub Arc<analytics::lineage::TracedLot>);

#[Object]
impl TracedLot {
    /// The lot reached.
    async fn lot(&self) -> Lot {
        Lot(self.0.lot.clone())
    }
    /// Transformations from the traced lot (0: the lot itself).
    async fn depth(&self) -> u32 {
        self.0.depth
    }
    /// The transformations that link it to a lot one step closer.
    async fn links(&self) -> Vec<TraceLink> {
        self.0.links.iter().cloned().map(TraceLink).collect()
    }
}

pub struct TraceLink(pub analytics::lineage::Link);

#[Object]
impl TraceLink {
    /// The lot one step closer to the traced one.
    async fn from(&self) -> Lot {
        Lot(self.0.from.clone())
    }
    /// The transformation event.
    async fn event(&self) -> Event {
        Event(self.0.event.clone())
    }
    /// How much of the input went in (e.g. kg).
    async fn input_quantity(&self) -> Option<Quantity> {
        self.0.input_quantity.as_ref().map(Quantity::from)
    }
    /// How much of the output came out (e.g. kg).
    async fn output_quantity(&self) -> Option<Quantity> {
        self.0.output_quantity.as_ref().map(Quantity::from)
    }
}

/// A lot (or container) that shared a container, logger or place with the
/// asked-about lot.
#[derive(Clone)]
pub struct Exposure(pub analytics::lineage::Exposure);

#[Object]
impl Exposure {
    /// The other lot or container.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The other lot, when the subject is a lot.
    async fn lot(&self) -> Option<Lot> {
        analytics::watches::gtin_of(&self.0.subject).map(|_| Lot(self.0.subject.clone()))
    }
    /// The container, pallet, reefer, logger or location they shared.
    async fn shared(&self) -> &str {
        &self.0.shared
    }
    /// aggregation (in a container), association (under a logger or reefer)
    /// or location (at the same place at the same time).
    async fn how(&self) -> &str {
        self.0.how
    }
    /// When the shared stay began (within the asked interval).
    async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// When it ended; none while it lasts.
    async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
    /// The events that put each there.
    async fn entries(&self) -> Vec<Entry> {
        self.0.entries.iter().copied().map(Entry).collect()
    }
}

/// A recall: the lot, every lot it names, and its history on the ledger.
#[derive(Clone)]
pub struct Recall(pub analytics::recall::Recall);

#[Object]
impl Recall {
    /// The id of the entry that opened it, hex.
    async fn id(&self) -> &str {
        &self.0.id
    }
    /// The lot it was opened for.
    async fn lot(&self) -> Lot {
        Lot(self.0.lot.clone())
    }
    /// Why it was opened, in the investigator's words.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Whether it is still open (not closed).
    async fn open(&self) -> bool {
        self.0.open
    }
    /// Every lot recalled, in the order added.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn affected(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Lot>> {
        page(
            ctx,
            self.0.affected.iter().cloned().map(Lot).collect(),
            first,
            after,
        )
    }
    /// Each change (opened, widened, closed) with its entry.
    async fn history(&self) -> Vec<RecallStep> {
        self.0.history.iter().cloned().map(RecallStep).collect()
    }
}

pub struct RecallStep(pub analytics::recall::Step);

#[Object]
impl RecallStep {
    /// opened, widened or closed.
    async fn change(&self) -> &str {
        self.0.change
    }
    /// Why the change was made.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The organisation that made the change.
    async fn by(&self) -> Organization {
        Organization(self.0.by.clone())
    }
    /// When the change was made.
    async fn at(&self) -> DateTime<Utc> {
        time(self.0.at_ms)
    }
    /// Lots this change added.
    async fn added(&self) -> Vec<Lot> {
        self.0.added.iter().cloned().map(Lot).collect()
    }
    /// The recall entry on the ledger.
    async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}

/// A registered logger or gateway.
pub struct Device(pub String);

/// One of a device's keys, valid from a time on.
#[derive(SimpleObject)]
pub struct DeviceKey {
    /// From when the key signs the device's readings.
    pub valid_from: DateTime<Utc>,
    /// ed25519 public key, hex.
    pub public_key: String,
}

#[Object]
impl Device {
    /// The device identifier as registered (e.g. a GIAI EPC URN).
    async fn id(&self) -> &str {
        &self.0
    }
    /// The organisation that registered it.
    async fn organization(&self, ctx: &Context<'_>) -> Answer<Option<Organization>> {
        Ok(loader(ctx)
            .load_one(OwnerKey(self.0.clone()))
            .await?
            .map(Organization))
    }
    /// Its keys in the order they became valid (rotations hand over at their time).
    async fn keys(&self, ctx: &Context<'_>) -> Vec<DeviceKey> {
        cost(ctx).trip("devices", 0);
        write_path(ctx)
            .device(&self.0)
            .map(|d| {
                d.keys
                    .iter()
                    .map(|(from, k)| DeviceKey {
                        valid_from: time(*from),
                        public_key: ledger::Digest(k.to_bytes()).to_hex(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    /// When its key was revoked; it signs nothing after.
    async fn revoked_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        write_path(ctx)
            .device(&self.0)
            .and_then(|d| d.revoked_at_ms)
            .map(time)
    }
    /// Why it is suspended, when it is.
    async fn suspended(&self, ctx: &Context<'_>) -> Option<String> {
        write_path(ctx).device(&self.0).and_then(|d| d.suspended)
    }
    /// The identity entries its state rests on: registration, rotations,
    /// revocation, suspensions, reinstatements.
    async fn entries(&self, ctx: &Context<'_>) -> Vec<Entry> {
        write_path(ctx)
            .device(&self.0)
            .map(|d| d.entries.iter().map(|r| Entry(At::from(r))).collect())
            .unwrap_or_default()
    }
    /// Its readings, downsampled.
    #[graphql(complexity = "10 * child_complexity")]
    async fn readings(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(desc = "Bucket width in minutes (60: hourly)")] bucket_minutes: i32,
    ) -> Answer<Series> {
        crate::series(ctx, &self.0, from, to, bucket_minutes).await
    }
}

/// A logger's readings in buckets (empty buckets left out).
pub struct Series(pub analytics::readings::Series);

#[Object]
impl Series {
    /// The logger the readings are from.
    async fn device(&self) -> Device {
        Device(self.0.device.clone())
    }
    /// Start of the range asked for (inclusive).
    async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// End of the range (exclusive).
    async fn to(&self) -> DateTime<Utc> {
        time(self.0.to_ms)
    }
    /// Bucket width, minutes.
    async fn bucket_minutes(&self) -> f64 {
        self.0.bucket_ms as f64 / 60_000.0
    }
    /// The buckets that hold readings, oldest first (empty ones left out).
    async fn buckets(&self) -> Vec<Bucket> {
        self.0.buckets.iter().cloned().map(Bucket).collect()
    }
}

/// The readings in `[from, to)`.
pub struct Bucket(pub analytics::readings::Bucket);

#[Object]
impl Bucket {
    /// Start of the bucket (inclusive), on the bucket grid (hours start on the hour, UTC).
    async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// End of the bucket (exclusive).
    async fn to(&self) -> DateTime<Utc> {
        time(self.0.to_ms)
    }
    /// Readings in the bucket.
    async fn count(&self) -> u64 {
        self.0.count
    }
    /// Lowest temperature, °C.
    async fn min_c(&self) -> f64 {
        self.0.min_c
    }
    /// Highest temperature, °C.
    async fn max_c(&self) -> f64 {
        self.0.max_c
    }
    /// Mean temperature of the readings, °C.
    async fn mean_c(&self) -> f64 {
        self.0.mean_c
    }
    /// The readings entries they come from.
    async fn entries(&self) -> Vec<Entry> {
        self.0.entries.iter().copied().map(Entry).collect()
    }
}

/// A search hit.
#[derive(SimpleObject, Clone)]
pub struct SearchHit {
    /// organisation, product, lot, location, device or event.
    pub kind: String,
    /// The identifier (GLN, GTIN, lot, device or event id).
    pub id: String,
    /// A readable name for it.
    pub label: String,
    /// Relevance; higher is better.
    pub score: f64,
}

/// What a recall change recorded.
#[derive(SimpleObject)]
pub struct RecallChanged {
    /// The recall as it is after the change.
    pub recall: Recall,
    /// The recall entry on the ledger.
    pub entry: Entry,
}

/// A recall change as subscribers see it.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecallNotice {
    /// opened, widened or closed.
    pub change: String,
    /// The recall's id.
    pub recall_id: String,
    /// The lot it was opened for, or the first lot a widening added.
    pub lot: Option<String>,
    /// Why the change was made.
    pub reason: String,
    /// The organisation that made the change.
    pub by: String,
    /// The recall entry on the ledger.
    pub entry: Entry,
}
