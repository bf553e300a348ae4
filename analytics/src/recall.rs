//! Recalls: what an investigator opens for a lot, computed from lineage, and
//! the state of every recall as its ledger entries record it.
//!
//! A recall is named by the id of the entry that opened it. Opening records
//! the affected set (the lot, every lot made from it, and optionally the lots
//! co-exposed with it and their descendants); widening adds lots; closing
//! ends it. Each change is one `recall` entry; [`Recalls`] is derived from them
//! (in the lineage graph, `lineage::recalls`); this module plans changes.

use ledger::entry::RecallChange;
use ledger::Digest;
use serde::Serialize;

use crate::lineage::recalls::lot_key;
pub use crate::lineage::recalls::{Recall, Recalls, Step};
use crate::lineage::{At, Cut, Direction, Limits, Lineage};
use crate::watches::gtin_of;

/// A recall names at most this many lots; a larger set is refused (narrow it).
pub const MAX_RECALLED_LOTS: usize = 50_000;
/// Entries cited as a recall's evidence, at most.
pub const MAX_EVIDENCE: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecallError {
    #[error("no event names {0:?}; give the lot exactly as its events name it")]
    UnknownLot(String),
    #[error("the recall would name {0} lots (at most {MAX_RECALLED_LOTS}); recall a narrower lot")]
    TooLarge(usize),
    #[error("no recall {0}")]
    UnknownRecall(String),
    #[error("recall {0} is closed")]
    Closed(String),
    #[error("a recall needs a reason")]
    NoReason,
}

/// What a recall of a lot names: the lots and the entries they were found by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectedSet {
    pub lots: Vec<String>,
    pub evidence: Vec<At>,
    /// What the traces left out (a recall over a cut trace says so).
    pub cut: Vec<Cut>,
}

/// `lot`, every lot made from it, and, with an interval, every lot that
/// shared a container or logger with it then, with their descendants.
pub fn affected(
    lineage: &Lineage,
    lot: &str,
    co_exposed: Option<(i64, i64)>,
) -> Result<AffectedSet, RecallError> {
    let mut roots = vec![lot.to_string()];
    let mut evidence: Vec<At> = Vec::new();
    if let Some((from, to)) = co_exposed {
        if let Some(c) = lineage.co_exposure(lot, from, to) {
            for x in c.exposures {
                // Lots only: a shared pallet is the route, not the product.
                if gtin_of(&x.subject).is_some() && !roots.contains(&x.subject) {
                    roots.push(x.subject);
                }
                evidence.extend(x.entries);
            }
        }
    }
    let mut lots: Vec<String> = Vec::new();
    let mut cut = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let Some(t) = lineage.trace(root, Direction::Forward, Limits::default()) else {
            if i == 0 {
                return Err(RecallError::UnknownLot(lot.to_string()));
            }
            continue;
        };
        for l in &t.lots {
            if !lots.contains(&l.lot) {
                lots.push(l.lot.clone());
            }
            evidence.extend(l.links.iter().map(|k| k.event.entry));
        }
        cut.extend(t.cut);
        if lots.len() > MAX_RECALLED_LOTS {
            return Err(RecallError::TooLarge(lots.len()));
        }
    }
    evidence.sort_by_key(|a| (a.shard, a.index));
    evidence.dedup();
    evidence.truncate(MAX_EVIDENCE);
    Ok(AffectedSet {
        lots,
        evidence,
        cut,
    })
}

/// The entry that opens a recall of `lot`.
pub fn open(
    lineage: &Lineage,
    lot: &str,
    reason: &str,
    by: &str,
    at_ms: i64,
    co_exposed: Option<(i64, i64)>,
) -> Result<(RecallChange, AffectedSet), RecallError> {
    if reason.trim().is_empty() {
        return Err(RecallError::NoReason);
    }
    let set = affected(lineage, lot, co_exposed)?;
    Ok((
        RecallChange::Opened {
            lot: lot.to_string(),
            reason: reason.to_string(),
            by: by.to_string(),
            at_ms,
            affected: set.lots.clone(),
            evidence: set.evidence.iter().map(At::entry_ref).collect(),
        },
        set,
    ))
}

/// The entry that widens recall `id` with `lot` and its descendants (those
/// not yet recalled), and the recall's home lot (where its entries go).
pub fn widen(
    lineage: &Lineage,
    id: &str,
    lot: &str,
    reason: &str,
    by: &str,
    at_ms: i64,
) -> Result<(RecallChange, String, AffectedSet), RecallError> {
    let r = still_open(lineage, id, reason)?;
    let mut set = affected(lineage, lot, None)?;
    set.lots.retain(|l| !r.affected.contains(l));
    Ok((
        RecallChange::Widened {
            recall: Digest::from_hex(id).expect("checked by still_open"),
            reason: reason.to_string(),
            by: by.to_string(),
            at_ms,
            added: set.lots.clone(),
            evidence: set.evidence.iter().map(At::entry_ref).collect(),
        },
        r.lot.clone(),
        set,
    ))
}

/// The entry that closes recall `id`, and its home lot.
pub fn close(
    lineage: &Lineage,
    id: &str,
    reason: &str,
    by: &str,
    at_ms: i64,
) -> Result<(RecallChange, String), RecallError> {
    let r = still_open(lineage, id, reason)?;
    Ok((
        RecallChange::Closed {
            recall: Digest::from_hex(id).expect("checked by still_open"),
            reason: reason.to_string(),
            by: by.to_string(),
            at_ms,
        },
        r.lot.clone(),
    ))
}

/// A recall change as its caller asks for it, before it is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Open {
        lot: String,
        reason: String,
    },
    Widen {
        id: String,
        lot: String,
        reason: String,
    },
    Close {
        id: String,
        reason: String,
    },
}

/// The step an earlier attempt of `ask` by `by` committed, if the graph
/// shows one, and the recall's home lot: a retry whose answer was lost is
/// answered with it rather than planned again (which would open a second
/// recall, or refuse to close a closed one). A change of the same recall by
/// someone else since hides a widening or closing; the retry then runs as a
/// new request.
pub fn committed(lineage: &Lineage, ask: &Ask, by: &str) -> Option<(At, String)> {
    let same = |s: &Step, change: &str, reason: &str| {
        s.change == change && s.reason == reason && s.by == by
    };
    match ask {
        // The newest open recall of this very lot that this caller opened
        // for this reason.
        Ask::Open { lot, reason } => lineage
            .recalls()
            .of_lot(lot)
            .into_iter()
            .filter(|r| r.open && lot_key(&r.lot) == lot_key(lot))
            .filter_map(|r| Some((r.history.first()?, r)))
            .filter(|(s, _)| same(s, "opened", reason))
            .max_by_key(|(s, _)| (s.entry.shard, s.entry.index))
            .map(|(s, r)| (s.entry, r.lot.clone())),
        Ask::Widen { id, lot, reason } => {
            let r = lineage.recalls().get(id)?;
            let last = r.history.last()?;
            let named = r.affected.iter().any(|l| lot_key(l) == lot_key(lot));
            (same(last, "widened", reason) && named).then(|| (last.entry, r.lot.clone()))
        }
        Ask::Close { id, reason } => {
            let r = lineage.recalls().get(id)?;
            let last = r.history.last()?;
            (!r.open && same(last, "closed", reason)).then(|| (last.entry, r.lot.clone()))
        }
    }
}

fn still_open<'a>(lineage: &'a Lineage, id: &str, reason: &str) -> Result<&'a Recall, RecallError> {
    if reason.trim().is_empty() {
        return Err(RecallError::NoReason);
    }
    let r = lineage
        .recalls()
        .get(id)
        .ok_or_else(|| RecallError::UnknownRecall(id.to_string()))?;
    if !r.open {
        return Err(RecallError::Closed(id.to_string()));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::entry::EntryRef;

    fn at(i: u64) -> EntryRef {
        EntryRef {
            shard: 0,
            index: i,
            id: Digest([i as u8; 32]),
        }
    }

    #[test]
    fn recalls_follow_their_entries_once_each() {
        let mut r = Recalls::default();
        let by = "urn:epc:id:sgln:0614141.00099.0".to_string();
        let opened = RecallChange::Opened {
            lot: "A".into(),
            reason: "listeria".into(),
            by: by.clone(),
            at_ms: 1,
            affected: vec!["A".into(), "B".into()],
            evidence: vec![],
        };
        r.apply(&at(1), &opened);
        r.apply(&at(1), &opened);
        let id = at(1).id;
        let widened = RecallChange::Widened {
            recall: id,
            reason: "same line".into(),
            by: by.clone(),
            at_ms: 2,
            added: vec!["C".into(), "B".into()],
            evidence: vec![],
        };
        r.apply(&at(2), &widened);
        r.apply(&at(2), &widened);
        let got = r.get(&id.to_hex()).unwrap();
        assert!(got.open);
        assert_eq!(got.affected, ["A", "B", "C"]);
        assert_eq!(got.history.len(), 2, "each entry counts once");
        r.apply(
            &at(3),
            &RecallChange::Closed {
                recall: id,
                reason: "destroyed".into(),
                by,
                at_ms: 3,
            },
        );
        assert!(!r.get(&id.to_hex()).unwrap().open);
        assert_eq!(r.of_lot("C").len(), 1);
        assert!(r.of_lot("Z").is_empty());
        // A change to a recall nobody opened is ignored.
        r.apply(
            &at(9),
            &RecallChange::Closed {
                recall: Digest([7; 32]),
                reason: "x".into(),
                by: "y".into(),
                at_ms: 9,
            },
        );
        assert_eq!(r.all().count(), 1);
    }

    #[test]
    fn a_retried_change_is_found_only_as_its_callers_last_matching_step() {
        let by = "urn:epc:id:sgln:0614141.00099.0";
        let mut g = Lineage::new();
        let open = |reason: &str| Ask::Open {
            lot: "A".into(),
            reason: reason.into(),
        };
        assert_eq!(committed(&g, &open("listeria"), by), None);
        g.apply_recall(
            &at(1),
            &RecallChange::Opened {
                lot: "A".into(),
                reason: "listeria".into(),
                by: by.into(),
                at_ms: 1,
                affected: vec!["A".into(), "B".into()],
                evidence: vec![],
            },
        );
        let id = at(1).id.to_hex();
        let found = Some((At::from(&at(1)), "A".to_string()));
        assert_eq!(committed(&g, &open("listeria"), by), found);
        // Another reason, another caller, or a lot it only names: not it.
        assert_eq!(committed(&g, &open("salmonella"), by), None);
        assert_eq!(committed(&g, &open("listeria"), "someone else"), None);
        let of_b = Ask::Open {
            lot: "B".into(),
            reason: "listeria".into(),
        };
        assert_eq!(committed(&g, &of_b, by), None);

        let widen = Ask::Widen {
            id: id.clone(),
            lot: "C".into(),
            reason: "same line".into(),
        };
        assert_eq!(
            committed(&g, &widen, by),
            None,
            "the last step is the opening"
        );
        g.apply_recall(
            &at(2),
            &RecallChange::Widened {
                recall: at(1).id,
                reason: "same line".into(),
                by: by.into(),
                at_ms: 2,
                added: vec!["C".into()],
                evidence: vec![],
            },
        );
        assert_eq!(
            committed(&g, &widen, by),
            Some((At::from(&at(2)), "A".to_string()))
        );

        let close = Ask::Close {
            id: id.clone(),
            reason: "destroyed".into(),
        };
        assert_eq!(committed(&g, &close, by), None, "still open");
        g.apply_recall(
            &at(3),
            &RecallChange::Closed {
                recall: at(1).id,
                reason: "destroyed".into(),
                by: by.into(),
                at_ms: 3,
            },
        );
        assert_eq!(
            committed(&g, &close, by),
            Some((At::from(&at(3)), "A".to_string()))
        );
        // A step since hides the widening; a closed recall's opening is no
        // longer a retry's answer.
        assert_eq!(committed(&g, &widen, by), None);
        assert_eq!(committed(&g, &open("listeria"), by), None);
    }
}
