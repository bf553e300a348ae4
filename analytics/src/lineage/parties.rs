//! Whom a fact concerns: the organisations an event, a lot, a device's
//! readings, a verdict or a recall is about. The read side's visibility model
//! (`readstate::access`) decides from these who may read an entry's content;
//! this module only says who is concerned, from what the graph holds.
//!
//! - An event concerns the organisation that recorded it, the owners of its
//!   read point and business location, and the parties its source and
//!   destination lists name (one step up and one step down the chain).
//! - A lot concerns every organisation that held it (`custody`: it created
//!   it, received it, or was named the destination of a counted hand-off):
//!   naming a lot in an event grants nothing. Anything else events name (a
//!   container) concerns every organisation some counted event naming it
//!   concerns.
//! - A device's readings over a time concern its owner and every organisation
//!   concerned with what it watched then (directly or inside a container).
//!
//! A location belongs to the organisation registered under its GLN: the
//! location itself, or the same GLN without its SGLN extension; a party named
//! by its party GLN (PGLN) is the organisation registered under the same
//! thirteen digits.

use ledger::entry::{CustodyEvent, RecallChange};

use super::{EventRec, Lineage};

impl Lineage {
    /// The organisation registered under `location`'s GLN (see the module
    /// docs), as its id.
    pub(super) fn owner_id(&self, location: u32) -> Option<u32> {
        if self.orgs.contains_key(&location) {
            return Some(location);
        }
        let base = self.gln_bases.get(&location)?;
        self.ids
            .get(base)
            .copied()
            .filter(|o| self.orgs.contains_key(o))
    }

    /// The organisation that owns `location` (an SGLN, a PGLN, or either's
    /// Digital Link), when one is registered under its GLN.
    pub fn location_owner(&self, location: &str) -> Option<&str> {
        let l = *self.id_of(location)?;
        self.owner_id(l).map(|o| self.name(o))
    }

    /// Whether the event `e` concerns organisation `org` (by id).
    pub(super) fn rec_concerns(&self, e: &EventRec, org: u32) -> bool {
        let owned = |l: Option<u32>| l.is_some_and(|l| self.owner_id(l) == Some(org));
        e.recorded_by == org
            || owned(e.read_point)
            || owned(e.biz_location)
            || e.sources
                .iter()
                .chain(&e.destinations)
                .any(|&p| owned(Some(p)))
    }

    /// Whether the captured event `e` concerns organisation `org`.
    pub fn event_concerns(&self, e: &CustodyEvent, org: &str) -> bool {
        let Some(&o) = self.id_of(org) else {
            return false;
        };
        let owned = |l: &str| self.id_of(l).is_some_and(|&l| self.owner_id(l) == Some(o));
        if e.recorded_by == org
            || self.id_of(&e.recorded_by) == Some(&o)
            || e.read_point.as_deref().is_some_and(owned)
            || e.biz_location.as_deref().is_some_and(owned)
        {
            return true;
        }
        let doc = crate::tables::document(e);
        ["sourceList", "destinationList"]
            .iter()
            .zip(["source", "destination"])
            .flat_map(|(list, field)| crate::tables::party_list(&doc, list, field))
            .any(|p| owned(&p))
    }

    /// Whether the event `v` (a view of one of the graph's events) concerns `org`.
    pub fn event_view_concerns(&self, v: &super::EventView, org: &str) -> bool {
        let Some(&o) = self.id_of(org) else {
            return false;
        };
        self.events
            .get(v.event as usize)
            .is_some_and(|e| self.rec_concerns(e, o))
    }

    /// Whether `subject` concerns `org`: a lot, when `org` holds or held it
    /// (custody, not mere naming: `custody`); anything else custody does not
    /// follow (a container, a logger), when some counted event naming it
    /// concerns `org`.
    pub fn subject_concerns(&self, subject: &str, org: &str) -> bool {
        let Some(&s) = self.id_of(subject) else {
            return false;
        };
        if self.custody.is_held(&s) {
            return self.party_of(org).is_some_and(|p| self.ever_held(p, s));
        }
        let Some(&o) = self.id_of(org) else {
            return false;
        };
        self.mentions[s as usize]
            .iter()
            .any(|&e| self.rec_concerns(&self.events[e as usize], o))
    }

    /// Whether `device`'s readings in `[from_ms, to_ms]` concern `org`: it
    /// owns the device, or is concerned with something the device watched then.
    pub fn readings_concern(&self, device: &str, from_ms: i64, to_ms: i64, org: &str) -> bool {
        self.device_owner(device)
            .is_some_and(|owner| self.id_of(owner) == self.id_of(org))
            || self
                .watches
                .watched(device, from_ms, to_ms, &|p, l, t| self.holds(p, l, t))
                .iter()
                .any(|s| self.subject_concerns(s, org))
    }

    /// Whether a verdict or receipt about `subject` (a device over
    /// `[from_ms, to_ms]`, or anything events name) concerns `org`.
    pub fn about_concerns(&self, subject: &str, from_ms: i64, to_ms: i64, org: &str) -> bool {
        self.subject_concerns(subject, org)
            || (self.device_owner(subject).is_some()
                && self.readings_concern(subject, from_ms, to_ms, org))
    }

    /// Whether the recall opened by entry `id` (hex) concerns `org`: its lot
    /// or a lot it names does.
    pub fn recall_id_concerns(&self, id: &str, org: &str) -> bool {
        self.recalls.get(id).is_some_and(|r| {
            self.subject_concerns(&r.lot, org)
                || r.affected.iter().any(|l| self.subject_concerns(l, org))
        })
    }

    /// Whether a recall change concerns `org`: some lot it recalls, or the
    /// recall it changes recalled, concerns it.
    pub fn recall_concerns(&self, change: &RecallChange, org: &str) -> bool {
        let any_concerns = |lots: &[String]| lots.iter().any(|l| self.subject_concerns(l, org));
        let recalled = |id: &ledger::Digest| self.recall_id_concerns(&id.to_hex(), org);
        match change {
            RecallChange::Opened { lot, affected, .. } => {
                self.subject_concerns(lot, org) || any_concerns(affected)
            }
            RecallChange::Widened { recall, added, .. } => recalled(recall) || any_concerns(added),
            RecallChange::Closed { recall, .. } => recalled(recall),
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger::entry::{
        Action, CustodyEvent, Entry, EntryRef, EventKind, IdentityChange, OrgRole, RecallChange,
        Subject, SubjectRole,
    };

    use super::super::{build::apply_bytes, Lineage};

    const A: &str = "urn:epc:id:sgln:0614141.00001.0";
    const B: &str = "urn:epc:id:sgln:0614141.00002.0";
    const C: &str = "urn:epc:id:sgln:0614141.00003.0";
    const D: &str = "urn:epc:id:sgln:0614141.00004.0";
    const LOT: &str = "urn:epc:class:lgtin:0614141.010001.L1";
    const OTHER_LOT: &str = "urn:epc:class:lgtin:0614141.010001.L2";
    const LOGGER: &str = "urn:epc:id:giai:0614141.R1";
    const T: i64 = 1_790_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn event(
        by: &str,
        t: i64,
        kind: EventKind,
        at: &str,
        subjects: &[(SubjectRole, &str)],
        doc: serde_json::Value,
    ) -> Entry {
        Entry::Custody(CustodyEvent {
            recorded_by: by.into(),
            event_id: format!("urn:uuid:{t}-{by}"),
            kind,
            action: Some(Action::Add),
            event_time_ms: t,
            tz_offset_min: 0,
            biz_step: None,
            disposition: None,
            read_point: Some(at.into()),
            biz_location: Some(at.into()),
            subjects: subjects
                .iter()
                .map(|&(role, id)| Subject {
                    role,
                    quantity: None,
                    id: id.into(),
                })
                .collect(),
            readings: Vec::new(),
            document: doc.to_string().into_bytes(),
        })
    }

    /// A grows the lot at one of its sites and ships it to B's party GLN; B
    /// puts its logger on it and ships it on to D, whose receipt is captured
    /// first. C only handles another lot.
    fn world() -> (Lineage, Vec<Entry>) {
        let org = |org: &str, role| {
            Entry::Identity(IdentityChange::OrgRegistered {
                org: org.into(),
                name: org.into(),
                role,
                at_ms: T,
            })
        };
        let obj = [(SubjectRole::Object, LOT)];
        let entries = vec![
            org(A, OrgRole::Grower),
            org(B, OrgRole::Carrier),
            org(C, OrgRole::Carrier),
            org(D, OrgRole::Retailer),
            Entry::Identity(IdentityChange::DeviceRegistered {
                org: B.into(),
                device: LOGGER.into(),
                public_key: [1; 32],
                at_ms: T,
                active_from_ms: T,
            }),
            event(
                A,
                T,
                EventKind::Object,
                "urn:epc:id:sgln:0614141.00001.7",
                &obj,
                serde_json::json!({}),
            ),
            event(
                A,
                T + HOUR,
                EventKind::Object,
                A,
                &obj,
                serde_json::json!({"destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00002"}]}),
            ),
            event(
                B,
                T + HOUR,
                EventKind::Association,
                B,
                &[(SubjectRole::Parent, LOGGER), (SubjectRole::Child, LOT)],
                serde_json::json!({}),
            ),
            event(
                D,
                T + 5 * HOUR,
                EventKind::Object,
                D,
                &obj,
                serde_json::json!({}),
            ),
            event(
                C,
                T,
                EventKind::Object,
                C,
                &[(SubjectRole::Object, OTHER_LOT)],
                serde_json::json!({}),
            ),
            // B hands the lot on to D: captured after D's receipt, which
            // counts from then on.
            event(
                B,
                T + 4 * HOUR,
                EventKind::Object,
                B,
                &obj,
                serde_json::json!({"destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00004"}]}),
            ),
        ];
        let mut g = Lineage::new();
        for (i, e) in entries.iter().enumerate() {
            apply_bytes(&mut g, 0, i as u64, &e.to_bytes());
        }
        (g, entries)
    }

    fn custody(e: &Entry) -> &CustodyEvent {
        match e {
            Entry::Custody(c) => c,
            _ => unreachable!("an event"),
        }
    }

    #[test]
    fn an_event_concerns_its_recorder_the_owners_of_its_places_and_its_parties() {
        let (g, entries) = world();
        let (grown, shipped) = (custody(&entries[5]), custody(&entries[6]));
        assert_eq!(g.location_owner("urn:epc:id:sgln:0614141.00001.7"), Some(A));
        assert_eq!(g.location_owner("urn:epc:id:pgln:0614141.00002"), Some(B));
        assert_eq!(g.location_owner("urn:epc:id:sgln:0614141.00099.0"), None);
        assert!(g.event_concerns(grown, A));
        assert!(!g.event_concerns(grown, B) && !g.event_concerns(grown, C));
        assert!(g.event_concerns(shipped, A) && g.event_concerns(shipped, B));
        assert!(!g.event_concerns(shipped, D) && !g.event_concerns(shipped, C));
        assert!(!g.event_concerns(shipped, "urn:epc:id:sgln:0614141.00099.0"));
    }

    #[test]
    fn a_lot_and_its_watchers_readings_concern_everyone_along_its_chain_and_nobody_else() {
        let (g, _) = world();
        for org in [A, B, D] {
            assert!(g.subject_concerns(LOT, org), "{org}");
        }
        assert!(!g.subject_concerns(LOT, C));
        assert!(g.subject_concerns(OTHER_LOT, C) && !g.subject_concerns(OTHER_LOT, A));
        // The logger watched the lot from T + 1 h on: its readings then
        // concern the lot's chain; before, only its owner.
        assert!(g.readings_concern(LOGGER, T + 2 * HOUR, T + 3 * HOUR, D));
        assert!(!g.readings_concern(LOGGER, T + 2 * HOUR, T + 3 * HOUR, C));
        assert!(!g.readings_concern(LOGGER, T - 2 * HOUR, T - HOUR, D));
        assert!(g.readings_concern(LOGGER, T - 2 * HOUR, T - HOUR, B));
        assert!(g.about_concerns(LOGGER, T + 2 * HOUR, T + 3 * HOUR, A));
        assert!(!g.about_concerns(LOGGER, T + 2 * HOUR, T + 3 * HOUR, C));
    }

    #[test]
    fn a_recall_concerns_the_chains_of_the_lots_it_recalls() {
        let (mut g, _) = world();
        let opened = RecallChange::Opened {
            lot: LOT.into(),
            reason: "listeria".into(),
            by: A.into(),
            at_ms: T + 9 * HOUR,
            affected: vec![LOT.into()],
            evidence: Vec::new(),
        };
        assert!(g.recall_concerns(&opened, D) && !g.recall_concerns(&opened, C));
        let at = EntryRef {
            shard: 0,
            index: 99,
            id: ledger::entry_id(&Entry::Recall(opened.clone()).to_bytes()),
        };
        g.apply_recall(&at, &opened);
        let closed = RecallChange::Closed {
            recall: at.id,
            reason: "done".into(),
            by: A.into(),
            at_ms: T + 20 * HOUR,
        };
        assert!(g.recall_concerns(&closed, B) && !g.recall_concerns(&closed, C));
    }
}
