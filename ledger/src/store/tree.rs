//! The Merkle tree of a stored log: leaf hashes in the store (the embedded
//! store's `leaves` file, the PostgreSQL store's `entries.id` column), the
//! 16-leaf subtree roots and everything above them in memory.
//!
//! Memory is `size / 16 × 2 × 32` bytes (40 MB at 10M entries); a proof reads
//! at most one run of 16 leaf hashes from the store and hashes 15 nodes, the
//! rest are lookups. Leaf hashes read back from a complete 16-leaf run are
//! checked against that run's root in memory, so a changed stored leaf makes
//! a read fail instead of a wrong proof.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::hash::Digest;
use crate::merkle::{
    push_completing, Blake3Merkle, MerkleHasher, ProofError, Prover, SubtreeSource,
};
use crate::store::format::NODE_LEVEL;
use crate::store::StoreError;

/// Where a stored tree reads leaf hashes `[start, start + n)` from.
pub(crate) trait LeafSource {
    fn leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>>;
}

/// The embedded store's `leaves` file: 32 bytes per leaf, in order.
impl LeafSource for File {
    fn leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>> {
        let mut buf = vec![0u8; n as usize * 32];
        self.read_exact_at(&mut buf, start * 32)?;
        Ok(buf
            .chunks_exact(32)
            .map(|c| Digest(c.try_into().expect("32-byte chunk")))
            .collect())
    }
}

const CHUNK: u64 = 1 << NODE_LEVEL;

pub(crate) struct StoredTree<L = File> {
    size: u64,
    /// `upper[l][i]`: the perfect subtree of 2^(NODE_LEVEL + l) leaves at index i.
    upper: Vec<Vec<Digest>>,
    /// Leaf hashes after the last complete 16-leaf chunk.
    tail: Vec<Digest>,
    /// Holds every leaf below `size`.
    leaves: L,
}

impl<L: LeafSource> StoredTree<L> {
    /// Rebuilds the in-memory levels from the persisted 16-leaf roots and the
    /// leaf hashes of the incomplete last chunk.
    pub fn new(leaves: L, size: u64, level_nodes: Vec<Digest>, tail: Vec<Digest>) -> Self {
        debug_assert_eq!(level_nodes.len() as u64, size / CHUNK);
        debug_assert_eq!(tail.len() as u64, size % CHUNK);
        let mut t = StoredTree {
            size,
            upper: vec![Vec::new()],
            tail,
            leaves,
        };
        for n in level_nodes {
            t.push_node(n);
        }
        t
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn push_node(&mut self, node: Digest) {
        push_completing::<Blake3Merkle>(&mut self.upper, node);
    }

    /// Appends leaf hashes (already written to the `leaves` file). Returns the
    /// 16-leaf roots this completed, for the `nodes` file.
    pub fn push_leaves(&mut self, leaves: &[Digest]) -> Vec<Digest> {
        let mut done = Vec::new();
        for &leaf in leaves {
            self.tail.push(leaf);
            self.size += 1;
            if self.tail.len() as u64 == CHUNK {
                let node = chunk_root(&self.tail);
                self.tail.clear();
                self.push_node(node);
                done.push(node);
            }
        }
        done
    }

    /// Reads leaf hashes `[start, start + n)`; those in complete 16-leaf
    /// runs are checked against the runs' roots.
    pub fn read_leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>> {
        let tail_start = self.size - self.tail.len() as u64;
        if start >= tail_start {
            let from = (start - tail_start) as usize;
            return Ok(self.tail[from..from + n as usize].to_vec());
        }
        // Whole runs from the store, each checked; then the tail's part.
        let first_run = start / CHUNK;
        let stored_end = (start + n).min(tail_start);
        let runs = stored_end.div_ceil(CHUNK) - first_run;
        let stored = self.leaves.leaves(first_run * CHUNK, runs * CHUNK)?;
        if stored.len() as u64 != runs * CHUNK {
            return Err(io::Error::other("the store returned too few leaf hashes"));
        }
        for (i, run) in stored.chunks_exact(CHUNK as usize).enumerate() {
            let r = first_run + i as u64;
            if Some(&chunk_root(run)) != self.upper[0].get(r as usize) {
                return Err(io::Error::other(format!(
                    "stored leaf hashes of entries {}..{} do not match their subtree root: the store was changed; run `coldtrail verify`",
                    r * CHUNK,
                    (r + 1) * CHUNK
                )));
            }
        }
        let skip = (start - first_run * CHUNK) as usize;
        let mut out: Vec<Digest> = stored[skip..skip + (stored_end - start) as usize].to_vec();
        if start + n > tail_start {
            out.extend_from_slice(&self.tail[..(start + n - tail_start) as usize]);
        }
        Ok(out)
    }

    /// The 16-leaf subtree root of run `r`, if complete.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub fn run_root(&self, r: u64) -> Option<Digest> {
        self.upper[0].get(r as usize).copied()
    }

    /// Leaf hashes of the incomplete last run.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub fn tail(&self) -> &[Digest] {
        &self.tail
    }

    pub fn prover(&self) -> Prover<'_, Blake3Merkle, Self> {
        Prover::new(self)
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        if size > self.size {
            return Err(ProofError::SizeBeyondLog {
                size,
                log_size: self.size,
            }
            .into());
        }
        Ok(())
    }

    /// [`Store::root`](super::Store::root) for a store: its arguments
    /// checked, `io` naming where a failed leaf read was.
    pub fn checked_root(
        &self,
        size: u64,
        io: impl Fn(io::Error) -> StoreError,
    ) -> Result<Digest, StoreError> {
        self.check_size(size)?;
        self.prover().root(size).map_err(io)
    }

    /// [`Store::inclusion_proof`](super::Store::inclusion_proof), checked.
    pub fn checked_inclusion(
        &self,
        index: u64,
        size: u64,
        io: impl Fn(io::Error) -> StoreError,
    ) -> Result<Vec<Digest>, StoreError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size }.into());
        }
        self.prover().inclusion_proof(index, size).map_err(io)
    }

    /// [`Store::consistency_proof`](super::Store::consistency_proof), checked.
    pub fn checked_consistency(
        &self,
        size1: u64,
        size2: u64,
        io: impl Fn(io::Error) -> StoreError,
    ) -> Result<Vec<Digest>, StoreError> {
        self.check_size(size2)?;
        if size1 == 0 {
            return Err(ProofError::EmptyFirstTree.into());
        }
        if size1 > size2 {
            return Err(ProofError::SizesReversed { size1, size2 }.into());
        }
        self.prover().consistency_proof(size1, size2).map_err(io)
    }
}

/// Root of 2^k consecutive leaves.
pub(crate) fn chunk_root(leaves: &[Digest]) -> Digest {
    debug_assert!(leaves.len().is_power_of_two());
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| Blake3Merkle::hash_children(&p[0], &p[1]))
            .collect();
    }
    level[0]
}

impl<L: LeafSource> SubtreeSource for StoredTree<L> {
    type Error = io::Error;

    fn perfect(&self, level: u32, index: u64) -> io::Result<Digest> {
        if level >= NODE_LEVEL {
            let l = (level - NODE_LEVEL) as usize;
            return self
                .upper
                .get(l)
                .and_then(|v| v.get(index as usize))
                .copied()
                .ok_or_else(|| io::Error::other("subtree beyond the tree"));
        }
        let n = 1u64 << level;
        Ok(chunk_root(&self.read_leaves(index * n, n)?))
    }
}
