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
//!
//! By job: `graph.rs` (interning and folding entries in), `custody.rs`
//! (which events count: custody and location ownership), `views.rs` (events
//! and lots as readers see them, search documents), `trace.rs`,
//! `coexposure.rs`, `build.rs` (from checkpoint and logs, and following the
//! feed); `lots.rs` (a lot's view), `recalls.rs` (recalls as recorded),
//! `query.rs` (EPCIS queries), `fsma204.rs` (FSMA 204 rows), `checkpoint.rs`.
//! This file holds the types they share.
//!
//! ## Lineage, recalls and queries (`analytics::lineage`, `web`)
//!
//! `Lineage` is a compact in-memory graph built from every custody event (and
//! organisation registrations, device registrations and recall entries): each
//! identifier is interned once as a `u32`, each event keeps its subjects by id and
//! role, each identifier the events that name it. `lineage::scan` builds it from the
//! logs at start; `lineage::follow` keeps it current from the committed-entry feed (a
//! cursorless follower), recording how far it has read per shard. Every read route
//! first waits until the graph has read what was committed when the request began
//! (`ReadState::fresh`): a client reads its own acknowledged writes.
//!
//! - **Traces** walk transformations (inputs -> outputs) depth first; each lot is
//!   expanded once; a link back to a lot on the current path is reported as a cycle;
//!   fan-out and the lot budget are bounded and reported (`Cut`). Every item names the
//!   entries it rests on (shard, index, id); `proofs=true` adds inclusion proofs.
//! - **Co-exposure** reads the association and aggregation intervals (`Watches`) of the
//!   containers and loggers that held the lot during the interval, and the lot's stays at
//!   locations (from an event there until it is seen elsewhere or shipped from there).
//! - **Recalls** are ledger entries (kind `recall`: opened, widened, closed), named by
//!   the id of the entry that opened them. The affected set (descendants, optionally
//!   co-exposed lots and theirs) is computed by `analytics::recall` and recorded by
//!   the write path (`api::port::WritePort`, implemented by `Ingest`: investigators and operators only); `Recalls` is derived
//!   from the entries.
//! - **FSMA 204** rows (`lineage/fsma204.rs`) map EPCIS events to Critical Tracking
//!   Events with their Key Data Elements; **EPCIS queries** (`lineage/query.rs`)
//!   evaluate SimpleEventQuery parameters over the graph's events, ordered by (event
//!   time, shard, index) so `nextPageToken` paging hands out every event exactly once.
//!   A page is read from the most selective of the indexes (`lineage/index.rs`: the events
//!   under each type, action, step, disposition, read point, business location and event
//!   id, and all of them, each in that order) from where the last page ended; the
//!   parameters only the captured event answers (`lineage/doc_query.rs`) are checked on
//!   the stored event for the candidates that pass the rest.
//! - **Search** indexes what the graph names in tantivy (in memory), rebuilt when the
//!   graph has grown; derived like everything here.
//!
//! **Checkpoint.** The graph's checkpoint (`checkpoints/lineage`) holds every entry the graph
//! was built from (custody events, recalls, verdicts, registrations; not readings);
//! `lineage::open` uses it only if it passes the checkpoint checks (below) and every stored
//! entry's id is the log's at its index; then it follows the logs from the positions it covers.
//! Otherwise it scans every log. A start therefore reads the graph's sources, not the readings
//! that make up most of a log.

use std::collections::HashMap;

mod build;
pub mod checkpoint;
mod coexposure;
pub mod custody;
pub mod doc_query;
pub mod fsma204;
mod graph;
mod index;
mod lots;
mod parties;
pub mod query;
pub mod recalls;
mod trace;
mod views;

pub use build::*;
pub use coexposure::*;
pub use custody::{Standing, PENDING_FOR_MS};
pub use lots::{lot_number, LotView, VerdictView, Watcher};
pub use trace::*;
pub use views::*;

use ledger::entry::{Action, CustodyEvent, EntryRef, EventKind, SubjectRole};
use serde::Serialize;

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

#[derive(Debug, Clone)]
struct Mention {
    role: SubjectRole,
    id: u32,
    quantity: Qty,
}

#[derive(Debug, Clone)]
struct EventRec {
    /// Its index in `Lineage::events`.
    n: u32,
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
    /// The recorder as a party (its GLN): whose custody the event rests on.
    actor: u32,
    /// Whether it counts (`custody`).
    standing: Standing,
    subjects: Vec<Mention>,
    /// `sourceList` / `destinationList` ids, and `bizTransactionList` as
    /// (type, id): the reference documents.
    sources: Vec<u32>,
    destinations: Vec<u32>,
    documents: Vec<(Option<u32>, u32)>,
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
    recalls: recalls::Recalls,
    /// Organisations by id: name and role.
    orgs: HashMap<u32, (String, ledger::entry::OrgRole)>,
    /// By location or party identifier: its organisation-level GLN in
    /// canonical form (`parties::gln_base`), computed once when interned.
    gln_bases: HashMap<u32, String>,
    /// The other way: by GLN base, the identifiers interned with it (what
    /// an organisation registered under that GLN owns).
    gln_locations: HashMap<String, Vec<u32>>,
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
    /// Logistic units and assets (SSCC, GRAI, GIAI, GSRN): custody does not
    /// follow them, only the trade items in them.
    containers: std::collections::HashSet<u32>,
    /// By identifier: the party it names (`custody::party`), found once:
    /// every event asks it of its recorder and destinations.
    parties: HashMap<u32, u32>,
    /// Who held which lot from when; the events waiting for custody to
    /// move, as captured (counting them needs it).
    custody: crate::custody::Custody<u32, u32, CustodyEvent>,
    /// By identifier: the events naming it that do not count (yet); an
    /// event counted since may linger here (readers skip those).
    uncounted: HashMap<u32, Vec<u32>>,
    /// The time of the newest counted event (what pending events age by).
    newest_ms: i64,
    /// Events by the fields EPCIS queries select on, in cursor order.
    index: index::Index,
}

fn role_is(m: &Mention, role: SubjectRole) -> bool {
    m.role == role
}

/// Something to index: its kind, identifier, label and searchable words.
pub struct Doc {
    pub kind: &'static str,
    pub id: String,
    pub label: String,
    pub words: String,
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
        w.commission("A", 0);
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
        w.commission("X", 0);
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
        w.commission("c000", 0);
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
        for lot in ["A", "B", "C", "late"] {
            w.commission(lot, 0);
        }
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
        // One organisation's sites; each lot made at its own farm.
        let mut at = |lot: &str, loc: &str, step: &str, t: i64| {
            w.next += 1;
            let e = CustodyEvent {
                recorded_by: "urn:epc:id:sgln:0614141.00001.0".into(),
                event_id: format!("urn:uuid:{}", w.next),
                kind: EventKind::Object,
                action: Some(if step == "commissioning" {
                    Action::Add
                } else {
                    Action::Observe
                }),
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
        for (lot, farm) in [(a, "FARM-A"), (b, "FARM-B"), (c, "FARM-C")] {
            at(lot, farm, "commissioning", 1);
        }
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
