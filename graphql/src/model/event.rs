//! Custody events and the quantities they name.

use super::*;

/// A quantity as the event gave it.
#[derive(SimpleObject, Clone)]
pub struct Quantity {
    /// The amount, in `uom` (e.g. 500 with KGM: 500 kg).
    pub value: f64,
    /// UN/CEFACT unit code (KGM: kg), when given.
    pub uom: Option<String>,
}

impl From<&analytics::lineage::QuantityView> for Quantity {
    fn from(q: &analytics::lineage::QuantityView) -> Quantity {
        Quantity {
            value: q.value,
            uom: q.uom.clone(),
        }
    }
}

/// Whether an event counts: its organisation held what it acts on (see
/// ARCHITECTURE.md, "Who may say what").
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventStanding {
    /// It counts: traces, holders, pages and read grants follow it.
    Counted,
    /// A third party's observation of a lot it does not hold: labelled, it
    /// moves nothing.
    Observation,
    /// Not consistent with custody yet (a receipt before its shipment):
    /// it counts once the hand-off that makes it consistent arrives.
    Pending,
    /// Pending for over a week of the ledger's events: changes nothing.
    Disputed,
}

impl From<analytics::lineage::Standing> for EventStanding {
    fn from(s: analytics::lineage::Standing) -> EventStanding {
        use analytics::lineage::Standing as S;
        match s {
            S::Counted => EventStanding::Counted,
            S::Observation => EventStanding::Observation,
            S::Pending => EventStanding::Pending,
            S::Disputed => EventStanding::Disputed,
        }
    }
}

/// An EPCIS event as the ledger records it.
#[derive(Clone)]
pub struct Event(pub EventView);

#[Object]
impl Event {
    /// The EPCIS eventID.
    pub(super) async fn event_id(&self) -> &str {
        &self.0.event_id
    }
    /// Whether it counts (custody); events that do not are shown to their
    /// recorder and to investigators only where they are listed.
    pub(super) async fn standing(&self) -> EventStanding {
        self.0.standing.into()
    }
    /// ObjectEvent, AggregationEvent, TransformationEvent, AssociationEvent, TransactionEvent.
    pub(super) async fn event_type(&self) -> &str {
        self.0.event_type
    }
    /// ADD, OBSERVE or DELETE (none for transformations).
    pub(super) async fn action(&self) -> Option<&str> {
        self.0.action
    }
    /// The CBV business step (e.g. `shipping`, as the event gave it).
    pub(super) async fn biz_step(&self) -> Option<&str> {
        self.0.biz_step.as_deref()
    }
    /// The CBV disposition (e.g. `in_transit`), as the event gave it.
    pub(super) async fn disposition(&self) -> Option<&str> {
        self.0.disposition.as_deref()
    }
    /// When it happened (`eventTime`).
    pub(super) async fn time(&self) -> DateTime<Utc> {
        time(self.0.time_ms)
    }
    /// The business location, or without one the read point.
    pub(super) async fn location(&self) -> Option<Location> {
        self.0.location.clone().map(Location)
    }
    /// The organisation that captured it.
    pub(super) async fn recorded_by(&self) -> Organization {
        Organization(self.0.recorded_by.clone())
    }
    /// The ledger entry that records it.
    pub(super) async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}
