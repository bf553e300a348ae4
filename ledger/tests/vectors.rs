//! The Merkle verifier, instantiated with SHA-256, against the public RFC 6962
//! test vectors in `../shared/vectors/merkle/` (inclusion and consistency).
//! Each case says whether a correct verifier accepts it; we must agree with
//! every one, including the altered proofs, roots, indices and sizes.

use std::path::{Path, PathBuf};

use base64::Engine;
use ledger::merkle::wire::{
    verify_consistency, verify_inclusion, verify_subtree_consistency, verify_subtree_inclusion,
};
use ledger::merkle::{MemoryTree, MerkleHasher};
use ledger::Digest;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

struct Sha256Merkle;

impl MerkleHasher for Sha256Merkle {
    fn hash_leaf(data: &[u8]) -> Digest {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(data);
        Digest(h.finalize().into())
    }
    fn hash_children(l: &Digest, r: &Digest) -> Digest {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l.0);
        h.update(r.0);
        Digest(h.finalize().into())
    }
    fn empty_root() -> Digest {
        Digest(Sha256::digest([]).into())
    }
}

fn vectors_dir() -> PathBuf {
    std::env::var_os("COLDTRAIL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("vectors/merkle")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("vector files hold valid base64")
}

fn digest(s: &str) -> Option<Digest> {
    Digest::from_slice(&b64(s))
}

fn digests(v: &Option<Vec<String>>) -> Option<Vec<Digest>> {
    v.iter().flatten().map(|s| digest(s)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

/// Cases built over the eight RFC 6962 reference leaves live in folders
/// named by a number; `additional` and `single-entry` use made-up hashes.
fn over_reference_leaves(p: &Path) -> bool {
    p.parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

fn case_files(kind: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![vectors_dir().join(kind)];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn inclusion_cases_agree_with_the_reference_verifier() {
    let files = case_files("inclusion");
    assert!(
        files.len() > 50,
        "found only {} inclusion cases",
        files.len()
    );
    let (mut accepted, mut refused) = (0, 0);
    for f in files {
        let c: InclusionCase = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.iter().flatten().map(|h| b64(h)).collect();
        let ok = verify_inclusion::<Sha256Merkle, _>(
            c.leaf_idx,
            c.tree_size,
            &b64(&c.leaf_hash),
            &proof,
            &b64(&c.root),
        )
        .is_ok();
        assert_eq!(ok, !c.want_err, "{}: {}", f.display(), c.desc);
        if ok {
            accepted += 1
        } else {
            refused += 1
        }
    }
    assert!(
        accepted > 5 && refused > 40,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn consistency_cases_agree_with_the_reference_verifier() {
    let files = case_files("consistency");
    assert!(
        files.len() > 50,
        "found only {} consistency cases",
        files.len()
    );
    let (mut accepted, mut refused) = (0, 0);
    for f in files {
        let c: ConsistencyCase = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.iter().flatten().map(|h| b64(h)).collect();
        let ok = verify_consistency::<Sha256Merkle, _>(
            c.size1,
            c.size2,
            &proof,
            &b64(&c.root1),
            &b64(&c.root2),
        )
        .is_ok();
        assert_eq!(ok, !c.want_err, "{}: {}", f.display(), c.desc);
        if ok {
            accepted += 1
        } else {
            refused += 1
        }
    }
    assert!(
        accepted > 5 && refused > 40,
        "accepted {accepted}, refused {refused}"
    );
}

/// Our prover, run over the eight RFC 6962 reference leaves, must produce
/// exactly the proofs of every happy-path vector.
#[test]
fn prover_reproduces_the_reference_proofs() {
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let mut tree = MemoryTree::<Sha256Merkle>::new();
    for l in leaves {
        tree.push(l);
    }
    let mut checked = 0;
    for f in case_files("inclusion") {
        let c: InclusionCase = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        if c.want_err || !over_reference_leaves(&f) {
            continue;
        }
        assert_eq!(
            tree.root(c.tree_size),
            digest(&c.root).unwrap(),
            "{}",
            f.display()
        );
        let proof = tree
            .prover()
            .inclusion_proof(c.leaf_idx, c.tree_size)
            .unwrap();
        assert_eq!(Some(proof), digests(&c.proof), "{}", f.display());
        checked += 1;
    }
    for f in case_files("consistency") {
        let c: ConsistencyCase = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        if c.want_err || !over_reference_leaves(&f) {
            continue;
        }
        let proof = tree.prover().consistency_proof(c.size1, c.size2).unwrap();
        assert_eq!(Some(proof), digests(&c.proof), "{}", f.display());
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} happy paths checked");
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubtreeInclusionCase {
    leaf_idx: u64,
    start: u64,
    end: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubtreeConsistencyCase {
    start: u64,
    end: u64,
    size: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

/// Subtree proofs (Merkle Tree Certificates draft): inclusion of a leaf in a
/// subtree, and of a subtree in a tree.
#[test]
fn subtree_cases_agree_with_the_reference_verifier() {
    let (mut accepted, mut refused) = (0, 0);
    for f in case_files("subtreeinclusion") {
        let c: SubtreeInclusionCase = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.iter().flatten().map(|h| b64(h)).collect();
        let ok = verify_subtree_inclusion::<Sha256Merkle, _>(
            c.leaf_idx,
            c.start,
            c.end,
            &b64(&c.leaf_hash),
            &proof,
            &b64(&c.root),
        )
        .is_ok();
        assert_eq!(ok, !c.want_err, "{}: {}", f.display(), c.desc);
        if ok {
            accepted += 1
        } else {
            refused += 1
        }
    }
    for f in case_files("subtreeconsistency") {
        let c: SubtreeConsistencyCase =
            serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.iter().flatten().map(|h| b64(h)).collect();
        let ok = verify_subtree_consistency::<Sha256Merkle, _>(
            c.start,
            c.end,
            c.size,
            &proof,
            &b64(&c.root1),
            &b64(&c.root2),
        )
        .is_ok();
        assert_eq!(ok, !c.want_err, "{}: {}", f.display(), c.desc);
        if ok {
            accepted += 1
        } else {
            refused += 1
        }
    }
    assert!(
        accepted > 10 && refused > 80,
        "accepted {accepted}, refused {refused}"
    );
}
