//! Custody: who held which lot from when, and so which events count. The
//! ledger records who said each thing; the read side believes an event that
//! acts on a lot only when its organisation held the lot at the event's time.
//! One definition, kept by both readers of custody events: the lineage graph
//! (`lineage::custody`, over interned ids) and the rule engine (`engine`,
//! over canonical identifiers, in its checkpoint), so a rival's event can no
//! more put a competitor's lot under its logger than into its trace.
//!
//! - an organisation (a *party*, told apart by its GLN) comes to hold a lot
//!   by creating it (an ObjectEvent `ADD` or a transformation's output, when
//!   nobody holds the lot yet), or by being named in the `destinationList`
//!   of a counted event that moves it (a shipment to it);
//! - a claim (what an event says about custody) counts when its party held,
//!   at its time, every lot it acts on (objects, transformation inputs and
//!   outputs, the children of an aggregation or association; not containers,
//!   and not loggers or containers as parents);
//! - a claim that does not count (yet) waits; when custody moves so that it
//!   becomes consistent (a receipt captured before its shipment), it counts
//!   then, and whatever it makes consistent after it.
//!
//! Custody never ends: a party that held a lot keeps its standing for later
//! events about it (a partial shipment leaves it holding the rest). The first
//! creation of a lot wins; a rival creation of a lot somebody holds waits for
//! ever.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use ledger::entry::{Action, CustodyEvent, EventKind, SubjectRole};

/// Whether a canonical GS1 key names a logistic unit or an asset (SSCC,
/// GRAI, GIAI, GSRN): containers and loggers, which custody does not follow.
pub(crate) fn is_container(canonical: &str) -> bool {
    ["/00/", "/8003/", "/8004/", "/8017/", "/8018/"]
        .iter()
        .any(|ai| canonical.contains(ai))
}

/// The key a lot or other identifier goes by: its canonical GS1 form, so
/// every spelling of one thing is one key.
pub(crate) fn key(id: &str) -> String {
    gs1::canonical_id(id).unwrap_or_else(|| id.to_string())
}

/// The party an identifier names: its organisation-level GLN, else itself.
pub(crate) fn party(id: &str) -> String {
    gs1::gln_of(id).unwrap_or_else(|| key(id))
}

/// The claim of a captured event (`doc`: its parsed document,
/// `tables::document`) over canonical identifiers (what the rule
/// engine keeps custody by; the lineage graph builds the same claim over
/// its interned ids).
pub fn claim_of(e: &CustodyEvent, doc: &serde_json::Value) -> Claim<String> {
    let to = crate::tables::party_list(doc, "destinationList", "destination")
        .iter()
        .map(|d| party(d))
        .collect();
    Claim::new(
        party(&e.recorded_by),
        e.event_time_ms,
        e.kind,
        e.action,
        e.subjects
            .iter()
            .filter_map(|s| match gs1::canonical_id(&s.id) {
                Some(c) if is_container(&c) => None,
                Some(c) => Some((s.role, c)),
                None => Some((s.role, s.id.clone())),
            }),
        to,
    )
}

/// What an event says about custody, over keys `K` (lots and parties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim<K> {
    /// The party the event rests on: its recorder's organisation.
    pub party: K,
    pub time_ms: i64,
    /// The lots it acts on, and whether it may create each (take a lot
    /// nobody holds yet).
    pub acts_on: Vec<(K, bool)>,
    /// The lots that move on to its destinations (all it acts on but a
    /// transformation's inputs, which it consumes).
    pub moves_on: Vec<K>,
    /// The parties named in its `destinationList`.
    pub to: Vec<K>,
}

impl<K: Clone + PartialEq> Claim<K> {
    /// The claim of an event of `kind` and `action` by `party` at `time_ms`
    /// on `subjects` (containers already left out: custody does not follow
    /// them), shipping to the parties `to`.
    pub fn new(
        party: K,
        time_ms: i64,
        kind: EventKind,
        action: Option<Action>,
        subjects: impl IntoIterator<Item = (SubjectRole, K)>,
        to: Vec<K>,
    ) -> Claim<K> {
        let creates_objects = kind == EventKind::Object && action == Some(Action::Add);
        let mut acts_on: Vec<(K, bool)> = Vec::new();
        let mut moves_on: Vec<K> = Vec::new();
        for (role, lot) in subjects {
            let creates = match role {
                SubjectRole::Object => creates_objects,
                SubjectRole::Output => true,
                SubjectRole::Input | SubjectRole::Child => false,
                SubjectRole::Parent => continue,
            };
            if role != SubjectRole::Input && !moves_on.contains(&lot) {
                moves_on.push(lot.clone());
            }
            acts_on.push((lot, creates));
        }
        Claim {
            party,
            time_ms,
            acts_on,
            moves_on,
            to,
        }
    }
}

/// Who held each lot from when, and the claims waiting for custody to move,
/// each kept as `I` (the caller's name for the event) with a payload `P`
/// (what the caller needs to act on it once it counts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, I: Serialize + Eq + Hash, P: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, I: Deserialize<'de> + Eq + Hash, P: Deserialize<'de>"
))]
pub struct Custody<K, I, P> {
    /// By lot: the parties that held it, each from when.
    holders: HashMap<K, Vec<(K, i64)>>,
    /// By lot acted on: the waiting claims custody of it could settle.
    waiting: HashMap<K, Vec<I>>,
    /// The waiting claims, with their payloads.
    pending: HashMap<I, (Claim<K>, P)>,
}

impl<K: Eq + Hash, I: Eq + Hash, P: PartialEq> PartialEq for Custody<K, I, P> {
    fn eq(&self, other: &Self) -> bool {
        self.holders == other.holders
            && self.waiting == other.waiting
            && self.pending == other.pending
    }
}

impl<K, I, P> Default for Custody<K, I, P> {
    fn default() -> Self {
        Custody {
            holders: HashMap::new(),
            waiting: HashMap::new(),
            pending: HashMap::new(),
        }
    }
}

impl<K, I, P> Custody<K, I, P>
where
    K: Clone + Eq + Hash,
    I: Clone + Eq + Hash,
{
    /// Whether `party` held `lot` at `t_ms` (asked by any borrowed form of
    /// the keys: `&str` for `String` keys, without a copy).
    pub fn held<Q>(&self, party: &Q, lot: &Q, t_ms: i64) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.holders.get(lot).is_some_and(|h| {
            h.iter()
                .any(|(p, since)| p.borrow() == party && *since <= t_ms)
        })
    }

    /// Whether `party` ever held `lot` (what lot-level read grants follow).
    pub fn ever_held(&self, party: &K, lot: &K) -> bool {
        self.holders
            .get(lot)
            .is_some_and(|h| h.iter().any(|(p, _)| p == party))
    }

    /// Whether anybody ever held `lot`.
    pub fn is_held(&self, lot: &K) -> bool {
        self.holders.get(lot).is_some_and(|h| !h.is_empty())
    }

    /// Whether `claim` counts given custody as it is now.
    fn consistent(&self, claim: &Claim<K>) -> bool {
        claim.acts_on.iter().all(|(lot, creates)| {
            self.held(&claim.party, lot, claim.time_ms) || (*creates && !self.is_held(lot))
        })
    }

    /// Whether the claim named `id` is waiting.
    pub fn is_waiting(&self, id: &I) -> bool {
        self.pending.contains_key(id)
    }

    /// Settles the claim of event `id`: when it counts, moves custody and
    /// answers the waiting claims that made consistent (`count`: the caller
    /// acts on `id` first, then on each of those, in order); else keeps it
    /// waiting with `payload()` and answers `None`. A claim already waiting
    /// stays as it is (an event read ahead comes again in order).
    pub fn settle(
        &mut self,
        id: I,
        claim: Claim<K>,
        payload: impl FnOnce() -> P,
    ) -> Option<Vec<(I, P)>> {
        if self.is_waiting(&id) {
            return None;
        }
        if self.consistent(&claim) {
            return Some(self.count(&claim));
        }
        self.defer(id, claim, payload());
        None
    }

    /// Keeps a claim that does not count yet (and is not waiting already:
    /// `settle` asks) until custody makes it consistent.
    fn defer(&mut self, id: I, claim: Claim<K>, payload: P) {
        for (lot, _) in &claim.acts_on {
            let w = self.waiting.entry(lot.clone()).or_default();
            if !w.contains(&id) {
                w.push(id.clone());
            }
        }
        self.pending.insert(id, (claim, payload));
    }

    /// Counts a consistent claim: moves custody, then counts every waiting
    /// claim that makes consistent, and every one those make consistent.
    /// Answers the claims counted that way, in the order they counted: the
    /// caller acts on each as it acted on `claim`.
    fn count(&mut self, claim: &Claim<K>) -> Vec<(I, P)> {
        let mut counted = Vec::new();
        let mut moved = self.move_custody(claim);
        while let Some(lot) = moved.pop() {
            let Some(waiting) = self.waiting.remove(&lot) else {
                continue;
            };
            let mut still = Vec::new();
            for id in waiting {
                let Some((c, _)) = self.pending.get(&id) else {
                    // Counted already, through another lot it acts on.
                    continue;
                };
                if self.consistent(c) {
                    let (c, payload) = self.pending.remove(&id).expect("looked up above");
                    moved.extend(self.move_custody(&c));
                    counted.push((id, payload));
                } else {
                    still.push(id);
                }
            }
            if !still.is_empty() {
                self.waiting.entry(lot).or_default().extend(still);
            }
        }
        counted
    }

    /// Records what a counted claim moves; answers the lots whose holders
    /// changed.
    fn move_custody(&mut self, claim: &Claim<K>) -> Vec<K> {
        let mut moved = Vec::new();
        for (lot, _) in &claim.acts_on {
            if self.acquire(&claim.party, lot, claim.time_ms) {
                moved.push(lot.clone());
            }
        }
        for to in &claim.to {
            for lot in &claim.moves_on {
                if self.acquire(to, lot, claim.time_ms) {
                    moved.push(lot.clone());
                }
            }
        }
        moved
    }

    /// Records that `party` holds `lot` from `t_ms` on; whether that is news.
    fn acquire(&mut self, party: &K, lot: &K, t_ms: i64) -> bool {
        let h = self.holders.entry(lot.clone()).or_default();
        match h.iter_mut().find(|(p, _)| p == party) {
            Some((_, since)) if *since <= t_ms => false,
            Some((_, since)) => {
                *since = t_ms;
                true
            }
            None => {
                h.push((party.clone(), t_ms));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type C = Custody<&'static str, u32, ()>;

    fn claim(
        party: &'static str,
        t: i64,
        kind: EventKind,
        action: Option<Action>,
        subjects: &[(SubjectRole, &'static str)],
        to: &[&'static str],
    ) -> Claim<&'static str> {
        Claim::new(
            party,
            t,
            kind,
            action,
            subjects.iter().copied(),
            to.to_vec(),
        )
    }

    fn add(party: &'static str, t: i64, lot: &'static str) -> Claim<&'static str> {
        claim(
            party,
            t,
            EventKind::Object,
            Some(Action::Add),
            &[(SubjectRole::Object, lot)],
            &[],
        )
    }

    fn ship(
        party: &'static str,
        t: i64,
        lot: &'static str,
        to: &'static str,
    ) -> Claim<&'static str> {
        claim(
            party,
            t,
            EventKind::Object,
            Some(Action::Observe),
            &[(SubjectRole::Object, lot)],
            &[to],
        )
    }

    fn watch(party: &'static str, t: i64, lot: &'static str) -> Claim<&'static str> {
        claim(
            party,
            t,
            EventKind::Association,
            Some(Action::Add),
            &[(SubjectRole::Parent, "logger"), (SubjectRole::Child, lot)],
            &[],
        )
    }

    /// Counts `c` if it is consistent, else defers it as `id`; answers the
    /// ids counted, in order.
    fn settle(custody: &mut C, id: u32, c: Claim<&'static str>) -> Vec<u32> {
        match custody.settle(id, c, || ()) {
            Some(then) => std::iter::once(id)
                .chain(then.into_iter().map(|(i, ())| i))
                .collect(),
            None => Vec::new(),
        }
    }

    #[test]
    fn the_creator_holds_a_lot_and_a_rival_cannot_act_on_it() {
        let mut c = C::default();
        assert_eq!(settle(&mut c, 0, add("packer", 10, "lot")), vec![0]);
        assert!(c.held(&"packer", &"lot", 10));
        assert!(!c.held(&"packer", &"lot", 9), "not before it was made");
        assert!(settle(&mut c, 1, watch("rival", 20, "lot")).is_empty());
        assert!(
            settle(&mut c, 2, add("rival", 30, "lot")).is_empty(),
            "first creation wins"
        );
        assert!(c.is_waiting(&1) && c.is_waiting(&2));
        assert!(!c.ever_held(&"rival", &"lot"));
        assert_eq!(settle(&mut c, 3, watch("packer", 20, "lot")), vec![3]);
    }

    #[test]
    fn a_receipt_captured_before_its_shipment_counts_once_the_shipment_does() {
        let mut c = C::default();
        assert_eq!(settle(&mut c, 0, add("packer", 10, "lot")), vec![0]);
        // The carrier's logger is put on the lot, and the carrier ships it
        // on, before the packer's shipment to the carrier is captured.
        assert!(settle(&mut c, 1, watch("carrier", 30, "lot")).is_empty());
        assert!(settle(&mut c, 2, ship("carrier", 40, "lot", "dc")).is_empty());
        assert!(settle(&mut c, 3, watch("dc", 50, "lot")).is_empty());
        assert_eq!(
            settle(&mut c, 4, ship("packer", 20, "lot", "carrier")),
            vec![4, 1, 2, 3],
            "the hand-off counts, then what it made consistent, in the order it did"
        );
        assert!(c.held(&"dc", &"lot", 40));
        assert!(!c.is_waiting(&1));
        // A claim counted already is not counted again through another lot.
        assert!(c.count(&ship("packer", 20, "lot", "carrier")).is_empty());
    }

    #[test]
    fn a_transformation_needs_its_inputs_and_moves_its_outputs_not_its_inputs() {
        let mut c = C::default();
        settle(&mut c, 0, add("plant", 0, "leaf"));
        let make = |party| {
            claim(
                party,
                10,
                EventKind::Transformation,
                None,
                &[(SubjectRole::Input, "leaf"), (SubjectRole::Output, "salad")],
                &["shop"],
            )
        };
        assert!(settle(&mut c, 1, make("rival")).is_empty());
        assert!(!c.is_held(&"salad"), "a waiting claim creates nothing");
        assert_eq!(settle(&mut c, 2, make("plant")), vec![2]);
        assert!(c.held(&"shop", &"salad", 10));
        assert!(!c.ever_held(&"shop", &"leaf"));
    }

    #[test]
    fn custody_survives_a_round_trip_through_its_checkpoint_encoding() {
        let mut c: Custody<String, (u32, u64), Vec<u8>> = Custody::default();
        let s = String::from;
        let lot = s("lot");
        let add = Claim::new(
            s("packer"),
            1,
            EventKind::Object,
            Some(Action::Add),
            [(SubjectRole::Object, lot.clone())],
            vec![],
        );
        assert!(c.count(&add).is_empty());
        let watch = Claim::new(
            s("rival"),
            2,
            EventKind::Association,
            Some(Action::Add),
            [(SubjectRole::Child, lot.clone())],
            vec![],
        );
        c.defer((0, 7), watch, vec![1, 2, 3]);
        let bytes = postcard::to_allocvec(&c).unwrap();
        let back: Custody<String, (u32, u64), Vec<u8>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
        assert!(back.is_waiting(&(0, 7)));
    }
}
