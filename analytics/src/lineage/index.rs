//! The EPCIS query indexes: every event's number under each value of its
//! single-valued fields (type, action, step, disposition, read point,
//! business location, event id), and all events, each list in cursor order
//! (eventTime, then shard and index). A query reads its page from the most
//! selective list, starting where the page starts, instead of scanning and
//! sorting every event (`query.rs`).
//!
//! Invariant: every list holds each event at most once, ordered by
//! [`Cursor`]; an event is in `all` and in one list per field it has.

use std::collections::HashMap;

use super::query::Cursor;

/// A field an event has at most one value of, that queries select by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Field {
    Kind,
    Action,
    /// By the step's bare CBV name (`shipping`), however it was written.
    BizStep,
    /// By the disposition's bare CBV name.
    Disposition,
    /// By the graph's node of the location.
    ReadPoint,
    BizLocation,
    /// By the graph's node of the event id.
    EventId,
}

/// Event numbers by field value, and all of them, in cursor order.
#[derive(Debug, Default, Clone)]
pub(super) struct Index {
    all: Vec<u32>,
    by: HashMap<(Field, u32), Vec<u32>>,
    /// Bare CBV names (steps, dispositions) as index values: kept apart
    /// from the graph's nodes, which name things.
    cbv: HashMap<String, u32>,
}

impl Index {
    /// The index value of a bare CBV name, made on first sight.
    pub(super) fn cbv_value(&mut self, bare: &str) -> u32 {
        let next = self.cbv.len() as u32;
        *self.cbv.entry(bare.to_string()).or_insert(next)
    }

    /// The index value of a bare CBV name, if any event had it.
    pub(super) fn cbv_known(&self, bare: &str) -> Option<u32> {
        self.cbv.get(bare).copied()
    }

    /// Files event `n` under `fields`; `key` gives any event's cursor.
    /// Events mostly come in time order, so an insert is mostly a push.
    pub(super) fn insert(&mut self, n: u32, fields: &[(Field, u32)], key: impl Fn(u32) -> Cursor) {
        let k = key(n);
        let put = |list: &mut Vec<u32>| {
            if list.last().is_none_or(|&m| key(m) < k) {
                list.push(n);
            } else {
                let at = list.partition_point(|&m| key(m) < k);
                list.insert(at, n);
            }
        };
        put(&mut self.all);
        for f in fields {
            put(self.by.entry(*f).or_default());
        }
    }

    /// Every event, in cursor order.
    pub(super) fn all(&self) -> &[u32] {
        &self.all
    }

    /// The events with `value` in `field`, in cursor order.
    pub(super) fn list(&self, field: Field, value: u32) -> &[u32] {
        self.by.get(&(field, value)).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_in_cursor_order_whatever_order_events_come_in() {
        let times = [5_i64, 1, 9, 5, 3, 9, 0];
        let key = |n: u32| Cursor {
            time_ms: times[n as usize],
            shard: 0,
            index: n as u64,
        };
        let mut ix = Index::default();
        let step = ix.cbv_value("shipping");
        assert_eq!(ix.cbv_value("shipping"), step);
        for n in 0..times.len() as u32 {
            let fields: Vec<(Field, u32)> = if n % 2 == 0 {
                vec![(Field::BizStep, step)]
            } else {
                vec![]
            };
            ix.insert(n, &fields, key);
        }
        let sorted = |l: &[u32]| l.windows(2).all(|w| key(w[0]) < key(w[1]));
        assert!(sorted(ix.all()));
        assert_eq!(ix.all().len(), times.len());
        assert_eq!(ix.list(Field::BizStep, step), [6, 4, 0, 2]);
        assert!(sorted(ix.list(Field::BizStep, step)));
        assert!(ix.list(Field::Disposition, step).is_empty());
        assert_eq!(ix.cbv_known("receiving"), None);
    }
}
