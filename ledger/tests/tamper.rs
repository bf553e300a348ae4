//! Tamper evidence: random byte flips, truncations, block swaps and duplicated
//! blocks in every stored file, hundreds of tries. The audit must detect each
//! one and name the file (and, for segments, the segment and block).
//! Recovery on open must truncate a torn tail but refuse real damage.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{audit, blocks, open, tagged_entry};
use ledger::store::format::{self, FrameHeader};
use ledger::store::{EmbeddedStore, Store, StoreError};
use rand::{Rng, SeedableRng};

const TRIES: usize = 400;

/// A closed log with several segments, sealed id files and many heads.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..120u64 {
        let entries = (0..(i % 9 + 1))
            .map(|j| tagged_entry(i * 100 + j))
            .collect();
        store.append(entries).unwrap();
        if i % 11 == 0 {
            store.sign_head().unwrap();
        }
    }
    drop(store);
    assert_eq!(audit(dir.path()).problem, None, "the fixture is sound");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    v.sort();
    v
}

#[test]
fn every_tampering_is_detected_and_named() {
    let seed: u64 = std::env::var("TAMPER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("tamper test seed {seed} (rerun with TAMPER_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clean = fixture();
    let all = files(clean.path());
    let segments: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert!(
        segments.len() >= 3,
        "fixture has {} segments",
        segments.len()
    );
    let mut counts = std::collections::BTreeMap::new();
    // Draws that cannot tamper (a segment too short to swap or duplicate a
    // block in) are drawn again: TRIES tamperings are made, not attempted.
    let (mut attempt, mut performed, mut redrawn) = (0usize, 0usize, 0usize);
    while performed < TRIES {
        attempt += 1;
        assert!(
            attempt <= 10 * TRIES,
            "only {performed} of {TRIES} tamperings could be made (seed {seed})"
        );
        let work = tempfile::tempdir().unwrap();
        copy_dir(clean.path(), work.path());
        let kind = rng.gen_range(0..4);
        // Block swaps and duplicates only make sense in segments.
        let target = if kind >= 2 {
            segments[rng.gen_range(0..segments.len())].clone()
        } else {
            all[rng.gen_range(0..all.len())].clone()
        };
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        let path = work.path().join(&name);
        let mut bytes = fs::read(&path).unwrap();
        let what = match kind {
            0 => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
                format!("flip byte {i}")
            }
            1 => {
                let cut = rng.gen_range(0..bytes.len());
                bytes.truncate(cut);
                format!("truncate to {cut}")
            }
            2 => {
                let b = blocks(&bytes);
                if b.len() < 2 {
                    redrawn += 1;
                    continue;
                }
                let i = rng.gen_range(0..b.len() - 1);
                let (a, c) = (b[i], b[i + 1]);
                let mut swapped = bytes[..a.0].to_vec();
                swapped.extend_from_slice(&bytes[c.0..c.1]);
                swapped.extend_from_slice(&bytes[a.0..a.1]);
                swapped.extend_from_slice(&bytes[c.1..]);
                bytes = swapped;
                format!("swap blocks {i} and {}", i + 1)
            }
            _ => {
                let b = blocks(&bytes);
                if b.is_empty() {
                    redrawn += 1;
                    continue;
                }
                let i = rng.gen_range(0..b.len());
                let dup = bytes[b[i].0..b[i].1].to_vec();
                bytes.splice(b[i].1..b[i].1, dup);
                format!("duplicate block {i}")
            }
        };
        fs::write(&path, &bytes).unwrap();
        performed += 1;
        let report = audit(work.path());
        // What a crash can leave (a derived file cut short or its last record
        // torn, heads lost at the end) is reported as recoverable, not as
        // damage: opening rebuilds it from the segments. Never a segment.
        if report.problem.is_none() {
            let r = report.recoverable.first().unwrap_or_else(|| {
                panic!("attempt {attempt} (seed {seed}): {what} in {name} went undetected")
            });
            assert_eq!(r.file, name, "attempt {attempt} (seed {seed}): {what}: {r}");
            assert!(
                !name.ends_with(".seg") && (kind == 1 || name == format::INDEX_FILE),
                "attempt {attempt} (seed {seed}): {what} in {name} is damage, not a crash: {r}"
            );
            // Recoverable means exactly that: opening repairs it, whole.
            let n = open(work.path()).len();
            let after = audit(work.path());
            assert_eq!(
                (after.problem, after.recoverable, after.entries),
                (None, Vec::new(), n),
                "attempt {attempt} (seed {seed}): {what} in {name}"
            );
            *counts.entry("recoverable".to_string()).or_insert(0) += 1;
            continue;
        }
        let problem = report.problem.unwrap();
        assert_eq!(
            problem.file, name,
            "attempt {attempt} (seed {seed}): {what} in {name} was reported as: {problem}"
        );
        if name.ends_with(".seg") {
            let seg = format::parse_segment_name(&name);
            assert_eq!(problem.segment, seg, "attempt {attempt}: {problem}");
            if kind >= 2 {
                assert!(
                    problem.block.is_some(),
                    "attempt {attempt}: {what} names no block: {problem}"
                );
            }
        }
        *counts
            .entry(name.rsplit('.').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.values().sum::<usize>(), TRIES, "{counts:?}");
    eprintln!(
        "detected every one of {performed} tamperings ({redrawn} draws redrawn); by file kind: {counts:?}"
    );
}

fn last_segment(dir: &Path) -> PathBuf {
    files(dir)
        .into_iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap()
}

/// The benchmarks' floor under the audit reads exactly the blocks the audit
/// checks, and is not measured on a damaged log.
#[test]
fn the_floor_decodes_every_block_the_audit_checks_and_refuses_damage() {
    let dir = fixture();
    let report = audit(dir.path());
    let floor = ledger::store::floor(dir.path()).unwrap();
    assert_eq!(floor.blocks, report.blocks);
    let segments: u64 = files(dir.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(floor.bytes, segments);
    assert!(
        floor.raw_bytes >= report.entry_bytes,
        "{floor:?} {report:?}"
    );
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let b = blocks(&bytes);
    bytes[b[0].0 + 60] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let err = ledger::store::floor(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn a_torn_tail_is_truncated_on_open() {
    let dir = fixture();
    let n = open(dir.path()).len();
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let whole = bytes.len();
    // Half of a block that never finished: header and some payload.
    let frame = FrameHeader::frame(&[1, 2, 3, 4, 5, 6, 7, 8], 8, n, 1);
    bytes.extend_from_slice(&frame[..frame.len() - 3]);
    fs::write(&seg, &bytes).unwrap();
    let report = audit(dir.path());
    assert_eq!(report.problem, None, "a torn tail is not damage");
    assert!(
        report
            .recoverable
            .iter()
            .any(|r| r.what.contains("a torn write at offset")
                && r.what.contains("opening truncates it")),
        "the audit reports the torn tail as recoverable: {:?}",
        report.recoverable
    );
    let store = open(dir.path());
    assert_eq!(store.len(), n);
    drop(store);
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, whole);
    assert_eq!(audit(dir.path()).problem, None);
}

#[test]
fn a_damaged_block_before_valid_ones_refuses_to_open() {
    let dir = fixture();
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let b = blocks(&bytes);
    assert!(b.len() >= 2);
    bytes[b[0].0 + 60] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    // The index is cut so that recovery has to re-read the damaged block.
    let index = dir.path().join(format::INDEX_FILE);
    let idx = fs::read(&index).unwrap();
    let keep = idx.len() - b.len() * format::INDEX_RECORD_LEN;
    fs::write(&index, &idx[..keep]).unwrap();
    let err = EmbeddedStore::open(dir.path(), common::key(), common::small_config())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// Blocks are hashed on every core and may finish in any order; the audit
/// must still name the first damaged block of the log, whichever thread
/// found which first.
#[test]
fn of_several_damaged_blocks_the_first_is_named() {
    let clean = fixture();
    let mut segments: Vec<PathBuf> = files(clean.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let first_seg = &segments[1];
    let first_blocks = blocks(&fs::read(first_seg).unwrap());
    assert!(first_blocks.len() >= 8, "{} blocks", first_blocks.len());
    let last_blocks = blocks(&fs::read(segments.last().unwrap()).unwrap());
    let mid = first_blocks.len() / 2;
    for (early, late) in [(1, first_blocks.len() - 1), (mid, mid + 1)] {
        let work = tempfile::tempdir().unwrap();
        copy_dir(clean.path(), work.path());
        let damage = |seg: &Path, block: (usize, usize)| {
            let path = work.path().join(seg.file_name().unwrap());
            let mut bytes = fs::read(&path).unwrap();
            bytes[block.1 - 1] ^= 0x55;
            fs::write(&path, &bytes).unwrap();
        };
        // The later damage first, in the last segment and later in this one.
        damage(segments.last().unwrap(), last_blocks[0]);
        damage(first_seg, first_blocks[late]);
        damage(first_seg, first_blocks[early]);
        let problem = audit(work.path()).problem.expect("damage found");
        assert_eq!(
            (problem.file.as_str(), problem.block.map(|b| b.0 as usize)),
            (
                first_seg.file_name().unwrap().to_str().unwrap(),
                Some(first_blocks[early].0)
            ),
            "{problem}"
        );
        assert!(problem.what.contains("checksum"), "{problem}");
    }
}

#[test]
fn a_damaged_indexed_block_is_never_handed_out() {
    let dir = fixture();
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let b = blocks(&bytes);
    bytes[b[0].0 + 60] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let store = open(dir.path());
    let n = store.len();
    let refused = (0..n)
        .filter(|&i| matches!(store.entry(i), Err(StoreError::Corrupt { .. })))
        .count();
    assert!(refused > 0, "reads of the damaged block fail");
}

/// Derived files behind the segments, a missing sealed ids file and lost
/// head records: the state a crash leaves. The audit checks past each, calls
/// them recoverable (not damage) and says what opening does; opening does it.
#[test]
fn what_a_crash_leaves_is_recoverable_and_opening_repairs_it() {
    let dir = fixture();
    let p = |f: &str| dir.path().join(f);
    let cut = |f: &str, keep: u64| {
        let file = fs::OpenOptions::new().write(true).open(p(f)).unwrap();
        file.set_len(keep).unwrap();
    };
    let len = |f: &str| fs::metadata(p(f)).unwrap().len();
    cut(format::INDEX_FILE, len(format::INDEX_FILE) / 2 + 3);
    cut(format::LEAVES_FILE, len(format::LEAVES_FILE) / 3);
    cut(format::NODES_FILE, 0);
    cut(format::HEADS_FILE, len(format::HEADS_FILE) - 10);
    fs::remove_file(p(&format::ids_name(1))).unwrap();
    let report = audit(dir.path());
    assert_eq!(report.problem, None, "{:?}", report.recoverable);
    let files: std::collections::BTreeSet<&str> =
        report.recoverable.iter().map(|r| r.file.as_str()).collect();
    for f in [
        format::INDEX_FILE,
        format::LEAVES_FILE,
        format::NODES_FILE,
        format::HEADS_FILE,
    ] {
        assert!(files.contains(f), "{f}: {:?}", report.recoverable);
    }
    assert!(
        report
            .recoverable
            .iter()
            .all(|r| r.what.contains("opening")),
        "each says what opening does: {:?}",
        report.recoverable
    );
    drop(open(dir.path()));
    let after = audit(dir.path());
    assert_eq!((after.problem, after.recoverable), (None, Vec::new()));
}

/// Heads with sound checksums but a forged signature, or out of order: the
/// first such record is named (heads are verified on every core, problems
/// still named in record order).
#[test]
fn a_forged_or_out_of_order_head_is_named_by_its_first_record() {
    let fixture = fixture();
    let heads = fs::read(fixture.path().join(format::HEADS_FILE)).unwrap();
    let len = format::HEAD_RECORD_LEN;
    let n = heads.len() / len;
    assert!(n >= 12, "{n} heads");
    let record = |b: &[u8], i: usize| format::decode_head(&b[i * len..(i + 1) * len]).unwrap();
    let forge = |b: &mut Vec<u8>, i: usize| {
        use ed25519_dalek::Signer;
        let other = ledger::keys::generate().unwrap();
        let head = record(b, i).head;
        let forged = ledger::SignedTreeHead {
            head,
            signature: other.sign(&head.signing_message().0).to_bytes(),
        };
        b[i * len..(i + 1) * len].copy_from_slice(&format::encode_head(&forged));
    };
    let swap = |b: &mut Vec<u8>, i: usize| {
        let (a, c) = (
            b[i * len..(i + 1) * len].to_vec(),
            b[(i + 1) * len..(i + 2) * len].to_vec(),
        );
        b[i * len..(i + 1) * len].copy_from_slice(&c);
        b[(i + 1) * len..(i + 2) * len].copy_from_slice(&a);
    };
    let named = |b: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(fixture.path(), dir.path());
        fs::write(dir.path().join(format::HEADS_FILE), b).unwrap();
        let p = audit(dir.path()).problem.expect("a problem");
        assert_eq!(p.file, format::HEADS_FILE);
        p.what
    };
    let (late, early) = (n - 2, n / 2);
    let mut b = heads.clone();
    forge(&mut b, late);
    assert!(
        named(&b).starts_with(&format!("record {late} ")),
        "{}",
        named(&b)
    );
    let mut b = heads.clone();
    swap(&mut b, early);
    let what = named(&b);
    assert!(
        what.starts_with(&format!("record {} ", early + 1)) && what.contains("goes back"),
        "{what}"
    );
    // Both: the earlier record is named, whichever check found it.
    forge(&mut b, late);
    assert!(named(&b).starts_with(&format!("record {} ", early + 1)));
    let mut b = heads.clone();
    forge(&mut b, early);
    swap(&mut b, late - 1);
    assert!(
        named(&b).starts_with(&format!("record {early} ")),
        "{}",
        named(&b)
    );
}
