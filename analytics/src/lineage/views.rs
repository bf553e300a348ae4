//! What the graph answers about one event or lot, as readers see it (events with their entries, quantities, whereabouts), and what search indexes.

use super::*;

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
    /// Whether it counts: `counted`, or (shown to investigators and its
    /// recorder) `observation`, `pending`, `disputed`.
    pub standing: Standing,
    /// The event's place in the graph (whom it concerns is asked by it).
    #[serde(skip)]
    pub(crate) event: u32,
}

/// A quantity as the event gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantityView {
    pub value: f64,
    pub uom: Option<String>,
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

impl Lineage {
    /// What search indexes: every organisation, product, lot, location,
    /// device and event the graph knows.
    pub fn search_docs(&self) -> Vec<Doc> {
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
}

impl Lineage {
    pub(super) fn view(&self, e: &EventRec) -> EventView {
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
            standing: self.standing(e),
            event: e.n,
        }
    }

    pub(super) fn quantity(&self, q: Qty) -> Option<QuantityView> {
        q.map(|(milli, uom)| QuantityView {
            value: milli as f64 / 1000.0,
            uom: uom.map(|u| self.name(u).to_string()),
        })
    }

    /// The events naming `lot`, in time order (ties: the order applied).
    pub(super) fn events_of(&self, lot: u32) -> Vec<&EventRec> {
        let mut v: Vec<&EventRec> = self.mentions[lot as usize]
            .iter()
            .map(|&e| &self.events[e as usize])
            .collect();
        v.sort_by_key(|e| e.time_ms);
        v
    }

    pub(super) fn whereabouts(&self, lot: u32) -> Option<Whereabouts> {
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
}
