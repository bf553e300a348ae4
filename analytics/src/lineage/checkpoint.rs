//! The lineage graph's checkpoint: the entries it was built from, so that a
//! start reads those (events, recalls, verdicts, registrations) instead of every entry
//! of every log (readings are most of a log and tell lineage nothing).
//!
//! It is `DIR/checkpoints/lineage` ([`shards::checkpoint`]: the positions the
//! graph had read each shard to, with the log's root there, and a checksum),
//! written whole at a clean stop and while the server runs. Its payload is
//! each source entry as `[u32 shard][u64 index][u32 len][bytes]`.
//!
//! Opening checks the checkpoint against the logs (see `shards::checkpoint`)
//! and that every entry's bytes are the log's (its id at that index).
//! Anything else means a full scan: the checkpoint is derived, never trusted
//! past the logs.

use shards::checkpoint::{self, Checkpoint, Reader};

use super::{apply_bytes, Lineage};

/// Version 3: the shared checkpoint container (version 2 was
/// `DIR/lineage.snapshot`, which is no longer read).
const KIND: &[u8; 8] = b"CTLINv03";
/// Its name under `DIR/checkpoints/`.
pub const NAME: &str = "lineage";
/// Where version 2 lived: removed at the next save.
const OLD_FILE: &str = "lineage.snapshot";

/// Writes the checkpoint of `lineage` (built from `node`'s logs).
pub fn save(node: &shards::Node, lineage: &Lineage) -> Result<(), shards::ShardError> {
    let mut payload = Vec::with_capacity(8 + lineage.sources.len() * 64);
    payload.extend_from_slice(&(lineage.sources.len() as u64).to_le_bytes());
    for &(shard, index) in &lineage.sources {
        let bytes = node.shard(shard)?.store().entry(index)?;
        payload.extend_from_slice(&shard.to_le_bytes());
        payload.extend_from_slice(&index.to_le_bytes());
        payload.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        payload.extend_from_slice(&bytes);
    }
    let sizes: Vec<(u32, u64)> = node
        .shards()
        .iter()
        .map(|s| {
            (
                s.id(),
                lineage.positions.get(s.id() as usize).copied().unwrap_or(0),
            )
        })
        .collect();
    Checkpoint::new(node, &sizes, payload)?.save(&checkpoint::path(node.data_dir(), NAME), KIND)?;
    let _ = std::fs::remove_file(node.data_dir().join(OLD_FILE));
    Ok(())
}

/// The graph from the checkpoint, checked against `node`'s logs, with the
/// positions to follow from; `None` when there is no usable checkpoint (the
/// caller scans the logs instead).
pub fn load(node: &shards::Node) -> Option<(Lineage, Vec<u64>)> {
    let c = Checkpoint::load_or_scan(&checkpoint::path(node.data_dir(), NAME), KIND, node)?;
    if c.covers.len() != node.shards().len() {
        return None;
    }
    let positions: Vec<u64> = node.shards().iter().map(|s| c.size(s.id())).collect();
    let mut r = Reader(&c.payload);
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
