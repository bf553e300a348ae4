//! The graph itself: identifiers interned once, organisations, folding each custody event, recall and registration in, and how far it has read.

use super::*;

impl Lineage {
    pub fn new() -> Lineage {
        Lineage::default()
    }

    /// The node of identifier `s`, made on first sight. Every GS1 spelling
    /// of one thing (EPC URN, Digital Link on any host, GTIN-13 or -14…)
    /// is one node, named as it was first written: its canonical Digital
    /// Link is kept as an alias.
    pub(super) fn intern(&mut self, s: &str) -> u32 {
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
            if let Some(base) = gs1::gln_of_canonical(&c) {
                self.gln_locations.entry(base.clone()).or_default().push(id);
                self.gln_bases.insert(id, base);
            }
            if crate::custody::is_container(&c) {
                self.containers.insert(id);
            }
            self.ids.insert(c, id);
        }
        self.mentions.push(Vec::new());
        id
    }

    /// The node `s` names, in whichever GS1 spelling it comes.
    pub(super) fn id_of(&self, s: &str) -> Option<&u32> {
        self.ids
            .get(s)
            .or_else(|| gs1::canonical_id(s).and_then(|c| self.ids.get(&c)))
    }

    pub(super) fn name(&self, id: u32) -> &str {
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
}

impl Lineage {
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
    pub fn recalls(&self) -> &recalls::Recalls {
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

    /// Takes a committed custody event into the graph; custody decides
    /// whether it counts (`custody`). Feed each event once.
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
        let doc = crate::tables::document(e);
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
        let recorded_by = self.intern(&e.recorded_by);
        let actor = self.party(recorded_by);
        let rec = EventRec {
            n,
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
            recorded_by,
            actor,
            standing: Standing::Pending,
            subjects,
        };
        let mut fields = self.index_fields(&rec);
        let filed = super::doc_query::doc_index(&doc);
        for key in &filed.keys {
            fields.push((index::Field::Doc, self.index.doc_value(key)));
        }
        self.events.push(rec);
        let events = &self.events;
        let event_id = events[n as usize].event_id;
        self.index.insert(n, event_id, &fields, &filed.ranked, |m| {
            query::cursor_of(&events[m as usize])
        });
        // Indexed (by subject, by location, its watches) once it counts.
        self.settle(n, e);
    }
}
