//! Lookup from entry id to index.
//!
//! The active segment's ids are in memory; each sealed segment has a file of
//! `(id prefix, index)` records sorted by prefix. A lookup is one hash probe
//! for the active segment and, per sealed segment, a binary search over a
//! sparse in-memory fence (every 256th prefix, built on first use) followed by
//! one read of at most 256 records. Prefixes may collide; callers confirm a
//! candidate against the full leaf hash.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use super::format::{decode_id_record, ID_RECORD_LEN};

const FENCE_EVERY: u64 = 256;

/// Ids of the entries in the active segment.
#[derive(Default)]
pub(crate) struct ActiveIds {
    first: HashMap<u64, u64>,
    /// Later entries whose prefix was already taken (same id appended twice,
    /// or a prefix collision): rare, scanned linearly.
    more: Vec<(u64, u64)>,
}

impl ActiveIds {
    pub fn insert(&mut self, prefix: u64, index: u64) {
        if let Some(&existing) = self.first.get(&prefix) {
            debug_assert!(existing < index);
            self.more.push((prefix, index));
        } else {
            self.first.insert(prefix, index);
        }
    }

    pub fn extend(&mut self, pairs: impl IntoIterator<Item = (u64, u64)>) {
        for (p, i) in pairs {
            self.insert(p, i);
        }
    }

    pub fn candidates(&self, prefix: u64) -> impl Iterator<Item = u64> + '_ {
        self.first.get(&prefix).copied().into_iter().chain(
            self.more
                .iter()
                .filter(move |&&(p, _)| p == prefix)
                .map(|&(_, i)| i),
        )
    }

    /// Every pair, for sealing into a sorted file.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        self.first
            .iter()
            .map(|(&p, &i)| (p, i))
            .chain(self.more.iter().copied())
            .collect()
    }

    pub fn clear(&mut self) {
        self.first.clear();
        self.more.clear();
    }
}

/// A sealed segment's sorted ids file.
pub(crate) struct SealedIds {
    pub segment: u64,
    file: File,
    count: u64,
    fences: OnceLock<Vec<u64>>,
}

impl SealedIds {
    pub fn new(segment: u64, file: File, count: u64) -> SealedIds {
        SealedIds {
            segment,
            file,
            count,
            fences: OnceLock::new(),
        }
    }

    fn record(&self, i: u64) -> io::Result<(u64, u64)> {
        let mut b = [0u8; ID_RECORD_LEN];
        self.file.read_exact_at(&mut b, i * ID_RECORD_LEN as u64)?;
        Ok(decode_id_record(&b))
    }

    fn fences(&self) -> io::Result<&[u64]> {
        if let Some(f) = self.fences.get() {
            return Ok(f);
        }
        let fences = (0..self.count.div_ceil(FENCE_EVERY))
            .map(|k| self.record(k * FENCE_EVERY).map(|(p, _)| p))
            .collect::<io::Result<Vec<u64>>>()?;
        Ok(self.fences.get_or_init(|| fences))
    }

    /// Indices of the entries whose id starts with `prefix`.
    pub fn candidates(&self, prefix: u64) -> io::Result<Vec<u64>> {
        let fences = self.fences()?;
        // The first run that may hold `prefix`: equal prefixes can straddle
        // a fence, so start one run before the first fence >= prefix.
        let run = fences.partition_point(|&f| f < prefix).saturating_sub(1) as u64;
        let mut out = Vec::new();
        let start = run * FENCE_EVERY;
        let mut end = (start + 2 * FENCE_EVERY).min(self.count);
        let mut buf = vec![0u8; ((end - start) as usize) * ID_RECORD_LEN];
        self.file
            .read_exact_at(&mut buf, start * ID_RECORD_LEN as u64)?;
        let mut at = start;
        loop {
            for rec in buf.chunks_exact(ID_RECORD_LEN) {
                let (p, i) = decode_id_record(rec);
                if p == prefix {
                    out.push(i);
                } else if p > prefix {
                    return Ok(out);
                }
                at += 1;
            }
            // Many equal prefixes (the same entry stored again and again):
            // keep reading run by run.
            if at >= self.count {
                return Ok(out);
            }
            end = (at + FENCE_EVERY).min(self.count);
            buf = vec![0u8; ((end - at) as usize) * ID_RECORD_LEN];
            self.file
                .read_exact_at(&mut buf, at * ID_RECORD_LEN as u64)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::encode_ids;
    use std::io::Write;

    #[test]
    fn sealed_lookup_finds_every_entry_including_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids");
        // Prefixes with long runs of repeats across fence boundaries.
        let pairs: Vec<(u64, u64)> = (0..5000u64)
            .map(|i| ((i / 700) * 1000 + i % 3, i))
            .collect();
        File::create(&path)
            .unwrap()
            .write_all(&encode_ids(pairs.clone()))
            .unwrap();
        let sealed = SealedIds::new(0, File::open(&path).unwrap(), pairs.len() as u64);
        for &(p, i) in &pairs {
            assert!(
                sealed.candidates(p).unwrap().contains(&i),
                "prefix {p} index {i}"
            );
        }
        assert!(sealed.candidates(999_999).unwrap().is_empty());
        assert!(sealed
            .candidates(0)
            .unwrap()
            .iter()
            .all(|&i| pairs[i as usize].0 == 0));
    }

    #[test]
    fn active_lookup_keeps_repeats() {
        let mut a = ActiveIds::default();
        a.extend([(5, 1), (6, 2), (5, 3)]);
        assert_eq!(a.candidates(5).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(a.pairs().len(), 3);
    }
}
