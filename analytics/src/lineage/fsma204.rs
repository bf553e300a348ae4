//! FSMA 204's electronic sortable spreadsheet (21 CFR 1.1455(c)(3)(ii)): one
//! row per Critical Tracking Event of the requested traceability lots, with
//! its Key Data Elements, from the custody events on the ledger.
//!
//! How EPCIS events become CTEs: a TransformationEvent is a Transformation
//! (one row per output lot, with the input lots); an object event with the
//! CBV step `shipping`/`departing` is Shipping, `receiving`/`arriving` is
//! Receiving, `harvesting` is Harvesting, `cooling` is Cooling, and
//! `commissioning` (ADD) is Harvesting when a grower records it and Initial
//! packing otherwise. Aggregation and association events (pallets, loggers)
//! are not CTEs. A reference document is the event's first
//! `bizTransactionList` entry, else the EPCIS event itself (its eventID).

use serde::Serialize;

use ledger::entry::{Action, EventKind, OrgRole, SubjectRole};

use super::{Direction, EventRec, Limits, Lineage};
use crate::watches::gtin_of;

/// One CTE of one traceability lot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CteRow {
    pub traceability_lot_code: String,
    /// Where the lot code was assigned (the location of the event that made the lot).
    pub traceability_lot_code_source: Option<String>,
    pub product_description: String,
    pub quantity: Option<f64>,
    pub unit_of_measure: Option<String>,
    pub critical_tracking_event: &'static str,
    /// UTC, RFC 3339.
    pub event_time: String,
    pub location: Option<String>,
    pub location_name: Option<String>,
    pub reference_document_type: String,
    pub reference_document_number: String,
    pub previous_source: Option<String>,
    pub next_recipient: Option<String>,
    /// Transformation only: the lots it was made from, `;`-separated.
    pub input_traceability_lot_codes: Option<String>,
    pub epcis_event_id: String,
    /// `shard/index/id`: the ledger entry that records the event.
    pub ledger_entry: String,
    #[serde(skip)]
    pub time_ms: i64,
}

/// The columns, in order, as the spreadsheet's header row names them.
pub const COLUMNS: [&str; 17] = [
    "Traceability Lot Code",
    "Traceability Lot Code Source",
    "Product Description",
    "Quantity",
    "Unit of Measure",
    "Critical Tracking Event",
    "Event Date and Time (UTC)",
    "Location Identifier",
    "Location Name",
    "Reference Document Type",
    "Reference Document Number",
    "Immediate Previous Source",
    "Immediate Subsequent Recipient",
    "Input Traceability Lot Codes",
    "EPCIS Event ID",
    "Ledger Entry",
    "Sort Key (Unix ms)",
];

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Lineage {
    fn cte_of(&self, e: &EventRec) -> Option<&'static str> {
        if e.kind == EventKind::Transformation {
            return Some("Transformation");
        }
        if !matches!(e.kind, EventKind::Object | EventKind::Transaction) {
            return None;
        }
        let step = e.biz_step.map(|s| self.name(s))?;
        // CBV steps may come bare or as URIs (…/bizstep-shipping, urn:epcglobal:cbv:bizstep:shipping).
        let step = step.rsplit([':', '/', '-']).next().unwrap_or(step);
        Some(match step {
            "shipping" | "departing" => "Shipping",
            "receiving" | "arriving" => "Receiving",
            "harvesting" => "Harvesting",
            "cooling" => "Cooling",
            "commissioning" if e.action == Some(Action::Add) => {
                match self.orgs.get(&e.recorded_by).map(|(_, r)| *r) {
                    Some(OrgRole::Grower) => "Harvesting",
                    _ => "Initial packing",
                }
            }
            _ => return None,
        })
    }

    fn location_name(&self, loc: Option<u32>) -> Option<String> {
        loc.and_then(|l| self.orgs.get(&l)).map(|(n, _)| n.clone())
    }

    /// The location of the lot's nearest CTE before (or after) `e` at
    /// another location: where it came from, or went to. (Loggers and
    /// pallets are not parties: their events are no CTEs.)
    fn neighbour_location(&self, lot: u32, e: &EventRec, before: bool) -> Option<String> {
        let events = self.events_of(lot);
        let pick = |x: &&&EventRec| {
            x.location.is_some() && x.location != e.location && self.cte_of(x).is_some()
        };
        let found = if before {
            events
                .iter()
                .rev()
                .filter(|x| x.time_ms < e.time_ms)
                .find(pick)
        } else {
            events.iter().filter(|x| x.time_ms > e.time_ms).find(pick)
        };
        found
            .and_then(|x| x.location)
            .map(|l| self.name(l).to_string())
    }

    fn row(&self, lot: u32, e: &EventRec, cte: &'static str) -> CteRow {
        let mention = e.subjects.iter().find(|m| m.id == lot);
        let lot_name = self.name(lot);
        let origin = self
            .events_of(lot)
            .into_iter()
            .find(|x| {
                (x.kind == EventKind::Transformation
                    && x.subjects
                        .iter()
                        .any(|m| m.id == lot && m.role == SubjectRole::Output))
                    || (x.action == Some(Action::Add) && x.kind == EventKind::Object)
            })
            .and_then(|x| x.location)
            .map(|l| self.name(l).to_string());
        let (doc_type, doc_number) = match e.documents.first() {
            Some((kind, id)) => (
                kind.map_or("business transaction".to_string(), |k| {
                    self.name(k).to_string()
                }),
                self.name(*id).to_string(),
            ),
            None => ("EPCIS event".to_string(), self.name(e.event_id).to_string()),
        };
        let inputs: Vec<&str> = e
            .subjects
            .iter()
            .filter(|m| m.role == SubjectRole::Input)
            .map(|m| self.name(m.id))
            .collect();
        CteRow {
            traceability_lot_code: lot_name.to_string(),
            traceability_lot_code_source: origin,
            product_description: gtin_of(lot_name)
                .map_or_else(|| lot_name.to_string(), |g| format!("GTIN {g}")),
            quantity: mention
                .and_then(|m| m.quantity)
                .map(|(q, _)| q as f64 / 1000.0),
            unit_of_measure: mention
                .and_then(|m| m.quantity)
                .and_then(|(_, u)| u)
                .map(|u| self.name(u).to_string()),
            critical_tracking_event: cte,
            event_time: rfc3339(e.time_ms),
            location: e.location.map(|l| self.name(l).to_string()),
            location_name: self.location_name(e.location),
            reference_document_type: doc_type,
            reference_document_number: doc_number,
            previous_source: match cte {
                "Receiving" => e
                    .sources
                    .first()
                    .map(|s| self.name(*s).to_string())
                    .or_else(|| self.neighbour_location(lot, e, true)),
                _ => None,
            },
            next_recipient: match cte {
                "Shipping" => e
                    .destinations
                    .first()
                    .map(|s| self.name(*s).to_string())
                    .or_else(|| self.neighbour_location(lot, e, false)),
                _ => None,
            },
            input_traceability_lot_codes: (cte == "Transformation").then(|| inputs.join(";")),
            epcis_event_id: self.name(e.event_id).to_string(),
            ledger_entry: format!(
                "{}/{}/{}",
                e.at.shard,
                e.at.index,
                ledger::Digest(e.at.id).to_hex()
            ),
            time_ms: e.time_ms,
        }
    }

    /// The CTE rows of `lots`: each lot's own events, and each transformation
    /// that made or used it (as a row of the lot it made).
    pub fn cte_rows(&self, lots: &[String]) -> Vec<CteRow> {
        let mut rows = Vec::new();
        let mut seen: std::collections::HashSet<(u32, u32)> = Default::default();
        for lot in lots {
            let Some(&id) = self.id_of(lot.as_str()) else {
                continue;
            };
            for &ei in &self.mentions[id as usize] {
                let e = &self.events[ei as usize];
                let Some(cte) = self.cte_of(e) else { continue };
                // A transformation is a CTE of what it made.
                let made: Vec<u32> = if cte == "Transformation" {
                    e.subjects
                        .iter()
                        .filter(|m| m.role == SubjectRole::Output)
                        .map(|m| m.id)
                        .collect()
                } else {
                    vec![id]
                };
                for m in made {
                    if seen.insert((ei, m)) {
                        rows.push(self.row(m, e, cte));
                    }
                }
            }
        }
        rows.sort_by(|a, b| {
            (a.time_ms, &a.traceability_lot_code).cmp(&(b.time_ms, &b.traceability_lot_code))
        });
        rows
    }

    /// A lot's whole chain: what it was made from and what was made from it.
    pub fn chain(&self, lot: &str) -> Option<Vec<String>> {
        let mut lots = Vec::new();
        for dir in [Direction::Backward, Direction::Forward] {
            for l in self.trace(lot, dir, Limits::default())?.lots {
                if !lots.contains(&l.lot) {
                    lots.push(l.lot);
                }
            }
        }
        Some(lots)
    }

    /// The CTE rows of every lot of product `gtin` (GTIN-14) with events in
    /// `[from_ms, to_ms]`.
    pub fn cte_rows_for_product(&self, gtin: &str, from_ms: i64, to_ms: i64) -> Vec<CteRow> {
        let lots: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .filter(|(i, n)| !self.mentions[*i].is_empty() && gtin_of(n).as_deref() == Some(gtin))
            .map(|(_, n)| n.clone())
            .collect();
        let mut rows = self.cte_rows(&lots);
        rows.retain(|r| (from_ms..=to_ms).contains(&r.time_ms));
        rows
    }
}

/// The rows as CSV (RFC 4180), header first.
pub fn to_csv(rows: &[CteRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("writing to memory");
    for r in rows {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            r.traceability_lot_code.clone(),
            opt(&r.traceability_lot_code_source),
            r.product_description.clone(),
            r.quantity.map(|q| q.to_string()).unwrap_or_default(),
            opt(&r.unit_of_measure),
            r.critical_tracking_event.to_string(),
            r.event_time.clone(),
            opt(&r.location),
            opt(&r.location_name),
            r.reference_document_type.clone(),
            r.reference_document_number.clone(),
            opt(&r.previous_source),
            opt(&r.next_recipient),
            opt(&r.input_traceability_lot_codes),
            r.epcis_event_id.clone(),
            r.ledger_entry.clone(),
            r.time_ms.to_string(),
        ])
        .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 fields")
}
