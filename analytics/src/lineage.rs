//! Lot genealogy from custody events: what a lot was made from, what was made
//! from it, where each is now, and what shared a container with it.
//!
//! The graph is compact: every identifier (lot, serial, container, logger,
//! location, organisation, business step) is interned once as a `u32`; each
//! event keeps its subjects as ids; each identifier keeps the events that
//! name it. Transformations link inputs to outputs; aggregations and
//! associations put lots in containers and under loggers over an interval
//! ([`Watches`]). Every answer names the ledger entries it rests on.
//!
//! Traces are bounded: each lot is expanded once (a lot that becomes its own
//! ancestor through wrong data is reported, not followed), a lot with more
//! children than `max_fanout` keeps the first ones, and the whole walk stops
//! at `max_lots` lots; each cut is reported in the answer.

use std::collections::HashMap;

pub mod checkpoint;
pub mod fsma204;
mod lots;
pub mod query;

pub use lots::{lot_number, LotView, VerdictView, Watcher};

use ledger::entry::{Action, CustodyEvent, EntryRef, EventKind, SubjectRole};
use serde::Serialize;

use crate::rules::Evidence;
use crate::watches::{WatchKind, Watches};

/// Where an answer's facts come from: a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct At {
    pub shard: u32,
    pub index: u64,
    /// The entry id, hex.
    #[serde(serialize_with = "hex_id")]
    pub id: [u8; 32],
}

fn hex_id<S: serde::Serializer>(id: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ledger::Digest(*id).to_hex())
}

impl At {
    pub fn entry_ref(&self) -> EntryRef {
        EntryRef {
            shard: self.shard,
            index: self.index,
            id: ledger::Digest(self.id),
        }
    }
}

impl From<&EntryRef> for At {
    fn from(r: &EntryRef) -> At {
        At {
            shard: r.shard,
            index: r.index,
            id: r.id.0,
        }
    }
}

/// A quantity in thousandths, and its unit's id.
type Qty = Option<(i64, Option<u32>)>;

/// What a walk reached: lots with their depth in the order reached, each link
/// (to, from, how), and what it cut.
struct Walk {
    order: Vec<(u32, u32)>,
    links: Vec<(u32, u32, Neighbour)>,
    cut: Vec<Cut>,
}

/// A lot one transformation away: (lot, event, input quantity, output quantity).
#[derive(Debug, Clone, Copy)]
struct Neighbour {
    lot: u32,
    event: u32,
    input: Qty,
    output: Qty,
}

#[derive(Debug, Clone)]
struct Mention {
    role: SubjectRole,
    id: u32,
    quantity: Qty,
}

#[derive(Debug, Clone)]
struct EventRec {
    at: At,
    event_id: u32,
    kind: EventKind,
    action: Option<Action>,
    time_ms: i64,
    biz_step: Option<u32>,
    disposition: Option<u32>,
    /// The business location, or without one the read point.
    location: Option<u32>,
    read_point: Option<u32>,
    biz_location: Option<u32>,
    /// The event declares an error in an earlier one (`errorDeclaration`).
    declares_error: bool,
    recorded_by: u32,
    subjects: Vec<Mention>,
    /// `sourceList` / `destinationList` ids, and `bizTransactionList` as
    /// (type, id): the reference documents.
    sources: Vec<u32>,
    destinations: Vec<u32>,
    documents: Vec<(Option<u32>, u32)>,
}

/// An event as answers show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub entry: At,
    pub event_id: String,
    pub event_type: &'static str,
    pub action: Option<&'static str>,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub time_ms: i64,
    /// The business location (or, without one, the read point).
    pub location: Option<String>,
    /// The organisation that captured it.
    pub recorded_by: String,
}

/// A quantity as the event gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantityView {
    pub value: f64,
    pub uom: Option<String>,
}

/// How a traced lot was reached: from `from`, through a transformation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub from: String,
    pub event: EventView,
    /// The input quantity (forward: of `from`; backward: of this lot).
    pub input_quantity: Option<QuantityView>,
    pub output_quantity: Option<QuantityView>,
}

/// Where a lot was last seen, and who had it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Whereabouts {
    pub location: Option<String>,
    pub holder: String,
    pub since_ms: i64,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub entry: At,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracedLot {
    pub lot: String,
    /// Transformations from the traced lot (0: the lot itself).
    pub depth: u32,
    /// Every transformation that links it to a lot one step closer.
    pub links: Vec<Link>,
    /// Every event that names it, in time order.
    pub events: Vec<EventView>,
    pub now: Option<Whereabouts>,
}

/// What a trace left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cut", rename_all = "snake_case")]
pub enum Cut {
    /// Following `lot` leads back to `back_to`, already on the path: the
    /// data says a lot is its own ancestor. The link is reported, not followed.
    Cycle {
        lot: String,
        back_to: String,
        event: At,
    },
    /// `lot` has more linked lots than the limit; the first `kept` were followed.
    FanOut {
        lot: String,
        kept: usize,
        total: usize,
    },
    /// The trace reached its lot budget; lots past it were not expanded.
    Budget { lots: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Descendants: what was made from the lot.
    Forward,
    /// Ancestors: what the lot was made from.
    Backward,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub root: String,
    pub direction: Direction,
    /// The lot itself first, then the others in the order reached.
    pub lots: Vec<TracedLot>,
    pub cut: Vec<Cut>,
}

impl Trace {
    /// The traced lots other than the root.
    pub fn others(&self) -> impl Iterator<Item = &str> {
        self.lots.iter().skip(1).map(|l| l.lot.as_str())
    }
}

/// Bounds on one trace's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_lots: usize,
    pub max_fanout: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lots: 100_000,
            max_fanout: 10_000,
        }
    }
}

/// A lot that shared something with the traced one during the interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    /// The other lot (or container) held or watched with it.
    pub subject: String,
    /// The container, pallet, reefer, logger or location they shared.
    pub shared: String,
    /// `aggregation` (held in a container), `association` (under a logger or
    /// reefer) or `location` (at the same place at the same time).
    pub how: &'static str,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The events that put each lot there.
    pub entries: Vec<At>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoExposure {
    pub lot: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub exposures: Vec<Exposure>,
}

/// The lineage graph.
#[derive(Debug, Default, Clone)]
pub struct Lineage {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    events: Vec<EventRec>,
    /// By identifier: the events naming it as a subject, in the order applied.
    mentions: Vec<Vec<u32>>,
    watches: Watches,
    recalls: crate::recall::Recalls,
    /// Organisations by id: name and role.
    orgs: HashMap<u32, (String, ledger::entry::OrgRole)>,
    /// Per shard, how many entries have been read into the graph.
    positions: Vec<u64>,
    /// Registered devices and their organisations.
    devices: Vec<(u32, u32)>,
    /// By location (business location, else read point): the events there.
    at_location: HashMap<u32, Vec<u32>>,
    /// Where every entry the graph was built from is (what a snapshot keeps).
    sources: Vec<(u32, u64)>,
    /// Every verdict entry, and by subject the verdicts about it.
    verdicts: Vec<lots::VerdictRec>,
    verdicts_of: HashMap<u32, Vec<u32>>,
}

fn role_is(m: &Mention, role: SubjectRole) -> bool {
    m.role == role
}

impl Lineage {
    pub fn new() -> Lineage {
        Lineage::default()
    }

    /// The node of identifier `s`, made on first sight. Every GS1 spelling
    /// of one thing (EPC URN, Digital Link on any host, GTIN-13 or -14…)
    /// is one node, named as it was first written: its canonical Digital
    /// Link is kept as an alias.
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let canonical = gs1::canonical_id(s);
        if let Some(&id) = canonical.as_ref().and_then(|c| self.ids.get(c)) {
            self.ids.insert(s.to_string(), id);
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        if let Some(c) = canonical {
            self.ids.insert(c, id);
        }
        self.mentions.push(Vec::new());
        id
    }

    /// The node `s` names, in whichever GS1 spelling it comes.
    fn id_of(&self, s: &str) -> Option<&u32> {
        self.ids
            .get(s)
            .or_else(|| gs1::canonical_id(s).and_then(|c| self.ids.get(&c)))
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Takes an organisation's registration in (its name and role name
    /// locations in reports).
    pub fn apply_org(&mut self, org: &str, name: &str, role: ledger::entry::OrgRole) {
        let id = self.intern(org);
        self.orgs.insert(id, (name.to_string(), role));
    }

    /// An organisation's name and role, if registered.
    pub fn org(&self, org: &str) -> Option<&(String, ledger::entry::OrgRole)> {
        self.id_of(org).and_then(|id| self.orgs.get(id))
    }

    /// What search indexes: every organisation, product, lot, location,
    /// device and event the graph knows.
    pub fn search_docs(&self) -> Vec<crate::search::Doc> {
        use crate::search::Doc;
        let org_name = |id: u32| self.orgs.get(&id).map(|(n, _)| n.clone());
        let mut docs = Vec::new();
        for (&id, (name, role)) in &self.orgs {
            docs.push(Doc {
                kind: "organisation",
                id: self.name(id).to_string(),
                label: name.clone(),
                words: role.name().replace('_', " "),
            });
        }
        let mut products = std::collections::BTreeSet::new();
        let mut locations = std::collections::BTreeSet::new();
        for e in &self.events {
            locations.extend(e.read_point);
            locations.extend(e.biz_location);
        }
        for (i, name) in self.names.iter().enumerate() {
            if self.mentions[i].is_empty() {
                continue;
            }
            if let Some(gtin) = crate::watches::gtin_of(name) {
                docs.push(Doc {
                    kind: "lot",
                    id: name.clone(),
                    label: format!("{name} (GTIN {gtin})"),
                    words: String::new(),
                });
                products.insert(gtin);
            }
        }
        for gtin in products {
            docs.push(Doc {
                kind: "product",
                label: format!("GTIN {gtin}"),
                words: String::new(),
                id: gtin,
            });
        }
        for l in locations {
            docs.push(Doc {
                kind: "location",
                id: self.name(l).to_string(),
                label: org_name(l).unwrap_or_else(|| self.name(l).to_string()),
                words: String::new(),
            });
        }
        for &(d, o) in &self.devices {
            docs.push(Doc {
                kind: "device",
                id: self.name(d).to_string(),
                label: format!(
                    "{} of {}",
                    self.name(d),
                    org_name(o).unwrap_or_else(|| self.name(o).to_string())
                ),
                words: String::new(),
            });
        }
        for e in &self.events {
            let at = e
                .location
                .and_then(org_name)
                .or(e.location.map(|l| self.name(l).to_string()));
            docs.push(Doc {
                kind: "event",
                id: self.name(e.event_id).to_string(),
                label: format!(
                    "{} {} at {} on {}",
                    e.kind.name(),
                    e.biz_step.map_or("", |s| query::cbv_bare(self.name(s))),
                    at.unwrap_or_default(),
                    chrono::DateTime::from_timestamp_millis(e.time_ms)
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default()
                ),
                words: String::new(),
            });
        }
        docs
    }

    /// Whether the graph has read every shard up to `committed` (each
    /// shard's committed length when a request began): read-your-writes.
    /// Per shard, the index after the last entry the graph has read.
    pub fn positions(&self) -> &[u64] {
        &self.positions
    }

    pub fn covers(&self, committed: &[u64]) -> bool {
        committed
            .iter()
            .enumerate()
            .all(|(i, c)| self.positions.get(i).is_some_and(|p| p >= c))
    }

    /// Every recall the ledger records.
    pub fn recalls(&self) -> &crate::recall::Recalls {
        &self.recalls
    }

    /// Takes a committed recall entry in (idempotent).
    pub fn apply_recall(&mut self, at: &EntryRef, change: &ledger::entry::RecallChange) {
        self.recalls.apply(at, change);
    }

    /// Events applied so far.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Identifiers known so far (lots, containers, locations, organisations…).
    pub fn identifier_count(&self) -> usize {
        self.names.len()
    }

    /// Whether `id` was named by any event.
    pub fn knows(&self, id: &str) -> bool {
        self.id_of(id)
            .is_some_and(|&i| !self.mentions[i as usize].is_empty())
    }

    /// Takes a committed custody event into the graph. Feed each event once.
    pub fn apply(&mut self, at: &EntryRef, e: &CustodyEvent) {
        let n = self.events.len() as u32;
        let subjects: Vec<Mention> = e
            .subjects
            .iter()
            .map(|s| Mention {
                role: s.role,
                id: self.intern(&s.id),
                quantity: s
                    .quantity
                    .as_ref()
                    .map(|q| (q.milli, q.uom.as_deref().map(|u| self.intern(u)))),
            })
            .collect();
        let mut seen: Vec<u32> = Vec::with_capacity(subjects.len());
        for m in &subjects {
            if !seen.contains(&m.id) {
                seen.push(m.id);
                self.mentions[m.id as usize].push(n);
            }
        }
        let doc: serde_json::Value = serde_json::from_slice(&e.document).unwrap_or_default();
        let mut ids = |list: &str, field: &str| -> Vec<u32> {
            crate::tables::party_list(&doc, list, field)
                .iter()
                .map(|p| self.intern(p))
                .collect()
        };
        let sources = ids("sourceList", "source");
        let destinations = ids("destinationList", "destination");
        let documents = doc
            .get("bizTransactionList")
            .and_then(|l| l.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|t| {
                        let id = t.get("bizTransaction")?.as_str()?;
                        let kind = t.get("type").and_then(|k| k.as_str());
                        Some((kind.map(|k| self.intern(k)), self.intern(id)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rec = EventRec {
            sources,
            destinations,
            documents,
            at: At::from(at),
            event_id: self.intern(&e.event_id),
            kind: e.kind,
            action: e.action,
            time_ms: e.event_time_ms,
            biz_step: e.biz_step.as_deref().map(|s| self.intern(s)),
            disposition: e.disposition.as_deref().map(|s| self.intern(s)),
            location: e
                .biz_location
                .as_deref()
                .or(e.read_point.as_deref())
                .map(|s| self.intern(s)),
            read_point: e.read_point.as_deref().map(|s| self.intern(s)),
            biz_location: e.biz_location.as_deref().map(|s| self.intern(s)),
            declares_error: doc.get("errorDeclaration").is_some(),
            recorded_by: self.intern(&e.recorded_by),
            subjects,
        };
        if let Some(l) = rec.location {
            self.at_location.entry(l).or_default().push(n);
        }
        self.events.push(rec);
        let evidence = Evidence {
            shard: at.shard,
            index: at.index,
            id: at.id.0,
        };
        self.watches.apply(e, &evidence);
    }

    fn view(&self, e: &EventRec) -> EventView {
        let opt = |id: Option<u32>| id.map(|i| self.name(i).to_string());
        EventView {
            entry: e.at,
            event_id: self.name(e.event_id).to_string(),
            event_type: e.kind.name(),
            action: e.action.map(Action::name),
            biz_step: opt(e.biz_step),
            disposition: opt(e.disposition),
            time_ms: e.time_ms,
            location: opt(e.location),
            recorded_by: self.name(e.recorded_by).to_string(),
        }
    }

    fn quantity(&self, q: Qty) -> Option<QuantityView> {
        q.map(|(milli, uom)| QuantityView {
            value: milli as f64 / 1000.0,
            uom: uom.map(|u| self.name(u).to_string()),
        })
    }

    /// The events naming `lot`, in time order (ties: the order applied).
    fn events_of(&self, lot: u32) -> Vec<&EventRec> {
        let mut v: Vec<&EventRec> = self.mentions[lot as usize]
            .iter()
            .map(|&e| &self.events[e as usize])
            .collect();
        v.sort_by_key(|e| e.time_ms);
        v
    }

    fn whereabouts(&self, lot: u32) -> Option<Whereabouts> {
        let last = *self.events_of(lot).last()?;
        Some(Whereabouts {
            location: last.location.map(|l| self.name(l).to_string()),
            holder: self.name(last.recorded_by).to_string(),
            since_ms: last.time_ms,
            biz_step: last.biz_step.map(|s| self.name(s).to_string()),
            disposition: last.disposition.map(|s| self.name(s).to_string()),
            entry: last.at,
        })
    }

    /// The lots one transformation away from `lot`, with the event and the
    /// quantities: its outputs where it is an input (forward), its inputs
    /// where it is an output (backward). Each neighbour once per event.
    fn neighbours(&self, lot: u32, dir: Direction) -> Vec<Neighbour> {
        let (here, there) = match dir {
            Direction::Forward => (SubjectRole::Input, SubjectRole::Output),
            Direction::Backward => (SubjectRole::Output, SubjectRole::Input),
        };
        let mut out = Vec::new();
        for &ei in &self.mentions[lot as usize] {
            let e = &self.events[ei as usize];
            if e.kind != EventKind::Transformation {
                continue;
            }
            let Some(mine) = e.subjects.iter().find(|m| m.id == lot && role_is(m, here)) else {
                continue;
            };
            for other in e.subjects.iter().filter(|m| role_is(m, there)) {
                let (input, output) = match dir {
                    Direction::Forward => (mine.quantity, other.quantity),
                    Direction::Backward => (other.quantity, mine.quantity),
                };
                if !out
                    .iter()
                    .any(|n: &Neighbour| n.lot == other.id && n.event == ei)
                {
                    out.push(Neighbour {
                        lot: other.id,
                        event: ei,
                        input,
                        output,
                    });
                }
            }
        }
        out
    }

    /// The depth-first walk under a trace, on ids only.
    fn walk(&self, root: u32, dir: Direction, limits: Limits) -> Walk {
        // Depth-first, so a link back to a lot on the current path is a cycle.
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state: HashMap<u32, u8> = HashMap::new();
        let mut order: Vec<(u32, u32)> = Vec::new(); // (lot, depth), in the order reached
        let mut links: Vec<(u32, u32, Neighbour)> = Vec::new();
        let mut cut = Vec::new();
        let mut budget_hit = false;
        // Each frame: (lot, depth, its neighbours, next neighbour to visit).
        type Frame = (u32, u32, Vec<Neighbour>, usize);
        let mut stack: Vec<Frame> = Vec::new();
        let enter = |l: u32,
                     depth: u32,
                     stack: &mut Vec<Frame>,
                     state: &mut HashMap<u32, u8>,
                     order: &mut Vec<(u32, u32)>,
                     cut: &mut Vec<Cut>| {
            state.insert(l, ON_PATH);
            order.push((l, depth));
            let mut next = self.neighbours(l, dir);
            let distinct = {
                let mut d: Vec<u32> = next.iter().map(|n| n.lot).collect();
                d.sort_unstable();
                d.dedup();
                d
            };
            if distinct.len() > limits.max_fanout {
                let keep: Vec<u32> = distinct[..limits.max_fanout].to_vec();
                next.retain(|n| keep.binary_search(&n.lot).is_ok());
                cut.push(Cut::FanOut {
                    lot: self.name(l).to_string(),
                    kept: limits.max_fanout,
                    total: distinct.len(),
                });
            }
            stack.push((l, depth, next, 0));
        };
        enter(root, 0, &mut stack, &mut state, &mut order, &mut cut);
        while let Some(frame) = stack.last_mut() {
            let (l, depth) = (frame.0, frame.1);
            let Some(&Neighbour {
                lot: other,
                event: ei,
                input: in_q,
                output: out_q,
            }) = frame.2.get(frame.3)
            else {
                state.insert(l, DONE);
                stack.pop();
                continue;
            };
            frame.3 += 1;
            let e = &self.events[ei as usize];
            match state.get(&other).copied().unwrap_or(NEW) {
                ON_PATH => {
                    cut.push(Cut::Cycle {
                        lot: self.name(l).to_string(),
                        back_to: self.name(other).to_string(),
                        event: e.at,
                    });
                    continue;
                }
                DONE => {}
                _ => {
                    if order.len() >= limits.max_lots {
                        budget_hit = true;
                        continue;
                    }
                    enter(
                        other,
                        depth + 1,
                        &mut stack,
                        &mut state,
                        &mut order,
                        &mut cut,
                    );
                }
            }
            if other != root {
                links.push((
                    other,
                    l,
                    Neighbour {
                        lot: other,
                        event: ei,
                        input: in_q,
                        output: out_q,
                    },
                ));
            }
        }
        if budget_hit {
            cut.push(Cut::Budget {
                lots: limits.max_lots,
            });
        }
        Walk { order, links, cut }
    }

    /// The lots a trace reaches, by name, without rendering their events:
    /// the walk alone (what a recursive query over the edges answers).
    pub fn trace_lots(&self, lot: &str, dir: Direction, limits: Limits) -> Option<Vec<&str>> {
        let root = *self.id_of(lot)?;
        if self.mentions[root as usize].is_empty() {
            return None;
        }
        let w = self.walk(root, dir, limits);
        Some(w.order.iter().map(|&(l, _)| self.name(l)).collect())
    }

    /// Traces `lot` forward (descendants) or backward (ancestors). `None` if
    /// no event names the lot.
    pub fn trace(&self, lot: &str, dir: Direction, limits: Limits) -> Option<Trace> {
        let root = *self.id_of(lot)?;
        if self.mentions[root as usize].is_empty() {
            return None;
        }
        let Walk { order, links, cut } = self.walk(root, dir, limits);
        let mut by_lot: HashMap<u32, Vec<Link>> = HashMap::new();
        for (to, from, n) in links {
            by_lot.entry(to).or_default().push(Link {
                from: self.name(from).to_string(),
                event: self.view(&self.events[n.event as usize]),
                input_quantity: self.quantity(n.input),
                output_quantity: self.quantity(n.output),
            });
        }
        let lots = order
            .into_iter()
            .map(|(l, depth)| TracedLot {
                lot: self.name(l).to_string(),
                depth,
                links: by_lot.remove(&l).unwrap_or_default(),
                events: self
                    .events_of(l)
                    .into_iter()
                    .map(|e| self.view(e))
                    .collect(),
                now: self.whereabouts(l),
            })
            .collect();
        Some(Trace {
            root: lot.to_string(),
            direction: dir,
            lots,
            cut,
        })
    }

    /// Lots that shared a container, pallet, reefer or logger with `lot` at
    /// some time in `[from_ms, to_ms]`: every parent that held or watched the
    /// lot then, and every other child it held or watched during the overlap.
    pub fn co_exposure(&self, lot: &str, from_ms: i64, to_ms: i64) -> Option<CoExposure> {
        let id = *self.id_of(lot)?;
        let parents = self.parents_of(id);
        let overlaps = |f: i64, t: Option<i64>, a: i64, b: i64| f <= b && t.is_none_or(|t| t > a);
        let mut exposures = Vec::new();
        for p in parents {
            let parent = self.name(p);
            let watches = self.watches.of_parent(parent);
            for mine in watches
                .iter()
                .filter(|w| w.child == lot && overlaps(w.from_ms, w.to_ms, from_ms, to_ms))
            {
                let a = mine.from_ms.max(from_ms);
                let b = mine.to_ms.map_or(to_ms, |t| t.min(to_ms));
                for other in watches.iter().filter(|w| {
                    w.child != lot && w.kind == mine.kind && overlaps(w.from_ms, w.to_ms, a, b)
                }) {
                    exposures.push(Exposure {
                        subject: other.child.clone(),
                        shared: parent.to_string(),
                        how: match mine.kind {
                            WatchKind::Aggregation => "aggregation",
                            WatchKind::Association => "association",
                        },
                        from_ms: a.max(other.from_ms),
                        to_ms: match (other.to_ms, mine.to_ms) {
                            (Some(x), Some(y)) => Some(x.min(y).min(to_ms)),
                            (Some(x), None) | (None, Some(x)) => Some(x.min(to_ms)),
                            (None, None) => None,
                        },
                        entries: vec![
                            At::from(&mine.at.to_entry_ref()),
                            At::from(&other.at.to_entry_ref()),
                        ],
                    });
                }
            }
        }
        self.shared_locations(id, from_ms, to_ms, &mut exposures);
        exposures.sort_by(|x, y| {
            (&x.subject, &x.shared, x.from_ms).cmp(&(&y.subject, &y.shared, y.from_ms))
        });
        exposures.dedup();
        Some(CoExposure {
            lot: lot.to_string(),
            from_ms,
            to_ms,
            exposures,
        })
    }
}

/// Where a lot was, and when: (location, from, until, the event that put it there).
type Presence = (u32, i64, Option<i64>, At);

impl Lineage {
    /// A lot's stays: from an event at a location until its next event
    /// elsewhere; shipping, selling, destroying it or consuming it in a
    /// transformation ends the stay where it happens.
    fn presence(&self, lot: u32) -> Vec<Presence> {
        let mut out: Vec<Presence> = Vec::new();
        for e in self.events_of(lot) {
            let Some(loc) = e.location else { continue };
            // Shipped from here, sold, destroyed, or consumed by a transformation:
            // the lot is no longer here after this event.
            let leaving = e
                .biz_step
                .map(|s| query::cbv_bare(self.name(s)))
                .is_some_and(|s| {
                    matches!(
                        s,
                        "shipping"
                            | "departing"
                            | "retail_selling"
                            | "destroying"
                            | "decommissioning"
                    )
                })
                || e.action == Some(Action::Delete) && e.kind == EventKind::Object
                || e.subjects
                    .iter()
                    .any(|m| m.id == lot && m.role == SubjectRole::Input);
            match out.last_mut() {
                // Still there: a shipment from here ends the stay.
                Some(last) if last.0 == loc && last.2.is_none() => {
                    if leaving {
                        last.2 = Some(e.time_ms);
                    }
                    continue;
                }
                // Seen elsewhere: the stay before ended.
                Some(last) if last.2.is_none() => last.2 = Some(e.time_ms),
                _ => {}
            }
            if !leaving {
                out.push((loc, e.time_ms, None, e.at));
            }
        }
        out
    }

    /// Lots at the same location as `lot` at the same time, within the interval.
    fn shared_locations(&self, lot: u32, from_ms: i64, to_ms: i64, out: &mut Vec<Exposure>) {
        let overlaps = |f: i64, t: Option<i64>, a: i64, b: i64| f <= b && t.is_none_or(|t| t > a);
        for (loc, f, t, at) in self.presence(lot) {
            if !overlaps(f, t, from_ms, to_ms) {
                continue;
            }
            let (a, b) = (f.max(from_ms), t.map_or(to_ms, |t| t.min(to_ms)));
            let mut others: Vec<u32> = Vec::new();
            for &ei in self.at_location.get(&loc).map_or(&[][..], Vec::as_slice) {
                let e = &self.events[ei as usize];
                if e.time_ms > b {
                    continue;
                }
                for m in &e.subjects {
                    if m.id != lot
                        && m.role != SubjectRole::Parent
                        && !others.contains(&m.id)
                        && crate::watches::gtin_of(self.name(m.id)).is_some()
                    {
                        others.push(m.id);
                    }
                }
            }
            for o in others {
                for (oloc, of, ot, oat) in self.presence(o) {
                    if oloc == loc && overlaps(of, ot, a, b) {
                        out.push(Exposure {
                            subject: self.name(o).to_string(),
                            shared: self.name(loc).to_string(),
                            how: "location",
                            from_ms: a.max(of),
                            to_ms: match ot {
                                Some(x) => Some(x.min(b)),
                                None => t.map(|t| t.min(b)),
                            },
                            entries: vec![at, oat],
                        });
                    }
                }
            }
        }
    }
}

/// The graph from its checkpoint when one matches the logs, else from a scan
/// of every log; and the position on each shard it was built up to.
pub fn open(node: &shards::Node) -> Result<(Lineage, Vec<u64>), shards::ShardError> {
    match checkpoint::load(node) {
        Some(loaded) => Ok(loaded),
        None => scan(node),
    }
}

/// The graph of everything committed on `node`, and the position on each
/// shard it was built up to (where [`follow`] continues).
pub fn scan(node: &shards::Node) -> Result<(Lineage, Vec<u64>), shards::ShardError> {
    let mut lineage = Lineage::new();
    let mut scanned = Vec::with_capacity(node.shards().len());
    for shard in node.shards() {
        let len = shard.committed();
        scanned.push(len);
        let mut from = 0;
        while from < len {
            let to = (from + 4096).min(len);
            for (bytes, index) in shard.store().entries(from, to)?.into_iter().zip(from..) {
                apply_bytes(&mut lineage, shard.id(), index, &bytes);
            }
            from = to;
        }
    }
    lineage.positions = scanned.clone();
    Ok((lineage, scanned))
}

/// Applies an encoded entry if it is a custody event, a recall, a verdict
/// or an identity change (read without decoding anything else).
pub(crate) fn apply_bytes(lineage: &mut Lineage, shard: u32, index: u64, bytes: &[u8]) {
    if !matches!(
        ledger::entry::kind_of(bytes),
        Some("custody" | "recall" | "identity" | "verdict")
    ) {
        return;
    }
    let at = EntryRef {
        shard,
        index,
        id: ledger::entry_id(bytes),
    };
    lineage.sources.push((shard, index));
    match ledger::Entry::from_bytes(bytes) {
        Ok(ledger::Entry::Custody(e)) => lineage.apply(&at, &e),
        Ok(ledger::Entry::Recall(c)) => lineage.apply_recall(&at, &c),
        Ok(ledger::Entry::Verdict(v)) => lineage.apply_verdict(&at, &v),
        Ok(ledger::Entry::Identity(ledger::entry::IdentityChange::OrgRegistered {
            org,
            name,
            role,
            ..
        })) => lineage.apply_org(&org, &name, role),
        Ok(ledger::Entry::Identity(ledger::entry::IdentityChange::DeviceRegistered {
            org,
            device,
            ..
        })) => {
            let (d, o) = (lineage.intern(&device), lineage.intern(&org));
            lineage.devices.push((d, o));
        }
        _ => {}
    }
}

/// Keeps `lineage` up to date with every custody event committed on `node`
/// after `from` (as [`scan`] returned it), until the task is aborted.
pub fn follow(
    node: std::sync::Arc<shards::Node>,
    lineage: std::sync::Arc<std::sync::RwLock<Lineage>>,
    from: Vec<u64>,
) -> Result<tokio::task::JoinHandle<()>, shards::ShardError> {
    let mut feed = shards::feed::Subscription::follow(node, from, 4096)?;
    Ok(tokio::spawn(async move {
        while let Ok(batch) = feed.next().await {
            let mut g = lineage.write().expect("lineage lock");
            for (bytes, index) in batch.entries.iter().zip(batch.first_index..) {
                apply_bytes(&mut g, batch.shard, index, bytes);
            }
            let end = batch.first_index + batch.entries.len() as u64;
            if let Some(p) = g.positions.get_mut(batch.shard as usize) {
                *p = (*p).max(end);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::entry::{Quantity, Subject};

    struct World {
        lineage: Lineage,
        next: u64,
    }

    fn q(kg: i64) -> Option<Quantity> {
        Some(Quantity {
            milli: kg * 1000,
            uom: Some("KGM".into()),
        })
    }

    impl World {
        fn new() -> World {
            World {
                lineage: Lineage::new(),
                next: 0,
            }
        }

        fn event(
            &mut self,
            kind: EventKind,
            action: Option<Action>,
            t: i64,
            subjects: Vec<(SubjectRole, &str)>,
        ) {
            self.next += 1;
            let e = CustodyEvent {
                recorded_by: "urn:epc:id:sgln:0614141.00001.0".into(),
                event_id: format!("urn:uuid:{}", self.next),
                kind,
                action,
                event_time_ms: t,
                tz_offset_min: 0,
                biz_step: Some("commissioning".into()),
                disposition: None,
                read_point: None,
                biz_location: Some(format!("urn:epc:id:sgln:0614141.0000{}.0", self.next % 3)),
                subjects: subjects
                    .into_iter()
                    .map(|(role, id)| Subject {
                        role,
                        id: id.into(),
                        quantity: q(10),
                    })
                    .collect(),
                readings: Vec::new(),
                document: b"{}".to_vec(),
            };
            let at = EntryRef {
                shard: 0,
                index: self.next,
                id: ledger::Digest([self.next as u8; 32]),
            };
            self.lineage.apply(&at, &e);
        }

        fn commission(&mut self, lot: &str, t: i64) {
            self.event(
                EventKind::Object,
                Some(Action::Add),
                t,
                vec![(SubjectRole::Object, lot)],
            );
        }

        fn transform(&mut self, inputs: &[&str], outputs: &[&str], t: i64) {
            let mut s: Vec<(SubjectRole, &str)> =
                inputs.iter().map(|i| (SubjectRole::Input, *i)).collect();
            s.extend(outputs.iter().map(|o| (SubjectRole::Output, *o)));
            self.event(EventKind::Transformation, None, t, s);
        }

        fn lots(&self, lot: &str, dir: Direction, limits: Limits) -> (Vec<String>, Vec<Cut>) {
            let t = self.lineage.trace(lot, dir, limits).unwrap();
            let mut lots: Vec<String> = t.others().map(str::to_string).collect();
            lots.sort();
            (lots, t.cut)
        }
    }

    #[test]
    fn forward_and_backward_follow_transformations_with_quantities_and_entries() {
        let mut w = World::new();
        for (l, t) in [("A", 1), ("B", 2), ("D", 3)] {
            w.commission(l, t);
        }
        w.transform(&["A", "B"], &["C"], 10);
        w.transform(&["C", "D"], &["E"], 20);
        w.commission("unrelated", 5);
        let l = Limits::default();
        assert_eq!(w.lots("A", Direction::Forward, l).0, ["C", "E"]);
        assert_eq!(w.lots("E", Direction::Backward, l).0, ["A", "B", "C", "D"]);
        assert_eq!(w.lots("C", Direction::Backward, l).0, ["A", "B"]);
        assert!(w.lots("E", Direction::Forward, l).0.is_empty());

        let t = w.lineage.trace("A", Direction::Forward, l).unwrap();
        assert!(t.cut.is_empty());
        let c = t.lots.iter().find(|x| x.lot == "C").unwrap();
        assert_eq!(c.depth, 1);
        assert_eq!(c.links.len(), 1);
        assert_eq!(c.links[0].from, "A");
        assert_eq!(c.links[0].event.event_type, "TransformationEvent");
        assert_eq!(c.links[0].input_quantity.as_ref().unwrap().value, 10.0);
        assert_eq!(c.links[0].event.entry.index, 4, "the link names its entry");
        let now = c.now.as_ref().unwrap();
        assert_eq!(now.since_ms, 20, "C was last seen going into E");
        assert_eq!(t.lots[0].events.len(), 2, "A: commissioned, transformed");
        assert!(w.lineage.trace("nobody", Direction::Forward, l).is_none());
    }

    #[test]
    fn every_gs1_spelling_of_a_lot_is_one_node() {
        let mut w = World::new();
        let urn = "urn:epc:class:lgtin:0614141.012345.L1";
        w.commission(urn, 1);
        // The same lot as a Digital Link on another host, with a GTIN-13.
        w.transform(&["https://example.com/01/0614141123452/10/L1"], &["OUT"], 2);
        let l = Limits::default();
        assert_eq!(w.lots(urn, Direction::Forward, l).0, ["OUT"]);
        assert_eq!(
            w.lots("OUT", Direction::Backward, l).0,
            [urn],
            "named as first written"
        );
        for spelling in [
            "https://id.gs1.org/01/00614141123452/10/L1",
            "HTTP://ID.GS1.ORG/01/00614141123452/10/L1?17=261231",
        ] {
            assert!(w.lineage.knows(spelling), "{spelling}");
            assert_eq!(w.lineage.events_about(spelling).len(), 2);
        }
        assert_eq!(
            w.lineage.lot_named("00614141123452", "L1").as_deref(),
            Some(urn)
        );
        assert_eq!(w.lineage.lot_named("00614141123452", "L2"), None);
        // A third spelling is no new node either.
        w.commission("https://id.gs1.org/01/00614141123452/10/L1", 3);
        assert_eq!(w.lineage.events_about(urn).len(), 3);
        let lots: Vec<&String> = w
            .lineage
            .names
            .iter()
            .filter(|n| n.contains("L1"))
            .collect();
        assert_eq!(lots, [urn]);
    }

    #[test]
    fn a_lot_that_becomes_its_own_ancestor_is_reported_and_the_walk_ends() {
        let mut w = World::new();
        w.transform(&["A"], &["B"], 1);
        w.transform(&["B"], &["C"], 2);
        w.transform(&["C"], &["A"], 3); // wrong data
        let (lots, cut) = w.lots("A", Direction::Forward, Limits::default());
        assert_eq!(lots, ["B", "C"]);
        assert!(
            matches!(&cut[..], [Cut::Cycle { lot, back_to, .. }] if lot == "C" && back_to == "A"),
            "{cut:?}"
        );
        let (lots, cut) = w.lots("A", Direction::Backward, Limits::default());
        assert_eq!(lots, ["B", "C"]);
        assert_eq!(cut.len(), 1);
    }

    #[test]
    fn huge_fan_out_and_long_chains_are_cut_with_bounded_work() {
        let mut w = World::new();
        let outs: Vec<String> = (0..50).map(|i| format!("out{i:02}")).collect();
        let outs_ref: Vec<&str> = outs.iter().map(String::as_str).collect();
        w.transform(&["X"], &outs_ref, 1);
        let limits = Limits {
            max_lots: 1000,
            max_fanout: 10,
        };
        let (lots, cut) = w.lots("X", Direction::Forward, limits);
        assert_eq!(lots.len(), 10);
        assert_eq!(
            cut,
            [Cut::FanOut {
                lot: "X".into(),
                kept: 10,
                total: 50
            }]
        );
        let mut w = World::new();
        let chain: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
        for pair in chain.windows(2) {
            w.transform(&[&pair[0]], &[&pair[1]], 1);
        }
        let limits = Limits {
            max_lots: 20,
            max_fanout: 10,
        };
        let t = w.lineage.trace("c000", Direction::Forward, limits).unwrap();
        assert_eq!(t.lots.len(), 20);
        assert_eq!(t.cut, [Cut::Budget { lots: 20 }]);
    }

    #[test]
    fn co_exposure_finds_what_shared_a_container_during_the_interval() {
        let mut w = World::new();
        let add = Some(Action::Add);
        let del = Some(Action::Delete);
        let agg = EventKind::Aggregation;
        w.event(
            agg,
            add,
            10,
            vec![
                (SubjectRole::Parent, "P"),
                (SubjectRole::Child, "A"),
                (SubjectRole::Child, "B"),
            ],
        );
        w.event(
            agg,
            add,
            50,
            vec![(SubjectRole::Parent, "P"), (SubjectRole::Child, "late")],
        );
        w.event(
            agg,
            del,
            30,
            vec![
                (SubjectRole::Parent, "P"),
                (SubjectRole::Child, "A"),
                (SubjectRole::Child, "B"),
            ],
        );
        w.event(
            EventKind::Association,
            add,
            0,
            vec![
                (SubjectRole::Parent, "reefer-1"),
                (SubjectRole::Child, "A"),
                (SubjectRole::Child, "C"),
            ],
        );
        let found = |from, to| -> Vec<(String, String)> {
            w.lineage
                .co_exposure("A", from, to)
                .unwrap()
                .exposures
                .into_iter()
                .map(|e| (e.subject, e.shared))
                .collect()
        };
        assert_eq!(
            found(0, 100),
            [
                ("B".to_string(), "P".to_string()),
                ("C".to_string(), "reefer-1".to_string())
            ]
        );
        // Only the reefer is shared after the pallet was unpacked.
        assert_eq!(found(35, 100), [("C".to_string(), "reefer-1".to_string())]);
    }

    #[test]
    fn co_exposure_finds_lots_at_the_same_place_at_the_same_time() {
        let mut w = World::new();
        let mut at = |lot: &str, loc: &str, step: &str, t: i64| {
            w.next += 1;
            let e = CustodyEvent {
                recorded_by: loc.into(),
                event_id: format!("urn:uuid:{}", w.next),
                kind: EventKind::Object,
                action: Some(Action::Observe),
                event_time_ms: t,
                tz_offset_min: 0,
                biz_step: Some(step.into()),
                disposition: None,
                read_point: None,
                biz_location: Some(loc.into()),
                subjects: vec![Subject {
                    role: SubjectRole::Object,
                    id: lot.into(),
                    quantity: q(1),
                }],
                readings: Vec::new(),
                document: b"{}".to_vec(),
            };
            let r = EntryRef {
                shard: 0,
                index: w.next,
                id: ledger::Digest([w.next as u8; 32]),
            };
            w.lineage.apply(&r, &e);
        };
        let (a, b, c) = (
            "urn:epc:class:lgtin:0614141.010001.A",
            "urn:epc:class:lgtin:0614141.010001.B",
            "urn:epc:class:lgtin:0614141.010001.C",
        );
        at(a, "DC", "receiving", 10);
        at(a, "DC", "shipping", 50);
        at(b, "DC", "receiving", 40);
        at(b, "DC", "shipping", 60);
        at(c, "DC", "receiving", 55); // after A left
        at(c, "SHOP", "receiving", 70);
        let found: Vec<(String, String, i64, Option<i64>)> = w
            .lineage
            .co_exposure(a, 0, 100)
            .unwrap()
            .exposures
            .into_iter()
            .map(|e| (e.subject, e.shared, e.from_ms, e.to_ms))
            .collect();
        assert_eq!(found, [(b.to_string(), "DC".to_string(), 40, Some(50))]);
        assert!(
            w.lineage
                .co_exposure(a, 0, 20)
                .unwrap()
                .exposures
                .is_empty(),
            "B came later"
        );
    }
}
