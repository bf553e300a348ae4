//! A device's readings over a time range, downsampled (min, max, mean per
//! bucket), read from the ledger itself so every bucket names the entries it
//! rests on.
//!
//! A device's readings entries live on its home shard, which lists the
//! entries about each subject. [`ReadingsIndex`] remembers, per device asked
//! about, the time span of each of its readings entries, learnt the first
//! time they are read; later questions read only the entries whose span
//! meets the range. Everything here is derived and can be dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::lineage::At;

/// Most buckets one answer holds.
pub const MAX_BUCKETS: i64 = 10_000;

/// One bucket of a downsampled series: readings with `from_ms <= t < to_ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub from_ms: i64,
    pub to_ms: i64,
    pub count: u64,
    /// °C.
    pub min_c: f64,
    /// °C.
    pub max_c: f64,
    /// °C, the mean of the readings (not time-weighted).
    pub mean_c: f64,
    /// The readings entries its readings come from.
    pub entries: Vec<At>,
}

/// A device's readings in `[from_ms, to_ms)`, bucket by bucket (empty
/// buckets left out), and how many entries were read to answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub device: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
    pub buckets: Vec<Bucket>,
    pub entries_read: usize,
}

/// Why a series cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("the bucket must be at least 1 ms, and the range must not end before it starts")]
    BadRange,
    #[error(
        "{buckets} buckets asked for; at most {MAX_BUCKETS}: widen the bucket or narrow the range"
    )]
    TooManyBuckets { buckets: i64 },
    #[error(transparent)]
    Shard(#[from] shards::ShardError),
}

/// The time span of one readings entry of a device.
#[derive(Debug, Clone, Copy)]
struct Span {
    index: u64,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Debug, Default)]
struct DeviceSpans {
    /// How many of the shard's entries about the device have been looked at.
    seen: usize,
    spans: Vec<Span>,
}

/// Per device, the time span of each readings entry: derived, learnt lazily.
#[derive(Debug, Default)]
pub struct ReadingsIndex {
    devices: Mutex<HashMap<String, Arc<Mutex<DeviceSpans>>>>,
}

/// Per bucket start: count, min, max, sum (centi-°C) and the entries.
type Acc = (u64, i32, i32, i64, Vec<At>);

/// Most readings one page of [`ReadingsIndex::page`] holds.
pub const MAX_PAGE: usize = 1_000;

/// One reading of a device, its sequence number and the entry it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub seq: u64,
    pub reading: ledger::reading::Reading,
    pub entry: At,
}

/// A page of a device's readings in `[from_ms, to_ms)`, in sequence order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub device: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// How many readings the range holds (that the caller may read), over
    /// all pages.
    pub count: u64,
    pub readings: Vec<Listed>,
    /// The sequence number to continue after, when more follow.
    pub next_after: Option<u64>,
    pub entries_read: usize,
}

impl ReadingsIndex {
    pub fn new() -> ReadingsIndex {
        ReadingsIndex::default()
    }

    /// Calls `each` with every readings entry of `device` that holds a
    /// reading in `[from_ms, to_ms)` (in no particular order); returns how
    /// many entries were read from the store.
    fn visit(
        &self,
        node: &shards::Node,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        each: &mut dyn FnMut(At, ledger::entry::SignedBatch),
    ) -> Result<usize, SeriesError> {
        let shard = node.shard(node.router().shard_for(device))?;
        let spans = Arc::clone(
            self.devices
                .lock()
                .expect("readings index lock")
                .entry(device.to_string())
                .or_default(),
        );
        let mut spans = spans.lock().expect("device spans lock");
        let about = shard.entries_about(device);
        let mut entries_read = 0;
        let mut read =
            |index: u64| -> Result<Option<(At, ledger::entry::SignedBatch)>, SeriesError> {
                let bytes = shard
                    .store()
                    .entry(index)
                    .map_err(shards::ShardError::from)?;
                entries_read += 1;
                Ok(batch_of(&bytes).map(|b| {
                    let at = At {
                        shard: shard.id(),
                        index,
                        id: ledger::entry_id(&bytes).0,
                    };
                    (at, b)
                }))
            };
        let meets = |s: &Span| s.last_ms >= from_ms && s.first_ms < to_ms;
        // Entries not looked at before: read each once, learn its span, and
        // use it now if it meets the range.
        let mut fresh = Vec::new();
        for &index in &about[spans.seen.min(about.len())..] {
            if let Some((at, b)) = read(index)? {
                let times = b.batch.readings.iter().map(|r| r.time_ms);
                if let (Some(first_ms), Some(last_ms)) = (times.clone().min(), times.max()) {
                    let span = Span {
                        index,
                        first_ms,
                        last_ms,
                    };
                    fresh.push(span);
                    if meets(&span) {
                        each(at, b);
                    }
                }
            }
        }
        for s in spans.spans.iter().filter(|s| meets(s)) {
            if let Some((at, b)) = read(s.index)? {
                each(at, b);
            }
        }
        spans.seen = about.len();
        spans.spans.extend(fresh);
        Ok(entries_read)
    }

    /// `device`'s readings in `[from_ms, to_ms)` in buckets of `bucket_ms`
    /// aligned on the Unix epoch (hours start on the hour, UTC).
    pub fn series(
        &self,
        node: &shards::Node,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Series, SeriesError> {
        if bucket_ms < 1 || to_ms < from_ms {
            return Err(SeriesError::BadRange);
        }
        let buckets = (to_ms / bucket_ms).saturating_sub(from_ms / bucket_ms) + 1;
        if buckets > MAX_BUCKETS {
            return Err(SeriesError::TooManyBuckets { buckets });
        }
        let mut acc: HashMap<i64, Acc> = HashMap::new();
        let entries_read = self.visit(node, device, from_ms, to_ms, &mut |at, b| {
            for r in b
                .batch
                .readings
                .iter()
                .filter(|r| r.time_ms >= from_ms && r.time_ms < to_ms)
            {
                let start = r.time_ms.div_euclid(bucket_ms) * bucket_ms;
                let b = acc
                    .entry(start)
                    .or_insert((0, i32::MAX, i32::MIN, 0, Vec::new()));
                b.0 += 1;
                b.1 = b.1.min(r.temp_centi_c);
                b.2 = b.2.max(r.temp_centi_c);
                b.3 += i64::from(r.temp_centi_c);
                if b.4.last() != Some(&at) {
                    b.4.push(at);
                }
            }
        })?;
        let mut buckets: Vec<Bucket> = acc
            .into_iter()
            .map(|(start, (count, min, max, sum, mut entries))| {
                entries.sort_by_key(|a| a.index);
                Bucket {
                    from_ms: start,
                    to_ms: start + bucket_ms,
                    count,
                    min_c: f64::from(min) / 100.0,
                    max_c: f64::from(max) / 100.0,
                    mean_c: (sum as f64 / count as f64).round() / 100.0,
                    entries,
                }
            })
            .collect();
        buckets.sort_by_key(|b| b.from_ms);
        Ok(Series {
            device: device.to_string(),
            from_ms,
            to_ms,
            bucket_ms,
            buckets,
            entries_read,
        })
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) of `device`'s readings in
    /// `[from_ms, to_ms)` with sequence numbers after `after`, in sequence
    /// order, from the entries `may_read` admits; `count` is over all pages.
    #[allow(clippy::too_many_arguments)]
    pub fn page(
        &self,
        node: &shards::Node,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<u64>,
        limit: usize,
        may_read: &dyn Fn(&ledger::entry::SignedBatch) -> bool,
    ) -> Result<Page, SeriesError> {
        if to_ms < from_ms || limit == 0 || limit > MAX_PAGE {
            return Err(SeriesError::BadRange);
        }
        let mut count = 0u64;
        // The `limit + 1` smallest sequence numbers after `after`: one more
        // than the page tells whether another follows.
        let mut kept: Vec<Listed> = Vec::new();
        let entries_read = self.visit(node, device, from_ms, to_ms, &mut |at, b| {
            if !may_read(&b) {
                return;
            }
            let first = b.batch.first_seq;
            for (i, r) in b.batch.readings.into_iter().enumerate() {
                if r.time_ms < from_ms || r.time_ms >= to_ms {
                    continue;
                }
                count += 1;
                let seq = first + i as u64;
                if after.is_some_and(|a| seq <= a) {
                    continue;
                }
                kept.push(Listed {
                    seq,
                    reading: r,
                    entry: at,
                });
            }
            if kept.len() > 4 * (limit + 1) {
                kept.sort_by_key(|l| l.seq);
                kept.truncate(limit + 1);
            }
        })?;
        kept.sort_by_key(|l| l.seq);
        let more = kept.len() > limit;
        kept.truncate(limit);
        Ok(Page {
            device: device.to_string(),
            from_ms,
            to_ms,
            count,
            next_after: if more {
                kept.last().map(|l| l.seq)
            } else {
                None
            },
            readings: kept,
            entries_read,
        })
    }
}

/// The signed batch of an encoded readings entry; `None` for any other kind.
fn batch_of(bytes: &[u8]) -> Option<ledger::entry::SignedBatch> {
    if ledger::entry::kind_of(bytes) != Some("readings") {
        return None;
    }
    match ledger::Entry::from_bytes(bytes) {
        Ok(ledger::Entry::Readings(sb)) => Some(sb),
        _ => None,
    }
}
