//! Custody in the lineage graph: the rule (`crate::custody`) over interned
//! ids, and what a reader is shown of each event's standing.
//!
//! - an event that does not count (yet) is *pending*: kept aside, it changes
//!   no trace, holder, page, watch or read grant; it is counted once the
//!   hand-off that makes it consistent arrives. A pending event whose time
//!   lies more than [`PENDING_FOR_MS`] before the newest counted event is
//!   shown to investigators as *disputed*;
//! - a third party's plain observation (an ObjectEvent `OBSERVE` of a lot it
//!   does not hold, without a destination, at a step that moves nothing: an
//!   inspection) is an *observation*: shown and labelled, it never moves
//!   custody or trace edges.
//!
//! Organisations are told apart by their GLN (`gs1::gln_of`), so a
//! registration read after an event changes nothing.

use ledger::entry::{Action, CustodyEvent, EventKind};
use serde::Serialize;

use super::{EventRec, Lineage};
use crate::custody::Claim;
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

    /// Whether `party` ever held `lot` (what lot-level read grants follow).
    pub(super) fn ever_held(&self, party: u32, lot: u32) -> bool {
        self.custody.ever_held(&party, &lot)
    }

    /// Whether the party `party` names held the lot `lot` names at `t_ms`
    /// (`watches::Holds`).
    pub(super) fn holds(&self, party: &str, lot: &str, t_ms: i64) -> bool {
        match (self.party_of(party), self.id_of(lot)) {
            (Some(p), Some(&l)) => self.custody.held(&p, &l, t_ms),
            _ => false,
        }
    }

    /// What event `n` says about custody.
    fn claim(&mut self, n: u32) -> Claim<u32> {
        let destinations = self.events[n as usize].destinations.clone();
        let to = destinations.into_iter().map(|d| self.party(d)).collect();
        let e = &self.events[n as usize];
        Claim::new(
            e.actor,
            e.time_ms,
            e.kind,
            e.action,
            e.subjects
                .iter()
                .filter(|m| !self.containers.contains(&m.id))
                .map(|m| (m.role, m.id)),
            to,
        )
    }

    /// How event `n`, not consistent with custody, stands: a third party's
    /// observation, or pending.
    fn uncounted(&self, n: u32) -> Standing {
        let e = &self.events[n as usize];
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

    /// Settles a newly applied event: counts it if custody allows (and
    /// every waiting event the custody it moved makes consistent), else
    /// keeps it aside, with what counting it later needs.
    pub(super) fn settle(&mut self, n: u32, e: &CustodyEvent) {
        let claim = self.claim(n);
        match self.custody.settle(n, claim, || e.clone()) {
            Some(then) => {
                self.index(n, e);
                for (m, e) in then {
                    self.index(m, &e);
                }
            }
            None => {
                self.events[n as usize].standing = self.uncounted(n);
                // Under every identifier it names (queries find it there),
                // not only the lots whose custody could make it count.
                let named: Vec<u32> = self.events[n as usize]
                    .subjects
                    .iter()
                    .map(|m| m.id)
                    .collect();
                for id in named {
                    let w = self.uncounted.entry(id).or_default();
                    if !w.contains(&n) {
                        w.push(n);
                    }
                }
            }
        }
    }

    /// Indexes counted event `n`: by subject, by location, its watches.
    fn index(&mut self, n: u32, e: &CustodyEvent) {
        let rec = &mut self.events[n as usize];
        rec.standing = Standing::Counted;
        let (t, location, at) = (rec.time_ms, rec.location, rec.at);
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
    }
}
