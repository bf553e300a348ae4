//! Merkle log proofs in the shape of RFC 9162 (Certificate Transparency v2).
//!
//! `leaf = H(0x00 || entry)`, `node = H(0x01 || left || right)`, for trees of
//! any size. The hash is a type parameter ([`MerkleHasher`]): coldtrail logs use
//! [`Blake3Merkle`]; the test suite instantiates SHA-256 to check the algorithm
//! against the public RFC 6962 vectors.
//!
//! This module is the verifier half clients reuse: it needs nothing but the
//! hasher, allocates only for proof generation and to hash entries longer than
//! one BLAKE3 chunk, and never panics on any input (sizes, indices and proof
//! lengths are all checked before use).

use std::ops::Range;

use crate::hash::{Digest, Domain};

/// A hash function in the RFC 9162 tree shape.
pub trait MerkleHasher {
    /// `H(0x00 || data)`.
    fn hash_leaf(data: &[u8]) -> Digest;
    /// `H(0x01 || left || right)`.
    fn hash_children(left: &Digest, right: &Digest) -> Digest;
    /// The root of the empty tree, `H()`.
    fn empty_root() -> Digest;
}

/// BLAKE3's chunk: inputs longer than this hash in parallel lanes.
const BLAKE3_CHUNK_LEN: usize = 1024;

/// BLAKE3 in the [`Domain::Merkle`] domain: the hasher of every coldtrail log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blake3Merkle;

impl MerkleHasher for Blake3Merkle {
    fn hash_leaf(data: &[u8]) -> Digest {
        // BLAKE3 hashes the chunks of one contiguous input side by side
        // (SIMD); fed as `0x00` and then the entry, every chunk after the
        // first is out of step with the tree and goes one or two at a time
        // (1.5x slower for entries of a few KiB). An entry that spills past
        // one chunk is therefore copied behind its prefix and hashed whole.
        if data.len() < BLAKE3_CHUNK_LEN {
            return Domain::Merkle.hash_parts(&[&[0x00], data]);
        }
        let mut prefixed = Vec::with_capacity(1 + data.len());
        prefixed.push(0x00);
        prefixed.extend_from_slice(data);
        Domain::Merkle.hash(&prefixed)
    }
    fn hash_children(left: &Digest, right: &Digest) -> Digest {
        let mut buf = [0u8; 65];
        buf[0] = 0x01;
        buf[1..33].copy_from_slice(&left.0);
        buf[33..].copy_from_slice(&right.0);
        Domain::Merkle.hash(&buf)
    }
    fn empty_root() -> Digest {
        Domain::Merkle.hash(&[])
    }
}

impl Blake3Merkle {
    /// The leaf hash of the entry at `entry` in `buf`, hashed where it lies:
    /// the byte in front of it (in a block, the end of its length) is
    /// overwritten with the leaf prefix, which saves readers of many entries
    /// the copy [`MerkleHasher::hash_leaf`] makes. `None` when `entry` starts
    /// at 0 or runs past `buf`.
    pub fn hash_leaf_in_place(buf: &mut [u8], entry: Range<usize>) -> Option<Digest> {
        let prefixed = buf.get_mut(entry.start.checked_sub(1)?..entry.end)?;
        prefixed[0] = 0x00;
        Some(Domain::Merkle.hash(prefixed))
    }
}

/// Why a proof was refused. Every variant is a reason a verifier must say no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {got} hashes, a proof for these sizes has {want}")]
    WrongLength { got: usize, want: usize },
    #[error("the proof leads to root {computed}, not the expected {expected}")]
    RootMismatch { computed: Digest, expected: Digest },
    #[error("first size {size1} is larger than second size {size2}")]
    SizesReversed { size1: u64, size2: u64 },
    #[error("a consistency proof from the empty tree proves nothing and is refused")]
    EmptyFirstTree,
    #[error("requested tree size {size} is larger than the log ({log_size} entries)")]
    SizeBeyondLog { size: u64, log_size: u64 },
    #[error("[{start}, {end}) is not a subtree of a tree of size {size}")]
    InvalidSubtree { start: u64, end: u64, size: u64 },
}

fn verify_match(computed: Digest, expected: &Digest) -> Result<(), ProofError> {
    if computed == *expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            computed,
            expected: *expected,
        })
    }
}

/// Splits an inclusion proof for `index` in a tree of `size` into the part
/// below the point where the paths to `index` and to `size - 1` meet (`inner`)
/// and the left siblings above it (`border`). Requires `index < size`.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

fn chain_inner<H: MerkleHasher>(mut seed: Digest, proof: &[Digest], index: u64) -> Digest {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            H::hash_children(&seed, h)
        } else {
            H::hash_children(h, &seed)
        };
    }
    seed
}

fn chain_inner_right<H: MerkleHasher>(mut seed: Digest, proof: &[Digest], index: u64) -> Digest {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = H::hash_children(h, &seed);
        }
    }
    seed
}

fn chain_border_right<H: MerkleHasher>(mut seed: Digest, proof: &[Digest]) -> Digest {
    for h in proof {
        seed = H::hash_children(h, &seed);
    }
    seed
}

/// The root that an inclusion proof for `leaf_hash` at `index` leads to.
pub fn root_from_inclusion_proof<H: MerkleHasher>(
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
) -> Result<Digest, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let res = chain_inner::<H>(*leaf_hash, &proof[..inner], index);
    Ok(chain_border_right::<H>(res, &proof[inner..]))
}

/// Checks that `leaf_hash` is the leaf at `index` of the tree of `size` with `root`.
pub fn verify_inclusion<H: MerkleHasher>(
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), ProofError> {
    verify_match(
        root_from_inclusion_proof::<H>(index, size, leaf_hash, proof)?,
        root,
    )
}

/// Checks that the tree of `size2` with `root2` extends the tree of `size1`
/// with `root1`. Refuses `size1 == 0`: every tree extends the empty one, so
/// such a proof carries no information and accepting it only hides mistakes.
pub fn verify_consistency<H: MerkleHasher>(
    size1: u64,
    size2: u64,
    proof: &[Digest],
    root1: &Digest,
    root2: &Digest,
) -> Result<(), ProofError> {
    if size1 == 0 {
        return Err(ProofError::EmptyFirstTree);
    }
    if size2 < size1 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return verify_match(*root1, root2);
    }
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    // shift < inner whenever size1 < size2.
    let inner = inner - shift;
    // The proof starts with the root of the subtree of size 2^shift, unless
    // size1 is exactly that subtree, whose root the verifier already has.
    let (seed, start) = if size1 == 1u64 << shift {
        (*root1, 0)
    } else {
        match proof.first() {
            Some(first) => (*first, 1),
            None => {
                return Err(ProofError::WrongLength {
                    got: 0,
                    want: 1 + inner + border,
                })
            }
        }
    };
    if proof.len() != start + inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: start + inner + border,
        });
    }
    let proof = &proof[start..];
    let mask = (size1 - 1) >> shift;
    let hash1 = chain_inner_right::<H>(seed, &proof[..inner], mask);
    let hash1 = chain_border_right::<H>(hash1, &proof[inner..]);
    verify_match(hash1, root1)?;
    let hash2 = chain_inner::<H>(seed, &proof[..inner], mask);
    let hash2 = chain_border_right::<H>(hash2, &proof[inner..]);
    verify_match(hash2, root2)
}

/// Verification of proofs as they arrive on the wire: hashes as byte strings
/// of unchecked length. Each function checks lengths in the order the
/// reference verifier (transparency-dev/merkle) does, then defers to the typed
/// verifier above, so it agrees with that verifier case for case.
pub mod wire {
    use super::*;

    /// Why a wire-form proof was refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum WireError {
        #[error("{what} is {len} bytes long; a hash is 32 bytes")]
        HashLength { what: &'static str, len: usize },
        #[error(transparent)]
        Proof(#[from] ProofError),
    }

    fn digest(what: &'static str, b: &[u8]) -> Result<Digest, WireError> {
        Digest::from_slice(b).ok_or(WireError::HashLength { what, len: b.len() })
    }

    fn digests<B: AsRef<[u8]>>(proof: &[B]) -> Result<Vec<Digest>, WireError> {
        proof
            .iter()
            .map(|h| digest("proof hash", h.as_ref()))
            .collect()
    }

    pub fn verify_inclusion<H: MerkleHasher, B: AsRef<[u8]>>(
        index: u64,
        size: u64,
        leaf_hash: &[u8],
        proof: &[B],
        root: &[u8],
    ) -> Result<(), WireError> {
        let leaf = digest("leaf hash", leaf_hash)?;
        let root = digest("root", root)?;
        Ok(super::verify_inclusion::<H>(
            index,
            size,
            &leaf,
            &digests(proof)?,
            &root,
        )?)
    }

    pub fn verify_subtree_inclusion<H: MerkleHasher, B: AsRef<[u8]>>(
        index: u64,
        start: u64,
        end: u64,
        leaf_hash: &[u8],
        proof: &[B],
        subtree_root: &[u8],
    ) -> Result<(), WireError> {
        let leaf = digest("leaf hash", leaf_hash)?;
        let root = digest("subtree root", subtree_root)?;
        Ok(super::verify_subtree_inclusion::<H>(
            index,
            start,
            end,
            &leaf,
            &digests(proof)?,
            &root,
        )?)
    }

    pub fn verify_subtree_consistency<H: MerkleHasher, B: AsRef<[u8]>>(
        start: u64,
        end: u64,
        size: u64,
        proof: &[B],
        subtree_root: &[u8],
        root: &[u8],
    ) -> Result<(), WireError> {
        // The whole tree as its own subtree: the roots must be the same
        // bytes, whatever their length (as for equal sizes above).
        if start == 0 && end == size && end > 0 && proof.is_empty() {
            return verify_consistency::<H, B>(size, size, proof, subtree_root, root);
        }
        let sub = digest("subtree root", subtree_root)?;
        // The empty subtree does not look at the tree's root.
        if start == end {
            return Ok(super::verify_subtree_consistency::<H>(
                start,
                end,
                size,
                &digests(proof)?,
                &sub,
                &Digest::default(),
            )?);
        }
        let root = digest("root", root)?;
        Ok(super::verify_subtree_consistency::<H>(
            start,
            end,
            size,
            &digests(proof)?,
            &sub,
            &root,
        )?)
    }

    pub fn verify_consistency<H: MerkleHasher, B: AsRef<[u8]>>(
        size1: u64,
        size2: u64,
        proof: &[B],
        root1: &[u8],
        root2: &[u8],
    ) -> Result<(), WireError> {
        // Equal non-empty sizes need no hashing: the roots must simply be the
        // same bytes, whatever their length.
        if size1 == size2 && size1 > 0 && proof.is_empty() {
            return if root1 == root2 {
                Ok(())
            } else {
                Err(WireError::Proof(ProofError::RootMismatch {
                    computed: Digest::from_slice(root1).unwrap_or_default(),
                    expected: Digest::from_slice(root2).unwrap_or_default(),
                }))
            };
        }
        let r1 = digest("first root", root1)?;
        let r2 = digest("second root", root2)?;
        Ok(super::verify_consistency::<H>(
            size1,
            size2,
            &digests(proof)?,
            &r1,
            &r2,
        )?)
    }
}

/// Whether `[start, end)` is a subtree in the sense of the Merkle Tree
/// Certificates draft: non-empty, and `start` a multiple of the smallest power
/// of two not below its size (so it is one node of any large enough tree, or
/// the left edge of one).
pub fn valid_subtree(start: u64, end: u64) -> bool {
    start < end
        && (end - start)
            .checked_next_power_of_two()
            .is_some_and(|p| start.is_multiple_of(p))
}

/// Checks that `leaf_hash` is leaf `index` of the subtree `[start, end)`
/// whose hash is `subtree_root`: an inclusion proof inside the subtree.
pub fn verify_subtree_inclusion<H: MerkleHasher>(
    index: u64,
    start: u64,
    end: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
    subtree_root: &Digest,
) -> Result<(), ProofError> {
    if !valid_subtree(start, end) {
        return Err(ProofError::InvalidSubtree {
            start,
            end,
            size: end,
        });
    }
    if !(start..end).contains(&index) {
        return Err(ProofError::IndexOutOfRange { index, size: end });
    }
    verify_inclusion::<H>(index - start, end - start, leaf_hash, proof, subtree_root)
}

/// Checks that the subtree `[start, end)` with hash `subtree_root` sits at
/// those leaves of the tree of `size` with `root` (MTC draft, "Verifying a
/// Subtree Consistency Proof"). `fnode`, `snode` and `tnode` track the
/// subtree's first and last leaf and the tree's last leaf as the walk climbs.
pub fn verify_subtree_consistency<H: MerkleHasher>(
    start: u64,
    end: u64,
    size: u64,
    proof: &[Digest],
    subtree_root: &Digest,
    root: &Digest,
) -> Result<(), ProofError> {
    // The empty subtree is part of every tree; its hash is the empty root.
    if start == end && end <= size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return verify_match(H::empty_root(), subtree_root);
    }
    if !valid_subtree(start, end) || end > size {
        return Err(ProofError::InvalidSubtree { start, end, size });
    }
    let (mut fnode, mut snode, mut tnode) = (start, end - 1, size - 1);
    if snode == tnode {
        // Flush with the right edge: no outside sibling below the subtree's root.
        while fnode != snode {
            fnode >>= 1;
            snode >>= 1;
            tnode >>= 1;
        }
    } else {
        while fnode != snode && snode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
            tnode >>= 1;
        }
    }
    let (mut fr, mut sr, rest) = if fnode == snode {
        (*subtree_root, *subtree_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, *first, rest),
            None => return Err(ProofError::WrongLength { got: 0, want: 1 }),
        }
    };
    let too_long = ProofError::WrongLength {
        got: proof.len(),
        want: proof.len().saturating_sub(1),
    };
    for c in rest {
        if tnode == 0 {
            return Err(too_long);
        }
        if snode & 1 == 1 || snode == tnode {
            if fnode < snode {
                fr = H::hash_children(c, &fr);
            }
            sr = H::hash_children(c, &sr);
            while snode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
                tnode >>= 1;
            }
        } else {
            sr = H::hash_children(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
        tnode >>= 1;
    }
    if tnode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    verify_match(fr, subtree_root)?;
    verify_match(sr, root)
}

/// Where proof generation gets the hashes of perfect subtrees from.
///
/// `perfect(level, index)` is the root of the perfect subtree of `2^level`
/// leaves starting at leaf `index << level`; callers only ask for subtrees that
/// lie wholly inside the tree the source holds.
pub trait SubtreeSource {
    type Error;
    fn perfect(&self, level: u32, index: u64) -> Result<Digest, Self::Error>;
}

/// Proof and root construction over any [`SubtreeSource`].
pub struct Prover<'a, H, S> {
    source: &'a S,
    _hasher: std::marker::PhantomData<H>,
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

impl<'a, H: MerkleHasher, S: SubtreeSource> Prover<'a, H, S> {
    pub fn new(source: &'a S) -> Self {
        Prover {
            source,
            _hasher: std::marker::PhantomData,
        }
    }

    /// MTH(D[start..start + len]); `start` is aligned to the subtree size the
    /// recursion produces, so every perfect piece is one `perfect` lookup.
    fn range_hash(&self, start: u64, len: u64) -> Result<Digest, S::Error> {
        if len == 0 {
            return Ok(H::empty_root());
        }
        if len.is_power_of_two() {
            let level = len.trailing_zeros();
            return self.source.perfect(level, start >> level);
        }
        let k = split_point(len);
        let left = self
            .source
            .perfect(k.trailing_zeros(), start >> k.trailing_zeros())?;
        let right = self.range_hash(start + k, len - k)?;
        Ok(H::hash_children(&left, &right))
    }

    /// The root of the tree made of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Digest, S::Error> {
        self.range_hash(0, size)
    }

    /// The inclusion proof for leaf `index` in the tree of `size` (RFC 9162
    /// PATH), leaf-side first. Requires `index < size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, S::Error> {
        debug_assert!(index < size);
        let mut out = Vec::with_capacity(64);
        let (mut start, mut len, mut m) = (0u64, size, index);
        // Walk from the root down, collecting siblings; reversed at the end.
        while len > 1 {
            let k = split_point(len);
            if m < k {
                out.push(self.range_hash(start + k, len - k)?);
                len = k;
            } else {
                out.push(self.range_hash(start, k)?);
                start += k;
                m -= k;
                len -= k;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The consistency proof between the trees of `size1` and `size2`
    /// (RFC 9162 SUBPROOF). Requires `0 < size1 <= size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, S::Error> {
        debug_assert!(0 < size1 && size1 <= size2);
        let mut out = Vec::with_capacity(64);
        let (mut start, mut n, mut m) = (0u64, size2, size1);
        let mut complete = true;
        while m != n {
            let k = split_point(n);
            if m <= k {
                out.push(self.range_hash(start + k, n - k)?);
                n = k;
            } else {
                out.push(self.range_hash(start, k)?);
                start += k;
                m -= k;
                n -= k;
                complete = false;
            }
        }
        if !complete {
            out.push(self.range_hash(start, m)?);
        }
        out.reverse();
        Ok(out)
    }
}

/// Appends `node` to `levels[0]` and adds, level by level, every parent it
/// completes: `levels[l][i]` is the perfect subtree of `2^l` bottom nodes at `i`.
pub fn push_completing<H: MerkleHasher>(levels: &mut Vec<Vec<Digest>>, node: Digest) {
    if levels.is_empty() {
        levels.push(Vec::new());
    }
    levels[0].push(node);
    let mut l = 0;
    while levels[l].len().is_multiple_of(2) {
        let n = levels[l].len();
        let parent = H::hash_children(&levels[l][n - 2], &levels[l][n - 1]);
        if levels.len() == l + 1 {
            levels.push(Vec::new());
        }
        levels[l + 1].push(parent);
        l += 1;
    }
}

/// A tree folded to its right edge (a compact range): the roots of its
/// perfect subtrees, largest first, one per bit set in its size. It is all
/// a follower needs to extend a tree it has checked and compute the new
/// root, without the tree's other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier<H = Blake3Merkle> {
    /// (level, root): the subtree of `2^level` leaves, levels decreasing.
    nodes: Vec<(u32, Digest)>,
    size: u64,
    hasher: std::marker::PhantomData<H>,
}

impl<H> Default for Frontier<H> {
    fn default() -> Self {
        Frontier {
            nodes: Vec::new(),
            size: 0,
            hasher: std::marker::PhantomData,
        }
    }
}

impl<H: MerkleHasher> Frontier<H> {
    /// The frontier of a tree of `size` leaves from its subtrees' roots,
    /// largest first; `None` unless there is one per bit set in `size`.
    pub fn from_parts(size: u64, roots: &[Digest]) -> Option<Self> {
        if roots.len() != size.count_ones() as usize {
            return None;
        }
        let levels = (0..64u32).rev().filter(|l| size >> l & 1 == 1);
        Some(Frontier {
            nodes: levels.zip(roots.iter().copied()).collect(),
            size,
            hasher: std::marker::PhantomData,
        })
    }

    /// The leaves folded so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees' roots, largest first (what [`Self::from_parts`]
    /// takes back).
    pub fn roots(&self) -> impl Iterator<Item = &Digest> {
        self.nodes.iter().map(|(_, d)| d)
    }

    /// Adds a leaf hash.
    pub fn push(&mut self, leaf: Digest) {
        self.push_completing(leaf, u32::MAX);
    }

    /// Adds a leaf hash; returns the root of the subtree of `2^level` leaves
    /// it completes, if any.
    pub fn push_completing(&mut self, leaf: Digest, level: u32) -> Option<Digest> {
        self.size += 1;
        let mut node = (0u32, leaf);
        let mut completed = None;
        while let Some(&(l, left)) = self.nodes.last() {
            if l != node.0 {
                break;
            }
            self.nodes.pop();
            node = (l + 1, H::hash_children(&left, &node.1));
            if node.0 == level {
                completed = Some(node.1);
            }
        }
        self.nodes.push(node);
        completed
    }

    /// The root of the tree folded so far.
    pub fn root(&self) -> Digest {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return H::empty_root();
        };
        for (_, left) in it {
            acc = H::hash_children(left, &acc);
        }
        acc
    }
}

/// A whole tree held in memory, level by level: the simplest
/// [`SubtreeSource`], used by tests, tools and small clients.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree<H> {
    /// `levels[l][i]` = perfect subtree of 2^l leaves at index i.
    levels: Vec<Vec<Digest>>,
    _hasher: std::marker::PhantomData<H>,
}

impl<H: MerkleHasher> MemoryTree<H> {
    pub fn new() -> Self {
        MemoryTree {
            levels: vec![Vec::new()],
            _hasher: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// Appends a leaf by its leaf hash, completing every perfect subtree it closes.
    pub fn push_leaf_hash(&mut self, leaf: Digest) {
        push_completing::<H>(&mut self.levels, leaf);
    }

    pub fn push(&mut self, entry: &[u8]) {
        self.push_leaf_hash(H::hash_leaf(entry));
    }

    pub fn prover(&self) -> Prover<'_, H, Self> {
        Prover::new(self)
    }

    pub fn root(&self, size: u64) -> Digest {
        match self.prover().root(size) {
            Ok(d) => d,
            Err(never) => match never {},
        }
    }
}

impl<H> SubtreeSource for MemoryTree<H> {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Digest, Self::Error> {
        Ok(self.levels[level as usize][index as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u64) -> MemoryTree<Blake3Merkle> {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(&i.to_le_bytes());
        }
        t
    }

    /// RFC 9162's recursive definition, written out literally, to check the
    /// level-indexed construction against.
    fn reference_root(leaves: &[Digest]) -> Digest {
        match leaves.len() {
            0 => Blake3Merkle::empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                Blake3Merkle::hash_children(
                    &reference_root(&leaves[..k]),
                    &reference_root(&leaves[k..]),
                )
            }
        }
    }

    #[test]
    fn a_frontier_folds_to_the_reference_root_and_round_trips_through_its_parts() {
        let leaves: Vec<Digest> = (0..130u64)
            .map(|i| Blake3Merkle::hash_leaf(&i.to_le_bytes()))
            .collect();
        let mut f = Frontier::<Blake3Merkle>::default();
        assert_eq!(f.root(), Blake3Merkle::empty_root());
        for (n, leaf) in leaves.iter().enumerate() {
            f.push(*leaf);
            assert_eq!(f.size(), n as u64 + 1);
            assert_eq!(f.root(), reference_root(&leaves[..=n]), "size {}", n + 1);
            let roots: Vec<Digest> = f.roots().copied().collect();
            assert_eq!(roots.len(), f.size().count_ones() as usize);
            assert_eq!(Frontier::from_parts(f.size(), &roots), Some(f.clone()));
            // A part missing or too many is refused, not misread.
            assert_eq!(
                Frontier::<Blake3Merkle>::from_parts(f.size(), &roots[1..]),
                None
            );
            let mut extra = roots.clone();
            extra.push(roots[0]);
            assert_eq!(Frontier::<Blake3Merkle>::from_parts(f.size(), &extra), None);
        }
    }

    #[test]
    fn a_leaf_hash_is_the_prefixed_entry_hashed_in_one_stream_at_every_length() {
        // Around each chunk and subtree boundary of BLAKE3 (1 KiB chunks).
        let lengths = [
            0, 1, 63, 64, 1022, 1023, 1024, 1025, 2047, 2048, 6100, 16383, 16384, 70000,
        ];
        for len in lengths {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut streamed = Domain::Merkle.hasher();
            streamed.update(&[0x00]);
            for piece in data.chunks(100) {
                streamed.update(piece);
            }
            let streamed = *streamed.finalize().as_bytes();
            assert_eq!(Blake3Merkle::hash_leaf(&data).0, streamed, "{len} bytes");
            // As a block holds it: behind a length, in a longer buffer.
            let mut block = vec![0xff; 3];
            block.extend_from_slice(&data);
            block.push(0xee);
            let end = block.len() - 1;
            assert_eq!(
                Blake3Merkle::hash_leaf_in_place(&mut block, 3..end).map(|d| d.0),
                Some(streamed),
                "{len} bytes in place"
            );
        }
    }

    #[test]
    fn an_entry_without_room_for_its_prefix_is_not_hashed_in_place() {
        let mut buf = vec![1, 2, 3];
        assert_eq!(Blake3Merkle::hash_leaf_in_place(&mut buf, 0..2), None);
        assert_eq!(Blake3Merkle::hash_leaf_in_place(&mut buf, 1..4), None);
        assert_eq!(
            Blake3Merkle::hash_leaf_in_place(&mut buf, 1..3),
            Some(Blake3Merkle::hash_leaf(&[2, 3]))
        );
    }

    #[test]
    fn roots_match_the_recursive_definition() {
        let t = tree(70);
        let leaves: Vec<Digest> = (0..70u64)
            .map(|i| Blake3Merkle::hash_leaf(&i.to_le_bytes()))
            .collect();
        for size in 0..=70 {
            assert_eq!(
                t.root(size),
                reference_root(&leaves[..size as usize]),
                "size {size}"
            );
        }
    }

    #[test]
    fn every_proof_in_small_trees_verifies() {
        let t = tree(33);
        for size in 1..=33u64 {
            let root = t.root(size);
            for index in 0..size {
                let proof = t.prover().inclusion_proof(index, size).unwrap();
                let leaf = Blake3Merkle::hash_leaf(&index.to_le_bytes());
                verify_inclusion::<Blake3Merkle>(index, size, &leaf, &proof, &root).unwrap();
            }
            for size1 in 1..=size {
                let proof = t.prover().consistency_proof(size1, size).unwrap();
                verify_consistency::<Blake3Merkle>(size1, size, &proof, &t.root(size1), &root)
                    .unwrap();
            }
        }
    }

    #[test]
    fn verifier_refuses_out_of_range_without_panicking() {
        let d = Digest::default();
        assert!(verify_inclusion::<Blake3Merkle>(5, 5, &d, &[], &d).is_err());
        assert!(verify_inclusion::<Blake3Merkle>(u64::MAX, 0, &d, &[], &d).is_err());
        assert!(verify_consistency::<Blake3Merkle>(u64::MAX, u64::MAX - 1, &[], &d, &d).is_err());
        assert!(verify_consistency::<Blake3Merkle>(3, u64::MAX, &[d; 3], &d, &d).is_err());
    }
}
