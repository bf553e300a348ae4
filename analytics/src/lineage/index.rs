//! The EPCIS query indexes: every event's number under each value of its
//! single-valued fields (type, action, step, disposition, read point,
//! business location, event id), and all events, each list in cursor order
//! (eventTime, then shard and index). A query reads its page from the most
//! selective list, starting where the page starts, instead of scanning and
//! sorting every event (`query.rs`).
//!
//! Values that are compared rather than matched (sensor readings, times,
//! extension fields' numbers) are filed on *axes*: each axis cut into
//! buckets of nearby values (`doc_query` decides the cut), a list per
//! bucket, so a range of values is the union of a few lists.
//!
//! Invariant: every list holds each event at most once, ordered by
//! [`Cursor`]; an event is in `all` and in one list per field it has. An
//! event may be in several lists a query merges (two readings in two
//! buckets): the merged walk hands it out once.

use std::collections::{BTreeMap, HashMap};

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
    /// By a document key (`doc_query::doc_index`): what only the captured
    /// event holds, by value.
    Doc,
    /// By every party and place an event names (who recorded it, its read
    /// point and business location, its sources and destinations): what a
    /// partner may read starts from the ones its organisation owns.
    Party,
}

/// Event numbers in cursor order, kept as a few sorted runs (a
/// log-structured merge). An event later than the newest run's last is
/// pushed onto it (events mostly come in time order); a late one starts a
/// run of its own, and the newest runs are merged while the newest is at
/// least half the size of the one before it. An insert costs O(log n)
/// moves amortised, and there are O(log n) runs, which readers merge.
#[derive(Debug, Default, Clone)]
pub(super) struct Runs {
    runs: Vec<Vec<u32>>,
}

static EMPTY: Runs = Runs { runs: Vec::new() };

impl Runs {
    /// One run, already in cursor order.
    pub(super) fn sorted(events: Vec<u32>) -> Runs {
        Runs { runs: vec![events] }
    }

    pub(super) fn len(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    fn insert(&mut self, n: u32, key: &impl Fn(u32) -> Cursor) {
        let k = key(n);
        match self.runs.last_mut() {
            Some(last) if last.last().is_none_or(|&m| key(m) < k) => last.push(n),
            _ => self.runs.push(vec![n]),
        }
        while let [.., prev, last] = &self.runs[..] {
            if last.len() * 2 < prev.len() {
                break;
            }
            let last = self.runs.pop().expect("two runs");
            let prev = self.runs.pop().expect("two runs");
            let mut merged = Vec::with_capacity(prev.len() + last.len());
            let (mut i, mut j) = (0, 0);
            while i < prev.len() && j < last.len() {
                if key(prev[i]) < key(last[j]) {
                    merged.push(prev[i]);
                    i += 1;
                } else {
                    merged.push(last[j]);
                    j += 1;
                }
            }
            merged.extend_from_slice(&prev[i..]);
            merged.extend_from_slice(&last[j..]);
            self.runs.push(merged);
        }
    }

    /// The events in cursor order (reversed when `descending`), starting at
    /// the first one `skip` does not hold of. `skip` must hold of a prefix
    /// of the order the walk takes (a suffix of cursor order when
    /// descending).
    pub(super) fn ordered<'a, K: Fn(u32) -> Cursor + 'a>(
        &'a self,
        key: K,
        skip: impl Fn(Cursor) -> bool,
        descending: bool,
    ) -> Ordered<'a, K> {
        ordered_union(&[self], key, skip, descending)
    }
}

/// [`Runs::ordered`] over several lists at once, merged; an event in more
/// than one of them comes out once.
pub(super) fn ordered_union<'a, K: Fn(u32) -> Cursor + 'a>(
    lists: &[&'a Runs],
    key: K,
    skip: impl Fn(Cursor) -> bool,
    descending: bool,
) -> Ordered<'a, K> {
    let runs: Vec<&'a [u32]> = lists
        .iter()
        .flat_map(|l| l.runs.iter().map(Vec::as_slice))
        .collect();
    let mut next = Vec::with_capacity(runs.len());
    let mut heap = std::collections::BinaryHeap::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        // Ascending: the index of the next event; descending: how many
        // are left before it.
        let at = if descending {
            run.partition_point(|&m| !skip(key(m)))
        } else {
            run.partition_point(|&m| skip(key(m)))
        };
        let first = if descending {
            at.checked_sub(1)
        } else {
            (at < run.len()).then_some(at)
        };
        if let Some(f) = first {
            heap.push(Head {
                cursor: key(run[f]),
                run: i,
                descending,
            });
        }
        next.push(at);
    }
    Ordered {
        runs,
        next,
        heap,
        key,
        descending,
        given: None,
    }
}

/// A run's next event in a merged walk. The heap is a max-heap: ascending
/// walks order heads by reversed cursor.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    cursor: Cursor,
    run: usize,
    descending: bool,
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> std::cmp::Ordering {
        let c = self.cursor.cmp(&other.cursor);
        if self.descending {
            c
        } else {
            c.reverse()
        }
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The merged walk [`Runs::ordered`] hands out.
pub(super) struct Ordered<'a, K> {
    runs: Vec<&'a [u32]>,
    next: Vec<usize>,
    heap: std::collections::BinaryHeap<Head>,
    key: K,
    descending: bool,
    /// The cursor last handed out, and the events handed out at it: an
    /// event in several runs comes out of each at its cursor, one after
    /// the other (events sharing a cursor may interleave with it).
    given: Option<(Cursor, Vec<u32>)>,
}

impl<K: Fn(u32) -> Cursor> Iterator for Ordered<'_, K> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            let (cursor, event) = self.step()?;
            match &mut self.given {
                Some((c, events)) if *c == cursor => {
                    if events.contains(&event) {
                        continue;
                    }
                    events.push(event);
                }
                given => *given = Some((cursor, vec![event])),
            }
            return Some(event);
        }
    }
}

impl<K: Fn(u32) -> Cursor> Ordered<'_, K> {
    /// The next event of the merged runs, repeats included.
    fn step(&mut self) -> Option<(Cursor, u32)> {
        let head = self.heap.pop()?;
        let run = self.runs[head.run];
        let at = &mut self.next[head.run];
        let (event, following) = if self.descending {
            *at -= 1;
            (run[*at], at.checked_sub(1))
        } else {
            *at += 1;
            (run[*at - 1], (*at < run.len()).then_some(*at))
        };
        if let Some(f) = following {
            self.heap.push(Head {
                cursor: (self.key)(run[f]),
                run: head.run,
                descending: self.descending,
            });
        }
        Some((head.cursor, event))
    }
}

/// Event numbers by field value, and all of them, in cursor order.
#[derive(Debug, Default, Clone)]
pub(super) struct Index {
    all: Runs,
    by: HashMap<(Field, u32), Runs>,
    /// Bare CBV names (steps, dispositions) as index values: kept apart
    /// from the graph's nodes, which name things.
    cbv: HashMap<String, u32>,
    /// Document keys as index values.
    doc: HashMap<String, u32>,
    /// By axis, the events with a value in each bucket.
    axes: HashMap<String, BTreeMap<i64, Runs>>,
    /// By event id (the graph's node): the first event with it. Ids are
    /// unique but for corrections, which reuse one (`more_ids`): a list per
    /// id would cost two allocations per event.
    by_id: HashMap<u32, u32>,
    more_ids: HashMap<u32, Vec<u32>>,
    /// By shard, its events in entry order: what a span of record times
    /// (a window of entry indices) holds.
    by_shard: Vec<Vec<u32>>,
}

impl Index {
    /// The index value of a bare CBV name, made on first sight.
    pub(super) fn cbv_value(&mut self, bare: &str) -> u32 {
        let next = self.cbv.len() as u32;
        *self.cbv.entry(bare.to_string()).or_insert(next)
    }

    /// The index value of a document key, made on first sight.
    pub(super) fn doc_value(&mut self, key: &str) -> u32 {
        let next = self.doc.len() as u32;
        *self.doc.entry(key.to_string()).or_insert(next)
    }

    /// The index value of a document key, if any event had it.
    pub(super) fn doc_known(&self, key: &str) -> Option<u32> {
        self.doc.get(key).copied()
    }

    /// The index value of a bare CBV name, if any event had it.
    pub(super) fn cbv_known(&self, bare: &str) -> Option<u32> {
        self.cbv.get(bare).copied()
    }

    /// Files event `n`, whose id is the node `event_id`, under `fields`
    /// and in the buckets `ranked` names (axis, bucket); `key` gives any
    /// event's cursor.
    pub(super) fn insert(
        &mut self,
        n: u32,
        event_id: u32,
        fields: &[(Field, u32)],
        ranked: &[(String, i64)],
        key: impl Fn(u32) -> Cursor,
    ) {
        if let Some(&first) = self.by_id.get(&event_id) {
            self.more_ids.entry(first).or_default().push(n);
        } else {
            self.by_id.insert(event_id, n);
        }
        self.all.insert(n, &key);
        for f in fields {
            self.by.entry(*f).or_default().insert(n, &key);
        }
        let mut ranked: Vec<&(String, i64)> = ranked.iter().collect();
        ranked.sort();
        ranked.dedup();
        for (axis, bucket) in ranked {
            let buckets = match self.axes.get_mut(axis) {
                Some(b) => b,
                None => self.axes.entry(axis.clone()).or_default(),
            };
            buckets.entry(*bucket).or_default().insert(n, &key);
        }
        let c = key(n);
        let shard = c.shard as usize;
        if self.by_shard.len() <= shard {
            self.by_shard.resize_with(shard + 1, Vec::new);
        }
        // A shard's entries are read in order; should one come late, it
        // still goes where its index puts it.
        let list = &mut self.by_shard[shard];
        if list.last().is_none_or(|&m| key(m).index < c.index) {
            list.push(n);
        } else {
            let at = list.partition_point(|&m| key(m).index < c.index);
            list.insert(at, n);
        }
    }

    /// Per shard, the range of `by_shard` that window `w` holds.
    fn window_ranges<'a>(
        &'a self,
        w: &'a super::query::RecordWindow,
        key: &'a impl Fn(u32) -> Cursor,
    ) -> impl Iterator<Item = &'a [u32]> + 'a {
        self.by_shard.iter().enumerate().map(move |(s, list)| {
            let from = w.from.get(s).copied().unwrap_or(0);
            let lo = list.partition_point(|&m| key(m).index < from);
            let hi = match w.to.get(s).copied().flatten() {
                Some(to) => list.partition_point(|&m| key(m).index < to),
                None => list.len(),
            };
            &list[lo..hi.max(lo)]
        })
    }

    /// How many events window `w` holds.
    pub(super) fn window_len(
        &self,
        w: &super::query::RecordWindow,
        key: impl Fn(u32) -> Cursor,
    ) -> usize {
        self.window_ranges(w, &key).map(<[u32]>::len).sum()
    }

    /// The events window `w` holds (in no particular order).
    pub(super) fn in_window(
        &self,
        w: &super::query::RecordWindow,
        key: impl Fn(u32) -> Cursor,
    ) -> Vec<u32> {
        self.window_ranges(w, &key).flatten().copied().collect()
    }

    /// The events with the id whose node is `event_id`, in no order.
    pub(super) fn with_id(&self, event_id: u32) -> Vec<u32> {
        let Some(&first) = self.by_id.get(&event_id) else {
            return Vec::new();
        };
        let mut out = vec![first];
        out.extend(self.more_ids.get(&first).into_iter().flatten());
        out
    }

    /// Every event.
    pub(super) fn all(&self) -> &Runs {
        &self.all
    }

    /// The events with `value` in `field`.
    pub(super) fn list(&self, field: Field, value: u32) -> &Runs {
        self.by.get(&(field, value)).unwrap_or(&EMPTY)
    }

    /// The lists of `axis`'s buckets from `low` to `high`, both included;
    /// an event can be in more than one.
    pub(super) fn buckets(&self, axis: &str, low: i64, high: i64) -> Vec<&Runs> {
        match self.axes.get(axis) {
            Some(b) if low <= high => b.range(low..=high).map(|(_, r)| r).collect(),
            _ => Vec::new(),
        }
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
            ix.insert(n, 1_000 + n % 3, &fields, &[], key);
        }
        let walk = |r: &Runs, desc: bool| r.ordered(key, |_| false, desc).collect::<Vec<_>>();
        assert_eq!(walk(ix.all(), false), [6, 1, 4, 0, 3, 2, 5]);
        assert_eq!(walk(ix.all(), true), [5, 2, 3, 0, 4, 1, 6]);
        assert_eq!(walk(ix.list(Field::BizStep, step), false), [6, 4, 0, 2]);
        assert_eq!(ix.list(Field::BizStep, step).len(), 4);
        assert!(walk(ix.list(Field::Disposition, step), false).is_empty());
        assert_eq!(ix.cbv_known("receiving"), None);
        assert_eq!(ix.with_id(1_000), [0, 3, 6]);
        assert!(ix.with_id(7).is_empty());
        // Starting places, either way.
        let after = key(0);
        let from = |desc: bool| {
            ix.all()
                .ordered(key, |c| if desc { c >= after } else { c <= after }, desc)
                .collect::<Vec<_>>()
        };
        assert_eq!(from(false), [3, 2, 5]);
        assert_eq!(from(true), [4, 1, 6]);
    }

    #[test]
    fn a_range_of_buckets_gives_each_event_once_in_cursor_order() {
        // Event n has readings in buckets n % 4 and (n + 1) % 4 of one axis,
        // and event 3 twice in bucket 0 (filed once).
        let times = [4_i64, 2, 8, 6, 0, 2];
        let key = |n: u32| Cursor {
            time_ms: times[n as usize],
            shard: 0,
            index: n as u64,
        };
        let mut ix = Index::default();
        for n in 0..times.len() as u32 {
            let mut ranked = vec![
                ("value".to_string(), i64::from(n % 4)),
                ("value".to_string(), i64::from((n + 1) % 4)),
            ];
            if n == 3 {
                ranked.push(("value".to_string(), 0));
            }
            ix.insert(n, n, &[], &ranked, key);
        }
        let walk = |low: i64, high: i64, desc: bool| {
            ordered_union(&ix.buckets("value", low, high), key, |_| false, desc).collect::<Vec<_>>()
        };
        // Buckets 1 and 2: events 0, 1, 2, 4 and 5 (0 in bucket 1, 1 in
        // both, 2 in 2, 4 in 1, 5 in 1 and 2).
        assert_eq!(walk(1, 2, false), [4, 1, 5, 0, 2]);
        assert_eq!(walk(1, 2, true), [2, 0, 5, 1, 4]);
        assert_eq!(walk(0, 0, false), [4, 0, 3]);
        assert_eq!(ix.buckets("value", 0, 0)[0].len(), 3);
        assert!(walk(5, 9, false).is_empty());
        assert!(walk(2, 1, false).is_empty());
        assert!(ix.buckets("other", 0, 9).is_empty());
    }

    #[test]
    fn many_late_events_keep_few_runs_and_one_order() {
        // A hundred thousand events out of order, as interleaved lots give.
        let n = 100_000u32;
        let times: Vec<i64> = (0..n as i64).map(|i| (i * 7_919) % 100_003).collect();
        let key = |m: u32| Cursor {
            time_ms: times[m as usize],
            shard: 0,
            index: m as u64,
        };
        let mut runs = Runs::default();
        for m in 0..n {
            runs.insert(m, &key);
            assert!(
                runs.runs.len() <= 2 * (usize::BITS - (m as usize + 1).leading_zeros()) as usize
            );
        }
        let walked: Vec<u32> = runs.ordered(key, |_| false, false).collect();
        assert_eq!(walked.len(), n as usize);
        assert!(walked.windows(2).all(|w| key(w[0]) < key(w[1])));
    }
}
