//! One lot at a time, as investigators and pages ask for it: what it is,
//! where it is, who may see it, which loggers watched it, and the verdicts
//! the rules recorded about it.

use ledger::entry::{EntryRef, EventKind, RuleVerdict, SubjectRole, VerdictKind};
use serde::Serialize;

use super::{At, EventView, Lineage, QuantityView, Whereabouts};
use crate::watches::{gtin_of, WatchKind};

/// A verdict entry as the graph keeps it.
#[derive(Debug, Clone)]
pub(super) struct VerdictRec {
    at: At,
    subject: u32,
    rule: String,
    kind: VerdictKind,
    from_ms: i64,
    to_ms: Option<i64>,
    explanation: String,
    evidence: Vec<At>,
}

/// A verdict as answers show it: a breach, quarantine, release, suspension
/// or reinstatement, with the entry that records it and the entries it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictView {
    pub entry: At,
    pub subject: String,
    pub rule: String,
    /// breach, quarantine, release, suspend, reinstate.
    pub kind: &'static str,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub explanation: String,
    /// The readings (or other entries) the verdict rests on.
    pub evidence: Vec<At>,
}

/// A lot: its identity, first and latest events, and status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotView {
    /// As events name it.
    pub lot: String,
    /// GTIN-14, when the identifier carries one.
    pub gtin: Option<String>,
    /// The lot number (LGTIN URN's last part, or Digital Link `/10/`).
    pub lot_number: Option<String>,
    /// The quantity the first event that quantifies it gives.
    pub quantity: Option<QuantityView>,
    /// Who recorded the first event that names it (the grower or maker).
    pub origin: String,
    /// The first event that names it.
    pub first_event: EventView,
    pub now: Whereabouts,
    /// The open quarantine verdict, if the lot may not move on.
    pub quarantine: Option<VerdictView>,
    /// Every recall that names it, open or closed.
    pub recalls: Vec<super::recalls::Recall>,
}

/// A logger that watched a lot, directly or through a container, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Watcher {
    pub device: String,
    /// The container it watched the lot through (`None`: the lot itself).
    pub through: Option<String>,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
}

/// Containers inside containers are followed this deep (as the rules'
/// attribution does).
const MAX_NESTING: usize = 4;

impl Lineage {
    /// Takes a committed verdict entry into the graph. Feed each entry once.
    pub fn apply_verdict(&mut self, at: &EntryRef, v: &RuleVerdict) {
        let subject = self.intern(&v.subject);
        let n = self.verdicts.len() as u32;
        self.verdicts.push(VerdictRec {
            at: At::from(at),
            subject,
            rule: v.rule.clone(),
            kind: v.kind,
            from_ms: v.from_ms,
            to_ms: v.to_ms,
            explanation: v.explanation.clone(),
            evidence: v.evidence.iter().map(At::from).collect(),
        });
        self.verdicts_of.entry(subject).or_default().push(n);
    }

    fn verdict_view(&self, v: &VerdictRec) -> VerdictView {
        VerdictView {
            entry: v.at,
            subject: self.name(v.subject).to_string(),
            rule: v.rule.clone(),
            kind: v.kind.name(),
            from_ms: v.from_ms,
            to_ms: v.to_ms,
            explanation: v.explanation.clone(),
            evidence: v.evidence.clone(),
        }
    }

    /// Every verdict recorded, in the order committed (per shard).
    pub fn verdicts(&self) -> impl Iterator<Item = VerdictView> + '_ {
        self.verdicts.iter().map(|v| self.verdict_view(v))
    }

    /// The verdicts about `subject` (a lot, container or device), in order.
    pub fn verdicts_about(&self, subject: &str) -> Vec<VerdictView> {
        let Some(id) = self.id_of(subject) else {
            return Vec::new();
        };
        self.verdicts_of.get(id).map_or_else(Vec::new, |vs| {
            vs.iter()
                .map(|&i| self.verdict_view(&self.verdicts[i as usize]))
                .collect()
        })
    }

    /// The quarantine `lot` is in: the last quarantine verdict about it when
    /// no release came after it.
    pub fn quarantine(&self, lot: &str) -> Option<VerdictView> {
        let mut open = None;
        for v in self.verdicts_about(lot) {
            match v.kind {
                "quarantine" => open = Some(v),
                "release" => open = None,
                _ => {}
            }
        }
        open
    }

    /// The identifier events use for GTIN `gtin` and lot number `lot`: the
    /// LGTIN EPC URN (any company prefix length) or a GS1 Digital Link URI
    /// under any host. `None` when no event names such a lot.
    pub fn lot_named(&self, gtin: &str, lot: &str) -> Option<String> {
        // Every spelling of a GS1 lot is interned under its canonical
        // Digital Link too (URN or link, any host).
        let link = format!("{}/01/{gtin}/10/{}", gs1::CANONICAL_STEM, gs1::encode(lot));
        let id = *self.id_of(&link)?;
        Some(self.name(id).to_string()).filter(|_| self.knows(&link))
    }

    /// `lot` as one answer shows it; `None` if no event names it.
    pub fn lot(&self, lot: &str) -> Option<LotView> {
        let id = *self.id_of(lot)?;
        let events = self.events_of(id);
        let first = *events.first()?;
        let quantity = events.iter().find_map(|e| {
            e.subjects
                .iter()
                .find(|m| m.id == id && m.quantity.is_some())
                .and_then(|m| self.quantity(m.quantity))
        });
        // As events name it, whichever spelling the caller used.
        let name = self.name(id);
        Some(LotView {
            lot: name.to_string(),
            gtin: gtin_of(name),
            lot_number: lot_number(name),
            quantity,
            origin: self.name(first.recorded_by).to_string(),
            first_event: self.view(first),
            now: self.whereabouts(id)?,
            quarantine: self.quarantine(name),
            recalls: self.recalls.of_lot(name).into_iter().cloned().collect(),
        })
    }

    /// The events naming `subject`, in time order.
    pub fn events_about(&self, subject: &str) -> Vec<EventView> {
        self.id_of(subject).map_or_else(Vec::new, |&id| {
            self.events_of(id)
                .into_iter()
                .map(|e| self.view(e))
                .collect()
        })
    }

    /// Third parties' observations of `subject` (inspections by someone who
    /// did not hold it: `Standing::Observation`), in time order: shown
    /// labelled, never part of its journey.
    pub fn observations_about(&self, subject: &str) -> Vec<EventView> {
        let Some(id) = self.id_of(subject) else {
            return Vec::new();
        };
        let mut events: Vec<&super::EventRec> = self
            .uncounted
            .get(id)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&e| &self.events[e as usize])
            .filter(|e| e.standing == super::Standing::Observation)
            .collect();
        events.sort_by_key(|e| (e.time_ms, e.n));
        events.into_iter().map(|e| self.view(e)).collect()
    }

    /// The events at `location` (business location, else read point), in
    /// time order.
    pub fn events_at(&self, location: &str) -> Vec<EventView> {
        let Some(l) = self.id_of(location) else {
            return Vec::new();
        };
        let mut events: Vec<&super::EventRec> = self
            .at_location
            .get(l)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&e| &self.events[e as usize])
            .collect();
        events.sort_by_key(|e| e.time_ms);
        events.into_iter().map(|e| self.view(e)).collect()
    }

    /// Whether any event happened at `location`.
    pub fn knows_location(&self, location: &str) -> bool {
        self.id_of(location)
            .is_some_and(|l| self.at_location.contains_key(l))
    }

    /// The organisation that registered `device`.
    pub fn device_owner(&self, device: &str) -> Option<&str> {
        let d = *self.id_of(device)?;
        self.devices
            .iter()
            .rev()
            .find(|&&(x, _)| x == d)
            .map(|&(_, o)| self.name(o))
    }

    /// The parents (containers, loggers) that held or watched `id` at some
    /// time: those of its aggregation and association events where it is a child.
    pub(super) fn parents_of(&self, id: u32) -> Vec<u32> {
        let mut parents: Vec<u32> = Vec::new();
        for &ei in &self.mentions[id as usize] {
            let e = &self.events[ei as usize];
            if matches!(e.kind, EventKind::Aggregation | EventKind::Association)
                && e.subjects
                    .iter()
                    .any(|m| m.id == id && m.role == SubjectRole::Child)
            {
                for p in e.subjects.iter().filter(|m| m.role == SubjectRole::Parent) {
                    if !parents.contains(&p.id) {
                        parents.push(p.id);
                    }
                }
            }
        }
        parents
    }

    /// The loggers that watched `subject` during `[from_ms, to_ms]`: directly
    /// (association) or by watching a container that held it (aggregation),
    /// each with the part of the interval it watched.
    ///
    /// A logger watching a container is the lot's watcher only when the party
    /// that put it on the container held the lot then (`Watches::watched`).
    pub fn watchers(&self, subject: &str, from_ms: i64, to_ms: i64) -> Vec<Watcher> {
        let mut out = Vec::new();
        let lot = self
            .id_of(subject)
            .is_some_and(|id| !self.containers.contains(id))
            .then_some(subject);
        self.collect_watchers(subject, lot, None, from_ms, to_ms, 0, &mut out);
        out.sort_by(|a, b| (&a.device, a.from_ms).cmp(&(&b.device, b.from_ms)));
        out.dedup();
        out
    }

    /// `lot`: the lot asked about, whose custody a logger on a container
    /// must rest on.
    #[allow(clippy::too_many_arguments)]
    fn collect_watchers(
        &self,
        child: &str,
        lot: Option<&str>,
        through: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        depth: usize,
        out: &mut Vec<Watcher>,
    ) {
        let Some(&id) = self.id_of(child) else {
            return;
        };
        for p in self.parents_of(id) {
            let parent = self.name(p);
            for w in self.watches.of_parent(parent).iter().filter(|w| {
                w.child == child && w.from_ms <= to_ms && w.to_ms.is_none_or(|t| t > from_ms)
            }) {
                let (a, b) = (w.from_ms.max(from_ms), w.to_ms.map(|t| t.min(to_ms)));
                match w.kind {
                    WatchKind::Association
                        if through.is_some()
                            && lot.is_some_and(|l| !self.holds(&w.by, l, b.unwrap_or(to_ms))) => {}
                    WatchKind::Association => out.push(Watcher {
                        device: parent.to_string(),
                        through: through.map(str::to_string),
                        from_ms: a,
                        to_ms: b,
                    }),
                    WatchKind::Aggregation if depth < MAX_NESTING => self.collect_watchers(
                        parent,
                        lot,
                        Some(through.unwrap_or(parent)),
                        a,
                        b.unwrap_or(to_ms),
                        depth + 1,
                        out,
                    ),
                    WatchKind::Aggregation => {}
                }
            }
        }
    }
}

/// The lot number of a lot identifier: an LGTIN URN's last part, or a GS1
/// Digital Link URI's `/10/` value.
pub fn lot_number(id: &str) -> Option<String> {
    if let Some(rest) = id.strip_prefix("urn:epc:class:lgtin:") {
        return rest.splitn(3, '.').nth(2).map(str::to_string);
    }
    let path = id.split(['?', '#']).next()?;
    let mut segs = path.split('/');
    while let Some(s) = segs.next() {
        if s == "10" {
            return segs.next().map(str::to_string);
        }
    }
    None
}
