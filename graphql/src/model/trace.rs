//! Traces and co-exposure.

use super::*;

#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Descendants: what was made from the lot.
    Forward,
    /// Ancestors: what the lot was made from.
    Backward,
}

/// A trace: the lots reached, each with how it was reached.
pub struct Trace {
    pub root: String,
    pub direction: Direction,
    pub lots: Page<TracedLot>,
    pub cuts: Vec<String>,
}

#[Object]
impl Trace {
    /// The traced lot.
    pub(super) async fn root(&self) -> Lot {
        Lot(self.root.clone())
    }
    /// FORWARD (descendants) or BACKWARD (ancestors).
    pub(super) async fn direction(&self) -> Direction {
        self.direction
    }
    /// The lot itself first (depth 0), then the others in the order reached.
    pub(super) async fn lots(&self) -> &Page<TracedLot> {
        &self.lots
    }
    /// What the walk left out and why (cycles, fan-out, budget), in words.
    pub(super) async fn cuts(&self) -> &[String] {
        &self.cuts
    }
}

/// A lot a trace reached.
#[derive(Clone)]
pub struct TracedLot(pub Arc<analytics::lineage::TracedLot>);

#[Object]
impl TracedLot {
    /// The lot reached.
    pub(super) async fn lot(&self) -> Lot {
        Lot(self.0.lot.clone())
    }
    /// Transformations from the traced lot (0: the lot itself).
    pub(super) async fn depth(&self) -> u32 {
        self.0.depth
    }
    /// The transformations that link it to a lot one step closer.
    pub(super) async fn links(&self) -> Vec<TraceLink> {
        self.0.links.iter().cloned().map(TraceLink).collect()
    }
}

pub struct TraceLink(pub analytics::lineage::Link);

#[Object]
impl TraceLink {
    /// The lot one step closer to the traced one.
    pub(super) async fn from(&self) -> Lot {
        Lot(self.0.from.clone())
    }
    /// The transformation event.
    pub(super) async fn event(&self) -> Event {
        Event(self.0.event.clone())
    }
    /// How much of the input went in (e.g. kg).
    pub(super) async fn input_quantity(&self) -> Option<Quantity> {
        self.0.input_quantity.as_ref().map(Quantity::from)
    }
    /// How much of the output came out (e.g. kg).
    pub(super) async fn output_quantity(&self) -> Option<Quantity> {
        self.0.output_quantity.as_ref().map(Quantity::from)
    }
}

/// A lot (or container) that shared a container, logger or place with the
/// asked-about lot.
#[derive(Clone)]
pub struct Exposure(pub analytics::lineage::Exposure);

#[Object]
impl Exposure {
    /// The other lot or container.
    pub(super) async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The other lot, when the subject is a lot.
    pub(super) async fn lot(&self) -> Option<Lot> {
        analytics::watches::gtin_of(&self.0.subject).map(|_| Lot(self.0.subject.clone()))
    }
    /// The container, pallet, reefer, logger or location they shared.
    pub(super) async fn shared(&self) -> &str {
        &self.0.shared
    }
    /// aggregation (in a container), association (under a logger or reefer)
    /// or location (at the same place at the same time).
    pub(super) async fn how(&self) -> &str {
        self.0.how
    }
    /// When the shared stay began (within the asked interval).
    pub(super) async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// When it ended; none while it lasts.
    pub(super) async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
    /// The events that put each there.
    pub(super) async fn entries(&self) -> Vec<Entry> {
        self.0.entries.iter().copied().map(Entry).collect()
    }
}
