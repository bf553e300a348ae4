//! What every resolver reads: the caller, the read state, the request's
//! loaders and its cost, and how refusals become GraphQL errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use analytics::lineage::{At, Lineage, LotView, VerdictView};
use api::{ApiError, Principal, Role};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ErrorExtensions};
use readstate::verifier::ProofJson;
use readstate::ReadState;

/// A refusal as a GraphQL error: the message, and `extensions.code` (with
/// `status`, and `parameter` for `invalid_parameter`) from the same table
/// as the HTTP API's problems.
pub fn refusal(e: ApiError) -> async_graphql::Error {
    use actix_web::ResponseError;
    let status = e.status_code().as_u16();
    let parameter = match &e {
        ApiError::InvalidParameter { name, .. } => Some(name.clone()),
        _ => None,
    };
    async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", e.code());
        ext.set("status", status);
        if let Some(p) = &parameter {
            ext.set("parameter", p.as_str());
        }
    })
}

/// `Result` with refusals already turned into GraphQL errors.
pub type Answer<T> = async_graphql::Result<T>;

/// Who is asking: from the bearer token, checked before anything runs.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Investigators (and operators) see every organisation's data.
    pub fn sees_all(&self) -> bool {
        matches!(self.0.role, Role::Investigator | Role::Operator)
    }

    /// Refuses partners: `what` crosses organisations.
    pub fn investigator(&self, what: &str) -> Answer<()> {
        if self.sees_all() {
            Ok(())
        } else {
            Err(refusal(ApiError::Forbidden(format!(
                "{what} crosses organisations: use an investigator token (`coldtrail token issue --role investigator`)"
            ))))
        }
    }

    /// Whether the caller may see `subject` (a lot, container or device):
    /// investigators always, partners when it concerns their organisation
    /// (the node's visibility model, `readstate::access`).
    pub fn may_see(&self, g: &Lineage, subject: &str) -> bool {
        self.sees_all() || g.about_concerns(subject, i64::MIN, i64::MAX, &self.0.org)
    }

    /// Whether the caller may see an event: investigators always, partners
    /// when it concerns their organisation (as the EPCIS query interface
    /// and the entry routes decide).
    pub fn sees_event(&self, g: &Lineage, e: &analytics::lineage::EventView) -> bool {
        self.sees_all() || g.event_view_concerns(e, &self.0.org)
    }

    /// Whether the caller may see the recall opened by entry `id`:
    /// investigators always, partners when it recalls a lot of theirs.
    pub fn may_see_recall(&self, g: &Lineage, id: &str) -> bool {
        self.sees_all() || g.recall_id_concerns(id, &self.0.org)
    }

    /// `lots` without those the caller may not see (partners: lots of other
    /// chains a recall or a trace names); investigators see all, and cost
    /// no trip to the graph for it.
    pub fn visible_lots(&self, ctx: &Context<'_>, lots: &[String]) -> Vec<String> {
        if self.sees_all() {
            return lots.to_vec();
        }
        with_graph(ctx, |g| {
            lots.iter()
                .filter(|l| self.may_see(g, l))
                .cloned()
                .collect()
        })
    }

    /// Refuses a partner `subject` is not visible to.
    pub fn must_see(&self, g: &Lineage, subject: &str) -> Answer<()> {
        if self.may_see(g, subject) {
            Ok(())
        } else {
            Err(refusal(ApiError::Forbidden(format!(
                "{subject:?} is not named by any event or device of {}",
                self.0.org
            ))))
        }
    }
}

/// What one request cost: trips to the read model or storage (one per
/// loader batch or direct read), by what they fetched, and storage reads
/// (entries, proofs, heads). Reported in the response's `extensions.cost`.
#[derive(Debug, Default)]
pub struct Cost {
    trips: Mutex<BTreeMap<&'static str, usize>>,
    storage_reads: AtomicUsize,
}

impl Cost {
    /// One trip fetching `what` (a loader's kind, or a direct read).
    pub fn trip(&self, what: &'static str, storage_reads: usize) {
        *self
            .trips
            .lock()
            .expect("cost lock")
            .entry(what)
            .or_default() += 1;
        self.storage_reads
            .fetch_add(storage_reads, Ordering::Relaxed);
    }

    /// `{"trips": n, "tripsBy": {what: n}, "storageReads": n}`.
    pub fn to_json(&self) -> serde_json::Value {
        let by = self.trips.lock().expect("cost lock").clone();
        serde_json::json!({
            "trips": by.values().sum::<usize>(),
            "tripsBy": by,
            "storageReads": self.storage_reads.load(Ordering::Relaxed),
        })
    }
}

/// The request's limits that resolvers enforce themselves.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub max_page: usize,
    pub default_page: usize,
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a Arc<ReadState> {
    ctx.data_unchecked::<Arc<ReadState>>()
}

/// The write path as the read side sees it: device identities, and a lot's
/// release.
pub fn write_path<'a>(ctx: &Context<'a>) -> &'a dyn api::port::WritePort {
    state(ctx).writes()
}

pub fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    ctx.data_unchecked::<Caller>()
}

pub fn cost<'a>(ctx: &Context<'a>) -> &'a Arc<Cost> {
    ctx.data_unchecked::<Arc<Cost>>()
}

pub fn loader<'a>(ctx: &Context<'a>) -> &'a DataLoader<Graph> {
    ctx.data_unchecked::<DataLoader<Graph>>()
}

/// Reads the lineage graph (one trip).
pub fn with_graph<T>(ctx: &Context<'_>, f: impl FnOnce(&Lineage) -> T) -> T {
    cost(ctx).trip("graph", 0);
    let g = state(ctx).lineage.read().expect("lineage lock");
    f(&g)
}

/// The request's batching loader over the read model and the ledger: every
/// lot, verdict list, proof or entry a query names is fetched in one batch
/// per kind and level, not one trip per field.
pub struct Graph {
    pub state: Arc<ReadState>,
    pub cost: Arc<Cost>,
}

/// A lot's view, by lot identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LotKey(pub String);

/// The verdicts about a subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictsKey(pub String);

/// An entry's inclusion proof, under the newest signed head of its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofKey(pub u32, pub u64);

/// The events naming a subject, in time order: those that concern the
/// organisation given (a partner's), or all (`None`: investigators).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventsKey(pub String, pub Option<String>);

/// The loggers that watched a subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchersKey(pub String);

/// The organisation that registered a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerKey(pub String);

/// A registered organisation's name and role, by its identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgKey(pub String);

/// The device a readings entry is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceOfKey(pub u32, pub u64);

impl Loader<LotKey> for Graph {
    type Value = Arc<LotView>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[LotKey]) -> Answer<HashMap<LotKey, Arc<LotView>>> {
        self.cost.trip("lots", 0);
        let g = self.state.lineage.read().expect("lineage lock");
        Ok(keys
            .iter()
            .filter_map(|k| g.lot(&k.0).map(|v| (k.clone(), Arc::new(v))))
            .collect())
    }
}

impl Loader<VerdictsKey> for Graph {
    type Value = Arc<Vec<VerdictView>>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[VerdictsKey],
    ) -> Answer<HashMap<VerdictsKey, Arc<Vec<VerdictView>>>> {
        self.cost.trip("verdicts", 0);
        let g = self.state.lineage.read().expect("lineage lock");
        Ok(keys
            .iter()
            .map(|k| (k.clone(), Arc::new(g.verdicts_about(&k.0))))
            .collect())
    }
}

/// Loaders that answer from the lineage graph alone: one read lock per
/// batch, `$f` per key (`None`: not there).
macro_rules! graph_loader {
    ($key:ty, $what:literal, $value:ty, |$g:ident, $id:ident| $f:expr) => {
        impl Loader<$key> for Graph {
            type Value = $value;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> Answer<HashMap<$key, $value>> {
                self.cost.trip($what, 0);
                let $g = self.state.lineage.read().expect("lineage lock");
                Ok(keys
                    .iter()
                    .filter_map(|k| {
                        let $id: &str = &k.0;
                        let v: Option<$value> = $f;
                        v.map(|v| (k.clone(), v))
                    })
                    .collect())
            }
        }
    };
}

impl Loader<EventsKey> for Graph {
    type Value = Arc<Vec<analytics::lineage::EventView>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EventsKey]) -> Answer<HashMap<EventsKey, Self::Value>> {
        self.cost.trip("events", 0);
        let g = self.state.lineage.read().expect("lineage lock");
        Ok(keys
            .iter()
            .map(|k| {
                let mut events = g.events_about(&k.0);
                if let Some(org) = &k.1 {
                    events.retain(|e| g.event_view_concerns(e, org));
                }
                (k.clone(), Arc::new(events))
            })
            .collect())
    }
}
graph_loader!(
    WatchersKey,
    "watchers",
    Arc<Vec<analytics::lineage::Watcher>>,
    |g, id| Some(Arc::new(g.watchers(id, i64::MIN, i64::MAX)))
);
graph_loader!(OwnerKey, "owners", String, |g, id| g
    .device_owner(id)
    .map(str::to_string));

impl Loader<OrgKey> for Graph {
    type Value = (String, &'static str);
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[OrgKey]) -> Answer<HashMap<OrgKey, (String, &'static str)>> {
        self.cost.trip("organizations", 0);
        let g = self.state.lineage.read().expect("lineage lock");
        Ok(keys
            .iter()
            .filter_map(|k| g.org(&k.0).map(|(n, r)| (k.clone(), (n.clone(), r.name()))))
            .collect())
    }
}

impl Loader<ProofKey> for Graph {
    type Value = Arc<ProofJson>;
    type Error = async_graphql::Error;

    /// One head per shard, then each proof under it.
    async fn load(&self, keys: &[ProofKey]) -> Answer<HashMap<ProofKey, Arc<ProofJson>>> {
        let reads = &self.state.reads;
        let mut heads: HashMap<u32, u64> = HashMap::new();
        let mut out = HashMap::with_capacity(keys.len());
        let mut trips = 0;
        for &ProofKey(shard, index) in keys {
            let size = match heads.get(&shard) {
                Some(&s) => s,
                None => {
                    let h = reads.latest_head(shard).await.map_err(refusal)?;
                    trips += 1;
                    heads.insert(shard, h.size);
                    h.size
                }
            };
            // An entry committed after the newest head is proven under the
            // first head that covers it.
            let at = (index < size).then_some(size);
            let p = reads.proof(shard, index, at).await.map_err(refusal)?;
            trips += 1;
            out.insert(ProofKey(shard, index), Arc::new(p));
        }
        self.cost.trip("proofs", trips);
        Ok(out)
    }
}

impl Loader<DeviceOfKey> for Graph {
    type Value = String;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[DeviceOfKey]) -> Answer<HashMap<DeviceOfKey, String>> {
        let node = &self.state.node;
        let mut out = HashMap::new();
        for &k in keys {
            let bytes = node
                .shard(k.0)
                .and_then(|s| s.store().entry(k.1).map_err(shards::ShardError::from))
                .map_err(|e| refusal(readstate::shard_refusal(e)))?;
            if let Some((device, _, _)) = ledger::entry::peek_readings(&bytes) {
                out.insert(k, device);
            }
        }
        self.cost.trip("readingsDevices", keys.len());
        Ok(out)
    }
}

impl From<At> for ProofKey {
    fn from(a: At) -> ProofKey {
        ProofKey(a.shard, a.index)
    }
}
