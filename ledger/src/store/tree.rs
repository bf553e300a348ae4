//! The Merkle tree of a stored log: leaf hashes in the `leaves` file, the
//! 16-leaf subtree roots and everything above them in memory.
//!
//! Memory is `size / 16 × 2 × 32` bytes (40 MB at 10M entries); a proof reads
//! at most one run of 16 leaf hashes from the file and hashes 15 nodes, the
//! rest are lookups.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::hash::Digest;
use crate::merkle::{push_completing, Blake3Merkle, MerkleHasher, Prover, SubtreeSource};
use crate::store::format::NODE_LEVEL;

const CHUNK: u64 = 1 << NODE_LEVEL;

pub(crate) struct StoredTree {
    size: u64,
    /// `upper[l][i]`: the perfect subtree of 2^(NODE_LEVEL + l) leaves at index i.
    upper: Vec<Vec<Digest>>,
    /// Leaf hashes after the last complete 16-leaf chunk.
    tail: Vec<Digest>,
    /// Read handle of the `leaves` file; holds every leaf below `size`.
    leaves: File,
}

impl StoredTree {
    /// Rebuilds the in-memory levels from the persisted 16-leaf roots and the
    /// leaf hashes of the incomplete last chunk.
    pub fn new(leaves: File, size: u64, level_nodes: Vec<Digest>, tail: Vec<Digest>) -> Self {
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

    /// Reads leaf hashes `[start, start + n)`.
    pub fn read_leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>> {
        let tail_start = self.size - self.tail.len() as u64;
        if start >= tail_start {
            let from = (start - tail_start) as usize;
            return Ok(self.tail[from..from + n as usize].to_vec());
        }
        let mut buf = vec![0u8; n as usize * 32];
        self.leaves.read_exact_at(&mut buf, start * 32)?;
        Ok(buf
            .chunks_exact(32)
            .map(|c| Digest(c.try_into().expect("32-byte chunk")))
            .collect())
    }

    pub fn prover(&self) -> Prover<'_, Blake3Merkle, Self> {
        Prover::new(self)
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

impl SubtreeSource for StoredTree {
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
