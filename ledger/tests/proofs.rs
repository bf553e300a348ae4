//! Every inclusion and consistency proof verifies, for random tree sizes up to
//! 10,000, and stops verifying when any byte of proof, root, leaf, index or
//! size is changed.
//!
//! A bare Merkle proof does not bind the tree size: sizes whose trees have the
//! same shape along the proof's path verify alike (index 0 of 4097 and of 4098
//! leaves, say). The size is bound by the signed tree head, so size changes
//! are checked the way clients check them, through a signed head.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use ledger::head::{log_id, SignedTreeHead, TreeHead};
use ledger::merkle::{
    verify_consistency, verify_inclusion, Blake3Merkle, MemoryTree, MerkleHasher,
};
use ledger::Digest;
use proptest::prelude::*;

const MAX: u64 = 10_000;

fn tree() -> &'static MemoryTree<Blake3Merkle> {
    static TREE: OnceLock<MemoryTree<Blake3Merkle>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut t = MemoryTree::new();
        for i in 0..MAX {
            t.push(format!("entry {i}").as_bytes());
        }
        t
    })
}

fn leaf(i: u64) -> Digest {
    Blake3Merkle::hash_leaf(format!("entry {i}").as_bytes())
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn signed(size: u64, root: Digest) -> SignedTreeHead {
    let key = key();
    TreeHead {
        log_id: log_id(&key.verifying_key()),
        size,
        root,
        timestamp_ms: 1_700_000_000_000,
    }
    .sign(&key)
}

/// A head as an attacker would alter it: the size changed, the signature kept.
fn with_size(h: &SignedTreeHead, size: u64) -> SignedTreeHead {
    let mut out = *h;
    out.head.size = size;
    out
}

fn flip(d: &Digest, byte: usize, bit: u8) -> Digest {
    let mut out = *d;
    out.0[byte % 32] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify_and_refuse_any_change(
        size in 1..=MAX,
        index_seed: u64,
        which in 0usize..64,
        byte in 0usize..32,
        bit in 0u8..8,
        other_seed: u64,
    ) {
        let t = tree();
        let index = index_seed % size;
        let root = t.root(size);
        let proof = t.prover().inclusion_proof(index, size).unwrap();
        let l = leaf(index);
        prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &l, &proof, &root).is_ok());

        // Any byte of the proof.
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = which % bad.len();
            bad[k] = flip(&bad[k], byte, bit);
            prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &l, &bad, &root).is_err());
            // A proof element dropped or duplicated.
            prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &l, &proof[1..], &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &l, &longer, &root).is_err());
        // Root and leaf.
        prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &l, &proof, &flip(&root, byte, bit)).is_err());
        prop_assert!(verify_inclusion::<Blake3Merkle>(index, size, &flip(&l, byte, bit), &proof, &root).is_err());
        // Another index or another size.
        let other_index = other_seed % size;
        if other_index != index {
            prop_assert!(verify_inclusion::<Blake3Merkle>(other_index, size, &l, &proof, &root).is_err());
        }
        let vk = key().verifying_key();
        let sth = signed(size, root);
        prop_assert!(sth.verify_inclusion(&vk, index, &l, &proof).is_ok());
        let other_size = 1 + other_seed % MAX;
        if other_size != size {
            prop_assert!(with_size(&sth, other_size).verify_inclusion(&vk, index, &l, &proof).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_refuse_any_change(
        size2 in 1..=MAX,
        size1_seed: u64,
        which in 0usize..64,
        byte in 0usize..32,
        bit in 0u8..8,
        other_seed: u64,
    ) {
        let t = tree();
        let size1 = 1 + size1_seed % size2;
        let (root1, root2) = (t.root(size1), t.root(size2));
        let proof = t.prover().consistency_proof(size1, size2).unwrap();
        prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &proof, &root1, &root2).is_ok());

        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = which % bad.len();
            bad[k] = flip(&bad[k], byte, bit);
            prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &bad, &root1, &root2).is_err());
            prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &proof[1..], &root1, &root2).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root1);
        prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &longer, &root1, &root2).is_err());
        prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &proof, &flip(&root1, byte, bit), &root2).is_err());
        prop_assert!(verify_consistency::<Blake3Merkle>(size1, size2, &proof, &root1, &flip(&root2, byte, bit)).is_err());
        let vk = key().verifying_key();
        let (old, new) = (signed(size1, root1), signed(size2, root2));
        prop_assert!(old.verify_consistency(&new, &vk, &proof).is_ok());
        let other1 = 1 + other_seed % size2;
        if other1 != size1 {
            prop_assert!(with_size(&old, other1).verify_consistency(&new, &vk, &proof).is_err());
        }
        let other2 = size1 + other_seed % (MAX - size1 + 1);
        if other2 != size2 {
            prop_assert!(old.verify_consistency(&with_size(&new, other2), &vk, &proof).is_err());
        }
    }
}
