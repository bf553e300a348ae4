//! Who watched what, when: loggers associated with lots and containers
//! (EPCIS AssociationEvents), and containers holding lots (AggregationEvents).
//!
//! Attribution reads this: a logger's breach applies to what it watched
//! during the excursion (through the containers it watched), not to every lot
//! it ever saw.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use ledger::entry::{Action, CustodyEvent, EventKind, SubjectRole};

use crate::rules::Evidence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchKind {
    /// A logger (the parent) watching a lot or container.
    Association,
    /// A container (the parent) holding a lot or case.
    Aggregation,
}

/// One parent–child interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub kind: WatchKind,
    pub child: String,
    pub from_ms: i64,
    /// `None` while it lasts.
    pub to_ms: Option<i64>,
    pub add_event: String,
    pub remove_event: Option<String>,
    pub at: Evidence,
    /// The party that opened it (its recorder's GLN, `custody::party`).
    pub by: String,
}

impl Watch {
    fn overlaps(&self, from_ms: i64, to_ms: i64) -> bool {
        self.from_ms <= to_ms && self.to_ms.is_none_or(|t| t > from_ms)
    }
}

/// Every watch interval, by parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watches {
    by_parent: BTreeMap<String, Vec<Watch>>,
}

/// Containers inside containers are followed this deep.
const MAX_NESTING: usize = 4;

/// Whether a party (as `Watch::by`) held a lot (as events name it) at a
/// time: custody as the caller keeps it.
pub type Holds<'a> = dyn Fn(&str, &str, i64) -> bool + 'a;

/// Whether an identifier names a container or asset rather than a lot.
fn is_container(id: &str) -> bool {
    gs1::canonical_id(id).is_some_and(|c| crate::custody::is_container(&c))
}

impl Watches {
    /// Takes an event into account (only association and aggregation events
    /// with a parent change anything). `ADD` opens an interval per child,
    /// `DELETE` closes the named children's open intervals, or all of the
    /// parent's when it names none (as EPCIS defines a DELETE without children).
    /// Idempotent: the same event applied twice changes nothing more.
    pub fn apply(&mut self, e: &CustodyEvent, at: &Evidence) {
        let kind = match e.kind {
            EventKind::Association => WatchKind::Association,
            EventKind::Aggregation => WatchKind::Aggregation,
            _ => return,
        };
        let Some(parent) = e.subjects.iter().find(|s| s.role == SubjectRole::Parent) else {
            return;
        };
        let children: Vec<&str> = e
            .subjects
            .iter()
            .filter(|s| s.role == SubjectRole::Child)
            .map(|s| s.id.as_str())
            .collect();
        let list = self.by_parent.entry(parent.id.clone()).or_default();
        match e.action {
            Some(Action::Add) => {
                for c in children {
                    // The same event applied again (read ahead, then in order) changes nothing.
                    if list
                        .iter()
                        .any(|w| w.kind == kind && w.child == c && w.add_event == e.event_id)
                    {
                        continue;
                    }
                    list.push(Watch {
                        kind,
                        child: c.to_string(),
                        from_ms: e.event_time_ms,
                        to_ms: None,
                        add_event: e.event_id.clone(),
                        remove_event: None,
                        at: at.clone(),
                        by: crate::custody::party(&e.recorded_by),
                    });
                }
            }
            Some(Action::Delete) => {
                for w in list
                    .iter_mut()
                    .filter(|w| w.kind == kind && w.to_ms.is_none())
                {
                    if children.is_empty() || children.contains(&w.child.as_str()) {
                        w.to_ms = Some(e.event_time_ms.max(w.from_ms));
                        w.remove_event = Some(e.event_id.clone());
                    }
                }
            }
            Some(Action::Observe) | None => {}
        }
    }

    /// The intervals of one parent (container or logger), in the order opened.
    pub fn of_parent(&self, parent: &str) -> &[Watch] {
        self.by_parent.get(parent).map_or(&[], Vec::as_slice)
    }

    /// Every interval, for the `associations` table.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Watch)> {
        self.by_parent
            .iter()
            .flat_map(|(p, ws)| ws.iter().map(move |w| (p.as_str(), w)))
    }

    /// What `device` watched at some time in `[from_ms, to_ms]`, directly or
    /// inside a container it watched (while the container held it).
    ///
    /// A lot reached through a container counts only when the party that
    /// put the logger on the container held the lot then (`holds`: party,
    /// lot, time): custody does not follow containers, so without this a
    /// rival's logger put on a competitor's pallet would watch the
    /// competitor's lots.
    pub fn watched(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        holds: &Holds,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(list) = self.by_parent.get(device) else {
            return out;
        };
        for w in list
            .iter()
            .filter(|w| w.kind == WatchKind::Association && w.overlaps(from_ms, to_ms))
        {
            out.insert(w.child.clone());
            let (f, t) = (
                from_ms.max(w.from_ms),
                w.to_ms.map_or(to_ms, |x| x.min(to_ms)),
            );
            let mut inside = BTreeSet::new();
            self.collect(&w.child, f, t, 1, &mut inside);
            out.extend(
                inside
                    .into_iter()
                    .filter(|(child, until)| is_container(child) || holds(&w.by, child, *until))
                    .map(|(child, _)| child),
            );
        }
        out
    }

    /// What containers inside `parent` held during `[from_ms, to_ms]`, each
    /// with the end of that time.
    fn collect(
        &self,
        parent: &str,
        from_ms: i64,
        to_ms: i64,
        depth: usize,
        out: &mut BTreeSet<(String, i64)>,
    ) {
        if depth > MAX_NESTING {
            return;
        }
        let Some(list) = self.by_parent.get(parent) else {
            return;
        };
        for w in list
            .iter()
            .filter(|w| w.kind == WatchKind::Aggregation && w.overlaps(from_ms, to_ms))
        {
            let (f, t) = (
                from_ms.max(w.from_ms),
                w.to_ms.map_or(to_ms, |x| x.min(to_ms)),
            );
            if out.insert((w.child.clone(), t)) {
                self.collect(&w.child, f, t, depth + 1, out);
            }
        }
    }

    /// The first subject `device` was set to watch (the earliest association),
    /// through containers: what decides its profile.
    pub fn first_watched(&self, device: &str, holds: &Holds) -> Option<String> {
        let first = self
            .by_parent
            .get(device)?
            .iter()
            .filter(|w| w.kind == WatchKind::Association)
            .min_by_key(|w| w.from_ms)?;
        let all = self.watched(device, first.from_ms, first.from_ms, holds);
        // Prefer a product class (a lot) over a container.
        all.iter()
            .find(|s| gtin_of(s).is_some())
            .cloned()
            .or(Some(first.child.clone()))
    }

    /// Whether `device` watches anything at `at_ms` (a logger on duty: its
    /// silence is missing data).
    pub fn on_watch(&self, device: &str, at_ms: i64) -> bool {
        self.by_parent.get(device).is_some_and(|l| {
            l.iter().any(|w| {
                w.kind == WatchKind::Association
                    && w.from_ms <= at_ms
                    && w.to_ms.is_none_or(|t| t > at_ms)
            })
        })
    }
}

/// The GS1 check digit of a string of digits (mod 10, weights 3 and 1 from
/// the right).
fn check_digit(digits: &str) -> Option<char> {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        sum += u32::from(c - b'0') * if i % 2 == 0 { 3 } else { 1 };
    }
    char::from_digit((10 - sum % 10) % 10, 10)
}

/// The GTIN-14 of a product identifier: an LGTIN or SGTIN EPC URN, or a GS1
/// Digital Link URI with a `/01/` key. `None` for anything else.
pub fn gtin_of(id: &str) -> Option<String> {
    if let Some(rest) = id
        .strip_prefix("urn:epc:class:lgtin:")
        .or_else(|| id.strip_prefix("urn:epc:id:sgtin:"))
    {
        let mut parts = rest.split('.');
        let (prefix, item) = (parts.next()?, parts.next()?);
        if item.is_empty() || prefix.len() + item.len() != 13 {
            return None;
        }
        let body = format!("{}{prefix}{}", &item[..1], &item[1..]);
        let c = check_digit(&body)?;
        return Some(format!("{body}{c}"));
    }
    let path = id.split(['?', '#']).next()?;
    let mut segs = path.split('/');
    while let Some(s) = segs.next() {
        if s == "01" {
            let g = segs.next()?;
            if matches!(g.len(), 8 | 12 | 13 | 14) && g.bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("{g:0>14}"));
            }
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtins_come_from_epc_urns_and_digital_links() {
        assert_eq!(
            gtin_of("urn:epc:class:lgtin:0614141.010001.L00010").as_deref(),
            Some("00614141100019")
        );
        assert_eq!(
            gtin_of("urn:epc:id:sgtin:0614141.107346.2017").as_deref(),
            Some("10614141073464")
        );
        assert_eq!(
            gtin_of("https://id.gs1.org/01/09520123456788/10/ABC?x=1").as_deref(),
            Some("09520123456788")
        );
        assert_eq!(gtin_of("urn:epc:id:sscc:0614141.0000000001"), None);
        assert_eq!(gtin_of("urn:epc:id:giai:0614141.P00001"), None);
    }
}
