//! Co-exposure: the lots that shared a container, pallet, reefer, logger or location with a lot during an interval, each with the entries that put both there.

use super::*;

/// A lot that shared something with the traced one during the interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    /// The other lot (or container) held or watched with it.
    pub subject: String,
    /// The container, pallet, reefer, logger or location they shared.
    pub shared: String,
    /// `aggregation` (held in a container), `association` (under a logger or
    /// reefer) or `location` (at the same place at the same time).
    pub how: &'static str,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The events that put each lot there.
    pub entries: Vec<At>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoExposure {
    pub lot: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub exposures: Vec<Exposure>,
}

impl Lineage {
    /// Lots that shared a container, pallet, reefer or logger with `lot` at
    /// some time in `[from_ms, to_ms]`: every parent that held or watched the
    /// lot then, and every other child it held or watched during the overlap.
    pub fn co_exposure(&self, lot: &str, from_ms: i64, to_ms: i64) -> Option<CoExposure> {
        let id = *self.id_of(lot)?;
        let parents = self.parents_of(id);
        let overlaps = |f: i64, t: Option<i64>, a: i64, b: i64| f <= b && t.is_none_or(|t| t > a);
        let mut exposures = Vec::new();
        for p in parents {
            let parent = self.name(p);
            let watches = self.watches.of_parent(parent);
            for mine in watches
                .iter()
                .filter(|w| w.child == lot && overlaps(w.from_ms, w.to_ms, from_ms, to_ms))
            {
                let a = mine.from_ms.max(from_ms);
                let b = mine.to_ms.map_or(to_ms, |t| t.min(to_ms));
                for other in watches.iter().filter(|w| {
                    w.child != lot && w.kind == mine.kind && overlaps(w.from_ms, w.to_ms, a, b)
                }) {
                    exposures.push(Exposure {
                        subject: other.child.clone(),
                        shared: parent.to_string(),
                        how: match mine.kind {
                            WatchKind::Aggregation => "aggregation",
                            WatchKind::Association => "association",
                        },
                        from_ms: a.max(other.from_ms),
                        to_ms: match (other.to_ms, mine.to_ms) {
                            (Some(x), Some(y)) => Some(x.min(y).min(to_ms)),
                            (Some(x), None) | (None, Some(x)) => Some(x.min(to_ms)),
                            (None, None) => None,
                        },
                        entries: vec![
                            At::from(&mine.at.to_entry_ref()),
                            At::from(&other.at.to_entry_ref()),
                        ],
                    });
                }
            }
        }
        self.shared_locations(id, from_ms, to_ms, &mut exposures);
        exposures.sort_by(|x, y| {
            (&x.subject, &x.shared, x.from_ms).cmp(&(&y.subject, &y.shared, y.from_ms))
        });
        exposures.dedup();
        Some(CoExposure {
            lot: lot.to_string(),
            from_ms,
            to_ms,
            exposures,
        })
    }
}

/// Where a lot was, and when: (location, from, until, the event that put it there).
pub(super) type Presence = (u32, i64, Option<i64>, At);

impl Lineage {
    /// A lot's stays: from an event at a location until its next event
    /// elsewhere; shipping, selling, destroying it or consuming it in a
    /// transformation ends the stay where it happens.
    pub(super) fn presence(&self, lot: u32) -> Vec<Presence> {
        let mut out: Vec<Presence> = Vec::new();
        for e in self.events_of(lot) {
            let Some(loc) = e.location else { continue };
            // Shipped from here, sold, destroyed, or consumed by a transformation:
            // the lot is no longer here after this event.
            let leaving = e
                .biz_step
                .map(|s| query::cbv_bare(self.name(s)))
                .is_some_and(|s| {
                    matches!(
                        s,
                        "shipping"
                            | "departing"
                            | "retail_selling"
                            | "destroying"
                            | "decommissioning"
                    )
                })
                || e.action == Some(Action::Delete) && e.kind == EventKind::Object
                || e.subjects
                    .iter()
                    .any(|m| m.id == lot && m.role == SubjectRole::Input);
            match out.last_mut() {
                // Still there: a shipment from here ends the stay.
                Some(last) if last.0 == loc && last.2.is_none() => {
                    if leaving {
                        last.2 = Some(e.time_ms);
                    }
                    continue;
                }
                // Seen elsewhere: the stay before ended.
                Some(last) if last.2.is_none() => last.2 = Some(e.time_ms),
                _ => {}
            }
            if !leaving {
                out.push((loc, e.time_ms, None, e.at));
            }
        }
        out
    }

    /// Lots at the same location as `lot` at the same time, within the interval.
    pub(super) fn shared_locations(
        &self,
        lot: u32,
        from_ms: i64,
        to_ms: i64,
        out: &mut Vec<Exposure>,
    ) {
        let overlaps = |f: i64, t: Option<i64>, a: i64, b: i64| f <= b && t.is_none_or(|t| t > a);
        for (loc, f, t, at) in self.presence(lot) {
            if !overlaps(f, t, from_ms, to_ms) {
                continue;
            }
            let (a, b) = (f.max(from_ms), t.map_or(to_ms, |t| t.min(to_ms)));
            let mut others: Vec<u32> = Vec::new();
            for &ei in self.at_location.get(&loc).map_or(&[][..], Vec::as_slice) {
                let e = &self.events[ei as usize];
                if e.time_ms > b {
                    continue;
                }
                for m in &e.subjects {
                    if m.id != lot
                        && m.role != SubjectRole::Parent
                        && !others.contains(&m.id)
                        && crate::watches::gtin_of(self.name(m.id)).is_some()
                    {
                        others.push(m.id);
                    }
                }
            }
            for o in others {
                for (oloc, of, ot, oat) in self.presence(o) {
                    if oloc == loc && overlaps(of, ot, a, b) {
                        out.push(Exposure {
                            subject: self.name(o).to_string(),
                            shared: self.name(loc).to_string(),
                            how: "location",
                            from_ms: a.max(of),
                            to_ms: match ot {
                                Some(x) => Some(x.min(b)),
                                None => t.map(|t| t.min(b)),
                            },
                            entries: vec![at, oat],
                        });
                    }
                }
            }
        }
    }
}
