//! FSMA 204's electronic sortable spreadsheet (21 CFR 1.1455(c)(3)(ii)): one
//! row per Critical Tracking Event of the requested traceability lots, with
//! the Key Data Elements 21 CFR 1.1325–1.1350 require of that CTE, from the
//! custody events on the ledger and the node's master data.
//!
//! How EPCIS events become CTEs: a TransformationEvent is a Transformation
//! (one row per output lot, with each input lot and its quantity); an object
//! or transaction event with the CBV step `shipping`/`departing` is Shipping,
//! `receiving`/`arriving` is Receiving, `harvesting` is Harvesting, `cooling`
//! is Cooling; `commissioning` (ADD) is Harvesting when a grower records it
//! and Initial packing otherwise. `packing` (an aggregation ADD, or an object
//! event) of a raw agricultural commodity, a lot no transformation made, is
//! its Initial packing; `cooling` in an aggregation ADD is its Cooling. Other
//! aggregation and association events (pallets, loggers) are not CTEs.
//!
//! Which KDE goes with which CTE (the columns are one sheet; a cell a CTE
//! does not require is empty, and [`required`] lists the ones it does):
//! Harvesting, Cooling and Initial packing name the immediate subsequent
//! recipient (other than a transporter: the lot's next shipment's
//! destination); Cooling and Initial packing name where and when the lot was
//! harvested, and Initial packing where and when it was cooled; Shipping
//! names the recipient, Receiving the previous source; every CTE names the
//! traceability lot code's source. A location is named by its identifier and
//! its description (business name, address, phone: the organisation
//! registered under its GLN, and the node's master data). A reference
//! document is the event's first `bizTransactionList` entry, else the EPCIS
//! event itself (its eventID).

use std::collections::HashMap;

use serde::Serialize;

use ledger::entry::{Action, EventKind, OrgRole, SubjectRole};

use super::{Direction, EventRec, Limits, Lineage};
use crate::watches::gtin_of;

/// What the ledger does not hold but the spreadsheet describes: products'
/// descriptions and places' addresses and phone numbers, which their owners
/// publish (the node operator keeps them; `web::catalogue`).
#[derive(Debug, Clone, Default)]
pub struct MasterData {
    /// GTIN-14 -> product description (commodity and variety for produce).
    pub products: HashMap<String, String>,
    /// An organisation's GLN, canonical (`gs1::gln_of`) -> its place.
    pub places: HashMap<String, Place>,
}

/// A place's physical address and phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub address: String,
    pub phone: String,
}

/// A Critical Tracking Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cte {
    Harvesting,
    Cooling,
    #[serde(rename = "Initial packing")]
    InitialPacking,
    Shipping,
    Receiving,
    Transformation,
}

impl Cte {
    pub const ALL: [Cte; 6] = [
        Cte::Harvesting,
        Cte::Cooling,
        Cte::InitialPacking,
        Cte::Shipping,
        Cte::Receiving,
        Cte::Transformation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cte::Harvesting => "Harvesting",
            Cte::Cooling => "Cooling",
            Cte::InitialPacking => "Initial packing",
            Cte::Shipping => "Shipping",
            Cte::Receiving => "Receiving",
            Cte::Transformation => "Transformation",
        }
    }
}

/// A location as the spreadsheet names it: identifier and description.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Location {
    pub id: String,
    /// Business name, address and phone, `; `-separated, as far as known.
    pub description: String,
}

/// One CTE of one traceability lot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CteRow {
    pub traceability_lot_code: String,
    /// Where the lot code was assigned (the location of the event that made the lot).
    pub traceability_lot_code_source: Option<Location>,
    pub product_description: String,
    pub quantity: Option<f64>,
    pub unit_of_measure: Option<String>,
    pub cte: Cte,
    /// UTC, RFC 3339.
    pub event_time: String,
    pub location: Option<Location>,
    pub previous_source: Option<Location>,
    pub subsequent_recipient: Option<Location>,
    /// Cooling and Initial packing: where and when the lot was harvested.
    pub harvest_location: Option<Location>,
    pub harvest_date: Option<String>,
    /// Initial packing: where and when the lot was cooled.
    pub cooling_location: Option<Location>,
    pub cooling_date: Option<String>,
    /// Transformation only: the lots it was made from, `;`-separated.
    pub input_traceability_lot_codes: Option<String>,
    /// Transformation only: each input lot's quantity and unit, in the
    /// order of the lot codes, `;`-separated (`500 KGM`).
    pub input_quantities: Option<String>,
    pub reference_document_type: String,
    pub reference_document_number: String,
    pub epcis_event_id: String,
    /// `shard/index/id`: the ledger entry that records the event.
    pub ledger_entry: String,
    #[serde(skip)]
    pub time_ms: i64,
}

/// The columns, in order, as the spreadsheet's header row names them.
pub const COLUMNS: [&str; 27] = [
    "Traceability Lot Code",
    "Traceability Lot Code Source",
    "Traceability Lot Code Source Description",
    "Product Description",
    "Quantity",
    "Unit of Measure",
    "Critical Tracking Event",
    "Event Date and Time (UTC)",
    "Location Identifier",
    "Location Description",
    "Immediate Previous Source",
    "Immediate Previous Source Description",
    "Immediate Subsequent Recipient",
    "Immediate Subsequent Recipient Description",
    "Harvest Location",
    "Harvest Location Description",
    "Harvest Date",
    "Cooling Location",
    "Cooling Location Description",
    "Cooling Date",
    "Input Traceability Lot Codes",
    "Input Quantities",
    "Reference Document Type",
    "Reference Document Number",
    "EPCIS Event ID",
    "Ledger Entry",
    "Sort Key (Unix ms)",
];

/// The columns 21 CFR 1.1325–1.1350 require of `cte` (each names a Key
/// Data Element, or the location description the rule asks with it).
pub fn required(cte: Cte) -> &'static [&'static str] {
    // Every CTE's: the lot, its source, product, quantity, the CTE and its
    // time (the first eight columns).
    const LOT: [&str; 8] = [
        COLUMNS[0], COLUMNS[1], COLUMNS[2], COLUMNS[3], COLUMNS[4], COLUMNS[5], COLUMNS[6],
        COLUMNS[7],
    ];
    macro_rules! cols {
        ($($c:expr),*) => {{
            const C: &[&str] = &[
                LOT[0], LOT[1], LOT[2], LOT[3], LOT[4], LOT[5], LOT[6], LOT[7],
                "Location Identifier", "Location Description",
                "Reference Document Type", "Reference Document Number",
                $($c),*
            ];
            C
        }};
    }
    match cte {
        // 1.1325(a): the recipient, the farm (where it happened).
        Cte::Harvesting => cols!(
            "Immediate Subsequent Recipient",
            "Immediate Subsequent Recipient Description"
        ),
        // 1.1325(b): the recipient, where cooled, the farm it came from.
        Cte::Cooling => cols!(
            "Immediate Subsequent Recipient",
            "Immediate Subsequent Recipient Description",
            "Harvest Location",
            "Harvest Location Description"
        ),
        // 1.1330(a): the farm and harvest date, the cooler and cooling date.
        Cte::InitialPacking => cols!(
            "Harvest Location",
            "Harvest Location Description",
            "Harvest Date",
            "Cooling Location",
            "Cooling Location Description",
            "Cooling Date"
        ),
        // 1.1340(a): the recipient.
        Cte::Shipping => cols!(
            "Immediate Subsequent Recipient",
            "Immediate Subsequent Recipient Description"
        ),
        // 1.1345(a): the previous source.
        Cte::Receiving => cols!(
            "Immediate Previous Source",
            "Immediate Previous Source Description"
        ),
        // 1.1350(a): each input lot and its quantity.
        Cte::Transformation => cols!("Input Traceability Lot Codes", "Input Quantities"),
    }
}

fn rfc3339(ms: i64) -> String {
    super::query::rfc3339(ms).unwrap_or_default()
}

/// A quantity as the spreadsheet writes it: thousandths as a decimal.
fn amount(milli: i64) -> f64 {
    milli as f64 / 1000.0
}

impl Lineage {
    /// The CBV step of `e`, bare (`shipping`), however it was written
    /// (`…/bizstep-shipping`, `urn:epcglobal:cbv:bizstep:shipping`).
    fn step(&self, e: &EventRec) -> Option<&str> {
        let step = e.biz_step.map(|s| self.name(s))?;
        step.rsplit([':', '/', '-']).next()
    }

    /// Whether `lot` was made by a transformation: not a raw agricultural
    /// commodity.
    fn transformed(&self, lot: u32) -> bool {
        self.events_of(lot).iter().any(|x| {
            x.kind == EventKind::Transformation
                && x.subjects
                    .iter()
                    .any(|m| m.id == lot && m.role == SubjectRole::Output)
        })
    }

    /// Whether a packing of `lot` is recorded (an object event, or an
    /// aggregation that adds it to cases).
    fn packed(&self, lot: u32) -> bool {
        self.events_of(lot).iter().any(|x| {
            self.step(x) == Some("packing")
                && match x.kind {
                    EventKind::Object | EventKind::Transaction => true,
                    EventKind::Aggregation => x.action == Some(Action::Add),
                    _ => false,
                }
        })
    }

    /// The CTE `e` is for `lot`, if any.
    fn cte_of(&self, e: &EventRec, lot: u32) -> Option<Cte> {
        if e.kind == EventKind::Transformation {
            return Some(Cte::Transformation);
        }
        let step = self.step(e)?;
        match e.kind {
            EventKind::Object | EventKind::Transaction => Some(match step {
                "shipping" | "departing" => Cte::Shipping,
                "receiving" | "arriving" => Cte::Receiving,
                "harvesting" => Cte::Harvesting,
                "cooling" => Cte::Cooling,
                "packing" if !self.transformed(lot) => Cte::InitialPacking,
                "commissioning" if e.action == Some(Action::Add) => {
                    match self.orgs.get(&e.recorded_by).map(|(_, r)| *r) {
                        Some(OrgRole::Grower) => Cte::Harvesting,
                        // A packer's lot is packed when it is made, unless
                        // its packing is recorded on its own.
                        _ if self.packed(lot) => return None,
                        _ => Cte::InitialPacking,
                    }
                }
                _ => return None,
            }),
            // Packing a commodity into cases (or cooling it as a pallet)
            // is recorded as its aggregation.
            EventKind::Aggregation if e.action == Some(Action::Add) => match step {
                "packing" if !self.transformed(lot) => Some(Cte::InitialPacking),
                "cooling" => Some(Cte::Cooling),
                _ => None,
            },
            _ => None,
        }
    }

    /// `loc` named and described: the organisation registered under its
    /// GLN, and its place from the master data.
    fn described(&self, loc: u32, master: &MasterData) -> Location {
        let mut parts: Vec<String> = Vec::new();
        if let Some((name, _)) = self.owner_id(loc).and_then(|o| self.orgs.get(&o)) {
            parts.push(name.clone());
        }
        if let Some(place) = self.gln_bases.get(&loc).and_then(|g| master.places.get(g)) {
            parts.push(place.address.clone());
            parts.push(format!("phone {}", place.phone));
        }
        Location {
            id: self.name(loc).to_string(),
            description: parts.join("; "),
        }
    }

    /// Whether `loc` belongs to a carrier: a transporter is not a recipient.
    fn transporter(&self, loc: u32) -> bool {
        self.owner_id(loc)
            .and_then(|o| self.orgs.get(&o))
            .is_some_and(|(_, r)| *r == OrgRole::Carrier)
    }

    /// The lot's events after (or before) `e` that are CTEs.
    fn ctes_around<'a>(&'a self, lot: u32, e: &EventRec, after: bool) -> Vec<(&'a EventRec, Cte)> {
        let mut v: Vec<(&EventRec, Cte)> = self
            .events_of(lot)
            .into_iter()
            .filter(|x| {
                x.n != e.n
                    && if after {
                        x.time_ms >= e.time_ms
                    } else {
                        x.time_ms <= e.time_ms
                    }
            })
            .filter_map(|x| self.cte_of(x, lot).map(|c| (x, c)))
            .collect();
        if !after {
            v.reverse();
        }
        v
    }

    /// Where the lot went from `e`: a shipment's first destination that is
    /// no transporter, else the next CTE's location elsewhere. For a
    /// harvest, cooling or packing, the lot's next shipment's recipient.
    fn recipient(&self, lot: u32, e: &EventRec, cte: Cte) -> Option<u32> {
        let shipment = if cte == Cte::Shipping {
            Some(e)
        } else {
            self.ctes_around(lot, e, true)
                .into_iter()
                .find(|(_, c)| *c == Cte::Shipping)
                .map(|(x, _)| x)
        }?;
        shipment
            .destinations
            .iter()
            .copied()
            .find(|&d| !self.transporter(d))
            .or_else(|| {
                self.ctes_around(lot, shipment, true)
                    .into_iter()
                    .map(|(x, _)| x)
                    .find(|x| {
                        x.time_ms > shipment.time_ms
                            && x.location.is_some()
                            && x.location != shipment.location
                    })
                    .and_then(|x| x.location)
            })
    }

    /// Where the lot came from before a receipt `e`: its first source, else
    /// the previous CTE's location elsewhere.
    fn source(&self, lot: u32, e: &EventRec) -> Option<u32> {
        e.sources
            .iter()
            .copied()
            .find(|&s| !self.transporter(s))
            .or_else(|| {
                self.ctes_around(lot, e, false)
                    .into_iter()
                    .map(|(x, _)| x)
                    .find(|x| {
                        x.time_ms < e.time_ms && x.location.is_some() && x.location != e.location
                    })
                    .and_then(|x| x.location)
            })
    }

    /// The lot's latest CTE of kind `cte` up to `e`: where and when.
    fn earlier(&self, lot: u32, e: &EventRec, cte: Cte) -> Option<(Option<u32>, i64)> {
        self.ctes_around(lot, e, false)
            .into_iter()
            .find(|(_, c)| *c == cte)
            .map(|(x, _)| (x.location, x.time_ms))
    }

    fn row(&self, lot: u32, e: &EventRec, cte: Cte, master: &MasterData) -> CteRow {
        let mention = e.subjects.iter().find(|m| m.id == lot);
        let lot_name = self.name(lot);
        let describe = |l: Option<u32>| l.map(|l| self.described(l, master));
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
            .and_then(|x| x.location);
        let (doc_type, doc_number) = match e.documents.first() {
            Some((kind, id)) => (
                kind.map_or("business transaction".to_string(), |k| {
                    let k = self.name(k);
                    k.rsplit([':', '/', '-']).next().unwrap_or(k).to_string()
                }),
                self.name(*id).to_string(),
            ),
            None => ("EPCIS event".to_string(), self.name(e.event_id).to_string()),
        };
        let inputs: Vec<_> = e
            .subjects
            .iter()
            .filter(|m| m.role == SubjectRole::Input)
            .collect();
        let (harvest, cooling) = match cte {
            Cte::Cooling | Cte::InitialPacking => (
                self.earlier(lot, e, Cte::Harvesting),
                (cte == Cte::InitialPacking)
                    .then(|| self.earlier(lot, e, Cte::Cooling))
                    .flatten(),
            ),
            _ => (None, None),
        };
        CteRow {
            traceability_lot_code: lot_name.to_string(),
            traceability_lot_code_source: describe(origin),
            product_description: gtin_of(lot_name).map_or_else(
                || lot_name.to_string(),
                |g| {
                    master
                        .products
                        .get(&g)
                        .cloned()
                        .unwrap_or(format!("GTIN {g}"))
                },
            ),
            quantity: mention.and_then(|m| m.quantity).map(|(q, _)| amount(q)),
            unit_of_measure: mention
                .and_then(|m| m.quantity)
                .and_then(|(_, u)| u)
                .map(|u| self.name(u).to_string()),
            cte,
            event_time: rfc3339(e.time_ms),
            location: describe(e.location),
            previous_source: match cte {
                Cte::Receiving => describe(self.source(lot, e)),
                _ => None,
            },
            subsequent_recipient: match cte {
                Cte::Harvesting | Cte::Cooling | Cte::InitialPacking | Cte::Shipping => {
                    describe(self.recipient(lot, e, cte))
                }
                _ => None,
            },
            harvest_location: harvest.and_then(|(l, _)| describe(l)),
            harvest_date: harvest.map(|(_, t)| rfc3339(t)),
            cooling_location: cooling.and_then(|(l, _)| describe(l)),
            cooling_date: cooling.map(|(_, t)| rfc3339(t)),
            input_traceability_lot_codes: (cte == Cte::Transformation).then(|| {
                inputs
                    .iter()
                    .map(|m| self.name(m.id))
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            input_quantities: (cte == Cte::Transformation).then(|| {
                inputs
                    .iter()
                    .map(|m| match m.quantity {
                        Some((q, Some(u))) => format!("{} {}", amount(q), self.name(u)),
                        Some((q, None)) => amount(q).to_string(),
                        None => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            reference_document_type: doc_type,
            reference_document_number: doc_number,
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
    pub fn cte_rows(&self, lots: &[String], master: &MasterData) -> Vec<CteRow> {
        let mut rows = Vec::new();
        let mut seen: std::collections::HashSet<(u32, u32)> = Default::default();
        for lot in lots {
            let Some(&id) = self.id_of(lot.as_str()) else {
                continue;
            };
            for &ei in &self.mentions[id as usize] {
                let e = &self.events[ei as usize];
                let Some(cte) = self.cte_of(e, id) else {
                    continue;
                };
                // A transformation is a CTE of what it made.
                let made: Vec<u32> = if cte == Cte::Transformation {
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
                        rows.push(self.row(m, e, cte, master));
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
    pub fn cte_rows_for_product(
        &self,
        gtin: &str,
        (from_ms, to_ms): (i64, i64),
        master: &MasterData,
    ) -> Vec<CteRow> {
        let lots: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .filter(|(i, n)| !self.mentions[*i].is_empty() && gtin_of(n).as_deref() == Some(gtin))
            .map(|(_, n)| n.clone())
            .collect();
        let mut rows = self.cte_rows(&lots, master);
        rows.retain(|r| (from_ms..=to_ms).contains(&r.time_ms));
        rows
    }
}

/// A row's cells, in [`COLUMNS`]' order.
pub fn cells(r: &CteRow) -> [String; COLUMNS.len()] {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let id = |l: &Option<Location>| l.as_ref().map(|l| l.id.clone()).unwrap_or_default();
    let desc = |l: &Option<Location>| {
        l.as_ref()
            .map(|l| l.description.clone())
            .unwrap_or_default()
    };
    [
        r.traceability_lot_code.clone(),
        id(&r.traceability_lot_code_source),
        desc(&r.traceability_lot_code_source),
        r.product_description.clone(),
        r.quantity.map(|q| q.to_string()).unwrap_or_default(),
        opt(&r.unit_of_measure),
        r.cte.name().to_string(),
        r.event_time.clone(),
        id(&r.location),
        desc(&r.location),
        id(&r.previous_source),
        desc(&r.previous_source),
        id(&r.subsequent_recipient),
        desc(&r.subsequent_recipient),
        id(&r.harvest_location),
        desc(&r.harvest_location),
        opt(&r.harvest_date),
        id(&r.cooling_location),
        desc(&r.cooling_location),
        opt(&r.cooling_date),
        opt(&r.input_traceability_lot_codes),
        opt(&r.input_quantities),
        r.reference_document_type.clone(),
        r.reference_document_number.clone(),
        r.epcis_event_id.clone(),
        r.ledger_entry.clone(),
        r.time_ms.to_string(),
    ]
}

/// The rows as CSV (RFC 4180), header first.
pub fn to_csv(rows: &[CteRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("writing to memory");
    for r in rows {
        w.write_record(cells(r)).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 fields")
}

#[cfg(test)]
mod tests {
    use ledger::entry::{
        Action, CustodyEvent, Entry, EventKind, IdentityChange, OrgRole, Quantity, Subject,
        SubjectRole,
    };

    use super::super::{build::apply_bytes, Lineage};
    use super::*;

    const FARM: &str = "urn:epc:id:sgln:0614141.00001.0";
    /// The farm's cooler and packing shed: sites of its own.
    const COOLER: &str = "urn:epc:id:sgln:0614141.00001.1";
    const SHED: &str = "urn:epc:id:sgln:0614141.00001.2";
    const CARRIER: &str = "urn:epc:id:sgln:0614141.00004.0";
    const DC: &str = "urn:epc:id:sgln:0614141.00005.0";
    const LOT: &str = "urn:epc:class:lgtin:0614141.010001.L1";
    const CASES: &str = "urn:epc:id:sscc:0614141.0000000001";
    const T: i64 = 1_790_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn event(
        at: &str,
        t: i64,
        kind: EventKind,
        step: &str,
        subjects: Vec<Subject>,
        doc: serde_json::Value,
    ) -> Entry {
        Entry::Custody(CustodyEvent {
            recorded_by: FARM.into(),
            event_id: format!("urn:uuid:{t}-{step}"),
            kind,
            action: Some(if step == "shipping" {
                Action::Observe
            } else {
                Action::Add
            }),
            event_time_ms: t,
            tz_offset_min: 0,
            biz_step: Some(step.into()),
            disposition: None,
            read_point: Some(at.into()),
            biz_location: Some(at.into()),
            subjects,
            readings: Vec::new(),
            document: doc.to_string().into_bytes(),
        })
    }

    fn lot(role: SubjectRole) -> Subject {
        Subject {
            role,
            id: LOT.into(),
            quantity: Some(Quantity {
                milli: 500_000,
                uom: Some("KGM".into()),
            }),
        }
    }

    /// A farm harvests a lot of lettuce, cools it in its cooler, packs it
    /// into cases in its shed and ships it to a DC in a carrier's truck.
    fn world() -> Lineage {
        let org = |org: &str, role| {
            Entry::Identity(IdentityChange::OrgRegistered {
                org: org.into(),
                name: format!("org {}", &org[24..29]),
                role,
                at_ms: T,
            })
        };
        let entries = [
            org(FARM, OrgRole::Grower),
            org(CARRIER, OrgRole::Carrier),
            org(DC, OrgRole::DistributionCentre),
            event(
                FARM,
                T,
                EventKind::Object,
                "commissioning",
                vec![lot(SubjectRole::Object)],
                serde_json::json!({}),
            ),
            event(
                COOLER,
                T + HOUR,
                EventKind::Object,
                "cooling",
                vec![lot(SubjectRole::Object)],
                serde_json::json!({}),
            ),
            event(
                SHED,
                T + 2 * HOUR,
                EventKind::Aggregation,
                "packing",
                vec![
                    Subject {
                        role: SubjectRole::Parent,
                        id: CASES.into(),
                        quantity: None,
                    },
                    lot(SubjectRole::Child),
                ],
                serde_json::json!({}),
            ),
            event(
                SHED,
                T + 3 * HOUR,
                EventKind::Object,
                "shipping",
                vec![lot(SubjectRole::Object)],
                serde_json::json!({
                    "destinationList": [
                        {"type": "possessing_party", "destination": CARRIER},
                        {"type": "location", "destination": DC}
                    ],
                    "bizTransactionList": [{"type": "urn:epcglobal:cbv:btt:bol", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000036:BOL-7"}]
                }),
            ),
        ];
        let mut g = Lineage::new();
        for (i, e) in entries.iter().enumerate() {
            apply_bytes(&mut g, 0, i as u64, &e.to_bytes());
        }
        g
    }

    fn master() -> MasterData {
        let gln = |g: &str| gs1::gln_of(&format!("https://id.gs1.org/414/{g}")).unwrap();
        MasterData {
            products: [("00614141100019".to_string(), "Romaine lettuce".to_string())].into(),
            places: [(
                gln("0614141000012"),
                Place {
                    address: "1200 Abbott St, Salinas".into(),
                    phone: "+1 831 555 0101".into(),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_raw_commodity_has_its_harvest_cooling_and_initial_packing_with_their_kdes() {
        let g = world();
        let rows = g.cte_rows(&[LOT.to_string()], &master());
        let kinds: Vec<Cte> = rows.iter().map(|r| r.cte).collect();
        assert_eq!(
            kinds,
            [
                Cte::Harvesting,
                Cte::Cooling,
                Cte::InitialPacking,
                Cte::Shipping
            ]
        );
        for r in &rows {
            let cells = cells(r);
            for col in required(r.cte) {
                let i = COLUMNS.iter().position(|c| c == col).unwrap();
                assert!(!cells[i].is_empty(), "{:?} lacks {col}: {r:#?}", r.cte);
            }
            // Every location's recipient is the DC, never the carrier.
            if let Some(to) = &r.subsequent_recipient {
                assert_eq!(to.id, DC, "{:?}", r.cte);
            }
            assert_eq!(r.product_description, "Romaine lettuce");
        }
        let (harvest, cooling, packing, shipping) = (&rows[0], &rows[1], &rows[2], &rows[3]);
        assert_eq!(cooling.harvest_location.as_ref().unwrap().id, FARM);
        assert_eq!(
            cooling.harvest_date.as_deref(),
            Some(harvest.event_time.as_str())
        );
        assert_eq!(packing.cooling_location.as_ref().unwrap().id, COOLER);
        assert_eq!(
            packing.cooling_date.as_deref(),
            Some(cooling.event_time.as_str())
        );
        // The farm's description: its registered name, address and phone.
        let farm = harvest.location.as_ref().unwrap();
        assert_eq!(
            farm.description,
            "org 00001; 1200 Abbott St, Salinas; phone +1 831 555 0101"
        );
        assert_eq!(shipping.reference_document_type, "bol");
        assert_eq!(
            shipping.reference_document_number,
            "urn:epcglobal:cbv:bt:0614141000036:BOL-7"
        );
        assert_eq!(harvest.reference_document_type, "EPCIS event");
    }
}
