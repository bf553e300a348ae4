//! Every recall as its ledger entries record it (opened, widened, closed),
//! folded by the lineage graph; `crate::recall` plans changes against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ledger::entry::{EntryRef, RecallChange};
use ledger::Digest;
use serde::Serialize;

use super::At;

/// One change, as the recall's history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub change: &'static str,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
    /// Lots this change added.
    pub added: Vec<String>,
    pub entry: At,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recall {
    /// The id of the entry that opened it, hex.
    pub id: String,
    pub lot: String,
    pub reason: String,
    pub open: bool,
    /// Every lot recalled, in the order added.
    pub affected: Vec<String>,
    pub history: Vec<Step>,
}

/// Every recall on the ledger.
#[derive(Debug, Clone, Default)]
pub struct Recalls {
    by_id: BTreeMap<Digest, Recall>,
    by_lot: HashMap<String, BTreeSet<Digest>>,
}

impl Recalls {
    /// Folds one committed recall entry in; the same entry twice changes nothing.
    pub fn apply(&mut self, at: &EntryRef, change: &RecallChange) {
        let step =
            |change: &'static str, reason: &str, by: &str, at_ms: i64, added: &[String]| Step {
                change,
                reason: reason.to_string(),
                by: by.to_string(),
                at_ms,
                added: added.to_vec(),
                entry: At::from(at),
            };
        let (id, step) = match change {
            RecallChange::Opened {
                lot,
                reason,
                by,
                at_ms,
                affected,
                ..
            } => {
                if self.by_id.contains_key(&at.id) {
                    return;
                }
                self.by_id.insert(
                    at.id,
                    Recall {
                        id: at.id.to_hex(),
                        lot: lot.clone(),
                        reason: reason.clone(),
                        open: true,
                        affected: Vec::new(),
                        history: Vec::new(),
                    },
                );
                (at.id, step("opened", reason, by, *at_ms, affected))
            }
            RecallChange::Widened {
                recall,
                reason,
                by,
                at_ms,
                added,
                ..
            } => (*recall, step("widened", reason, by, *at_ms, added)),
            RecallChange::Closed {
                recall,
                reason,
                by,
                at_ms,
            } => (*recall, step("closed", reason, by, *at_ms, &[])),
        };
        let Some(r) = self.by_id.get_mut(&id) else {
            return;
        };
        if r.history.iter().any(|s| s.entry == step.entry) {
            return;
        }
        for lot in &step.added {
            if !r.affected.contains(lot) {
                r.affected.push(lot.clone());
                self.by_lot.entry(lot_key(lot)).or_default().insert(id);
            }
        }
        if step.change == "closed" {
            r.open = false;
        }
        r.history.push(step);
    }

    pub fn get(&self, id: &str) -> Option<&Recall> {
        Digest::from_hex(id).and_then(|d| self.by_id.get(&d))
    }

    /// The recalls that name `lot` (in any GS1 spelling), open ones first.
    pub fn of_lot(&self, lot: &str) -> Vec<&Recall> {
        let mut v: Vec<&Recall> = self
            .by_lot
            .get(&lot_key(lot))
            .into_iter()
            .flatten()
            .filter_map(|d| self.by_id.get(d))
            .collect();
        v.sort_by_key(|r| !r.open);
        v
    }

    pub fn all(&self) -> impl Iterator<Item = &Recall> {
        self.by_id.values()
    }
}

/// One key per lot whatever GS1 spelling names it: a recall opened for the
/// URN covers the lot its Digital Link names.
pub(crate) fn lot_key(lot: &str) -> String {
    gs1::canonical_id(lot).unwrap_or_else(|| lot.to_string())
}
