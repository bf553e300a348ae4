//! Custody decides which events count. The ledger records who said each
//! thing; the graph believes an event that acts on a lot only when its
//! organisation held the lot at the event's time:
//!
//! - an organisation comes to hold a lot by creating it (an ObjectEvent
//!   `ADD` or a transformation's output, when nobody holds the lot yet), or
//!   by being named in the `destinationList` of a counted event that acts on
//!   it (a shipment to it: owning or possessing party, or its location);
//! - an event counts when its organisation held, at the event's time, every
//!   lot it acts on (objects, transformation inputs and outputs, the children
//!   of an aggregation or association; not containers or loggers as parents);
//! - an event that does not count (yet) is *pending*: kept aside, it changes
//!   no trace, holder, page, watch or read grant; when the hand-off that
//!   makes it consistent arrives (a receipt captured before its shipment), it
//!   is counted then, and whatever it makes consistent after it. A pending
//!   event whose time lies more than [`PENDING_FOR_MS`] before the newest
//!   counted event is shown to investigators as *disputed*;
//! - a third party's plain observation (an ObjectEvent `OBSERVE` of a lot it
//!   does not hold, without a destination, at a step that moves nothing: an
//!   inspection) is an *observation*: shown and labelled, it never moves
//!   custody or trace edges.
//!
//! Custody never ends: an organisation that held a lot keeps its standing
//! for later events about it (a partial shipment leaves it holding the rest).
//! Organisations are told apart by their GLN (`gs1::gln_of`), so a
//! registration read after an event changes nothing. The first creation of a
//! lot wins; a rival creation of a lot somebody holds stays pending.

use ledger::entry::{Action, CustodyEvent, EventKind, SubjectRole};
use serde::Serialize;

use super::{EventRec, Lineage};
use crate::rules::Evidence;

/// How long a pending event waits, past its own time, for the hand-off that
/// would make it consistent before it is shown as disputed (measured against
/// the newest counted event, so the label follows the ledger, not a clock).
pub const PENDING_FOR_MS: i64 = 7 * 24 * 3_600_000;

/// Whether an event counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Its organisation held what it acts on: it counts.
    Counted,
    /// A third party's observation: shown, labelled, moves nothing.
    Observation,
    /// Not consistent with custody (yet); changes nothing.
    Pending,
    /// Pending for longer than [`PENDING_FOR_MS`]: changes nothing.
    Disputed,
}

/// Steps at which an observation by a non-holder moves custody on, so such
/// an event waits for custody instead of being a third party's observation.
const CUSTODY_STEPS: &[&str] = &[
    "shipping",
    "departing",
    "receiving",
    "arriving",
    "accepting",
    "loading",
    "unloading",
    "commissioning",
    "decommissioning",
    "destroying",
    "packing",
    "unpacking",
    "transforming",
    "creating_class_instance",
    "storing",
    "retail_selling",
    "dispensing",
];

/// Whether a canonical GS1 key names a logistic unit or an asset (SSCC,
/// GRAI, GIAI, GSRN): containers and loggers, which custody does not follow.
pub(super) fn is_container(canonical: &str) -> bool {
    ["/00/", "/8003/", "/8004/", "/8017/", "/8018/"]
        .iter()
        .any(|ai| canonical.contains(ai))
}

/// The lots an event acts on (not containers, loggers or parents), and
/// whether it may create each (nobody holding it yet).
fn acted<'a>(g: &'a Lineage, e: &'a EventRec) -> impl Iterator<Item = (u32, bool)> + 'a {
    let creates_objects = e.kind == EventKind::Object && e.action == Some(Action::Add);
    e.subjects
        .iter()
        .filter(|m| !g.containers.contains(&m.id))
        .filter_map(move |m| match m.role {
            SubjectRole::Object => Some((m.id, creates_objects)),
            SubjectRole::Output => Some((m.id, true)),
            SubjectRole::Input | SubjectRole::Child => Some((m.id, false)),
            SubjectRole::Parent => None,
        })
}

impl Lineage {
    /// The party (its GLN's node, else the identifier itself) that `id`
    /// names: organisations are told apart by their GLN.
    pub(super) fn party(&mut self, id: u32) -> u32 {
        if let Some(&p) = self.parties.get(&id) {
            return p;
        }
        let p = match self.gln_bases.get(&id).cloned() {
            Some(base) => self.intern(&base),
            None => id,
        };
        self.parties.insert(id, p);
        p
    }

    /// The party `org` names, if the graph knows it.
    pub(super) fn party_of(&self, org: &str) -> Option<u32> {
        let id = *self.id_of(org)?;
        match self.gln_bases.get(&id) {
            Some(base) => self.ids.get(base).copied(),
            None => Some(id),
        }
    }

    /// Whether `party` held `lot` at `t_ms`.
    fn held(&self, party: u32, lot: u32, t_ms: i64) -> bool {
        self.holders
            .get(&lot)
            .is_some_and(|h| h.iter().any(|&(p, since)| p == party && since <= t_ms))
    }

    /// Whether `party` ever held `lot` (what lot-level read grants follow).
    pub(super) fn ever_held(&self, party: u32, lot: u32) -> bool {
        self.holders
            .get(&lot)
            .is_some_and(|h| h.iter().any(|&(p, _)| p == party))
    }

    /// How event `n` stands given custody as it is now.
    fn judge(&self, n: u32) -> Standing {
        let e = &self.events[n as usize];
        let consistent = acted(self, e).all(|(lot, creates)| {
            self.held(e.actor, lot, e.time_ms)
                || (creates && self.holders.get(&lot).is_none_or(Vec::is_empty))
        });
        if consistent {
            return Standing::Counted;
        }
        let moves = e
            .biz_step
            .is_some_and(|s| CUSTODY_STEPS.contains(&super::query::cbv_bare(self.name(s))));
        if e.kind == EventKind::Object
            && e.action == Some(Action::Observe)
            && e.destinations.is_empty()
            && !moves
        {
            Standing::Observation
        } else {
            Standing::Pending
        }
    }

    /// How event `n` stands as a reader is shown it.
    pub(super) fn standing(&self, e: &EventRec) -> Standing {
        match e.standing {
            Standing::Pending if e.time_ms.saturating_add(PENDING_FOR_MS) < self.newest_ms => {
                Standing::Disputed
            }
            s => s,
        }
    }

    /// Settles a newly applied event: counts it if custody allows, else
    /// keeps it aside (with what counting it later needs); then counts every
    /// waiting event the custody it moved makes consistent.
    pub(super) fn settle(&mut self, n: u32, e: &CustodyEvent) {
        let standing = self.judge(n);
        if standing != Standing::Counted {
            self.events[n as usize].standing = standing;
            // Under every identifier it names (queries find it there), not
            // only the lots whose custody could make it count.
            let named: Vec<u32> = self.events[n as usize]
                .subjects
                .iter()
                .map(|m| m.id)
                .collect();
            for lot in named {
                let w = self.waiting.entry(lot).or_default();
                if !w.contains(&n) {
                    w.push(n);
                }
            }
            self.deferred.insert(n, e.clone());
            return;
        }
        let mut moved = self.count(n, e);
        while let Some(lot) = moved.pop() {
            let Some(waiting) = self.waiting.remove(&lot) else {
                continue;
            };
            let mut still = Vec::new();
            for w in waiting {
                if self.events[w as usize].standing == Standing::Counted {
                    continue;
                }
                match self.judge(w) {
                    Standing::Counted => {
                        let e = self
                            .deferred
                            .remove(&w)
                            .expect("a waiting event is deferred");
                        moved.extend(self.count(w, &e));
                    }
                    s => {
                        self.events[w as usize].standing = s;
                        still.push(w);
                    }
                }
            }
            if !still.is_empty() {
                self.waiting.entry(lot).or_default().extend(still);
            }
        }
    }

    /// Counts event `n`: indexes it (by subject, by location, its watches)
    /// and moves custody. Answers the lots whose holders changed.
    fn count(&mut self, n: u32, e: &CustodyEvent) -> Vec<u32> {
        let rec = &mut self.events[n as usize];
        rec.standing = Standing::Counted;
        let (actor, t, location, at) = (rec.actor, rec.time_ms, rec.location, rec.at);
        let mut seen: Vec<u32> = Vec::with_capacity(rec.subjects.len());
        for m in &rec.subjects {
            if !seen.contains(&m.id) {
                seen.push(m.id);
                self.mentions[m.id as usize].push(n);
            }
        }
        if let Some(l) = location {
            self.at_location.entry(l).or_default().push(n);
        }
        self.newest_ms = self.newest_ms.max(t);
        self.watches.apply(
            e,
            &Evidence {
                shard: at.shard,
                index: at.index,
                id: at.id,
            },
        );
        let rec = &self.events[n as usize];
        // What moves on to the destinations: all it acts on but inputs
        // (consumed by a transformation).
        let moves_on: Vec<u32> = rec
            .subjects
            .iter()
            .filter(|m| !self.containers.contains(&m.id))
            .filter(|m| {
                matches!(
                    m.role,
                    SubjectRole::Object | SubjectRole::Output | SubjectRole::Child
                )
            })
            .map(|m| m.id)
            .collect();
        let lots: Vec<u32> = acted(self, rec).map(|(l, _)| l).collect();
        let destinations = rec.destinations.clone();
        let mut moved = Vec::new();
        for lot in lots {
            if self.acquire(actor, lot, t) {
                moved.push(lot);
            }
        }
        for d in destinations {
            let to = self.party(d);
            for &lot in &moves_on {
                if self.acquire(to, lot, t) {
                    moved.push(lot);
                }
            }
        }
        moved
    }

    /// Records that `party` holds `lot` from `t_ms` on; whether that is news.
    fn acquire(&mut self, party: u32, lot: u32, t_ms: i64) -> bool {
        let h = self.holders.entry(lot).or_default();
        match h.iter_mut().find(|(p, _)| *p == party) {
            Some((_, since)) if *since <= t_ms => false,
            Some((_, since)) => {
                *since = t_ms;
                true
            }
            None => {
                h.push((party, t_ms));
                true
            }
        }
    }
}
