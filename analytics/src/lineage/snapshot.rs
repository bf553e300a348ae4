//! The lineage graph's snapshot: the entries it was built from, so that a
//! start reads those (events, recalls, verdicts, registrations) instead of every entry
//! of every log (readings are most of a log and tell lineage nothing).
//!
//! `DIR/lineage.snapshot` is written whole at a clean stop (temporary file,
//! fsync, rename): a header with the encoding version, the shard count, and
//! per shard the position the graph had read to and the id of the entry just
//! before it; then each source entry as `[u32 shard][u64 index][u32 len][bytes]`;
//! then a BLAKE3 checksum (snapshot domain) of everything before it.
//!
//! Opening checks the checksum and, against the logs, that each shard still
//! holds the recorded entry before the recorded position and that every
//! entry's bytes are the log's (its id at that index). Anything else (no file,
//! a changed log, a torn or altered file) means a full scan: the snapshot is
//! derived, never trusted past the logs.

use std::io::Write;
use std::path::{Path, PathBuf};

use ledger::Domain;

use super::{apply_bytes, Lineage};

/// Version 2 adds verdict entries to the sources; a version 1 snapshot lacks
/// them, so it is not used (the graph is scanned from the logs instead).
const MAGIC: &[u8; 8] = b"CTLINv02";
pub const SNAPSHOT_FILE: &str = "lineage.snapshot";

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_FILE)
}

/// Writes the snapshot of `lineage` (built from `node`'s logs).
pub fn save(node: &shards::Node, lineage: &Lineage) -> Result<(), shards::ShardError> {
    let mut out = Vec::with_capacity(64 + lineage.sources.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(node.shards().len() as u32).to_le_bytes());
    for (i, s) in node.shards().iter().enumerate() {
        let pos = lineage.positions.get(i).copied().unwrap_or(0);
        out.extend_from_slice(&pos.to_le_bytes());
        let id = if pos == 0 {
            ledger::Digest::default()
        } else {
            s.store().entry_id(pos - 1)?
        };
        out.extend_from_slice(&id.0);
    }
    out.extend_from_slice(&(lineage.sources.len() as u64).to_le_bytes());
    for &(shard, index) in &lineage.sources {
        let bytes = node.shard(shard)?.store().entry(index)?;
        out.extend_from_slice(&shard.to_le_bytes());
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    let sum = Domain::Snapshot.hash(&out);
    out.extend_from_slice(&sum.0);
    let p = path(node.data_dir());
    let tmp = p.with_extension("tmp");
    let io = |e| shards::ShardError::io(&p, e);
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&out).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, &p).map_err(io)?;
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The graph from the snapshot, checked against `node`'s logs, with the
/// positions to follow from; `None` when there is no usable snapshot (the
/// caller scans the logs instead).
pub fn load(node: &shards::Node) -> Option<(Lineage, Vec<u64>)> {
    let bytes = std::fs::read(path(node.data_dir())).ok()?;
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
    if Domain::Snapshot.hash(body).0 != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC || r.u32()? as usize != node.shards().len() {
        return None;
    }
    let mut positions = Vec::with_capacity(node.shards().len());
    for s in node.shards() {
        let pos = r.u64()?;
        let id = ledger::Digest(r.take(32)?.try_into().ok()?);
        if pos > s.committed() || (pos > 0 && s.store().entry_id(pos - 1).ok()? != id) {
            return None;
        }
        positions.push(pos);
    }
    let mut lineage = Lineage::new();
    for _ in 0..r.u64()? {
        let (shard, index) = (r.u32()?, r.u64()?);
        let len = r.u32()? as usize;
        let entry = r.take(len)?;
        // The bytes must be the log's: the id at that index is their hash.
        let s = node.shard(shard).ok()?;
        if index >= positions[shard as usize]
            || s.store().entry_id(index).ok()? != ledger::entry_id(entry)
        {
            return None;
        }
        apply_bytes(&mut lineage, shard, index, entry);
    }
    if !r.0.is_empty() {
        return None;
    }
    lineage.positions = positions.clone();
    Some((lineage, positions))
}
