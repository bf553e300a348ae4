//! What the embedded store does beyond the `Store` contract (that is
//! `store_contract.rs`): group commits share blocks, segments roll, the queue
//! is bounded, one process owns a log, older formats are refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{audit, key, open, small_config, tagged_entry};
use ledger::store::format::{self, HEAD_RECORD_LEN, SEGMENT_HEADER_LEN};
use ledger::store::{EmbeddedStore, Store, StoreConfig, StoreError};

#[test]
fn group_commits_share_blocks_and_segments_roll() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::create(dir.path(), key(), StoreConfig::default()).unwrap());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    store.append(vec![tagged_entry(t * 1_000_000 + i)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(store);
    let report = audit(dir.path());
    assert_eq!(report.problem, None);
    assert!(
        report.blocks < 1600,
        "group commit packs appends into shared blocks ({} blocks)",
        report.blocks
    );

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..300 {
        store.append(vec![tagged_entry(i)]).unwrap();
    }
    let (segments, _) = store.disk_usage().unwrap();
    assert!(segments >= 3, "small segments roll: {segments}");
}

/// The end of a segment file's last block, and whether only zeros follow.
fn blocks_end(seg: &[u8]) -> (usize, bool) {
    let end = common::blocks(seg)
        .last()
        .map_or(SEGMENT_HEADER_LEN, |b| b.1);
    (end, seg[end..].iter().all(|&b| b == 0))
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn prepared_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".seg.zero")
        })
        .count()
}

/// Segments after the first, and head records, are zeroed ahead of need and
/// written in place (so an fsync need not commit a new file size); a sealed
/// segment, and the active one and the heads file once the log closes, end at
/// their last block or head. What a crash leaves (zeros past the last block
/// or head, a next segment half zeroed, a head torn over zeroed records) is
/// recoverable, and opening clears it without losing an entry.
#[test]
fn segments_are_zeroed_ahead_and_cut_to_their_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        segment_bytes: 64 << 10,
        ..small_config()
    };
    let store = EmbeddedStore::create(dir.path(), key(), config.clone()).unwrap();
    let mut tag = 0;
    while segment_files(dir.path()).len() < 4 {
        store
            .append((tag..tag + 7).map(tagged_entry).collect())
            .unwrap();
        tag += 7;
    }
    // Into the fourth segment's second half, so that its successor is being
    // (or has been) zeroed.
    while fs::read(segment_files(dir.path())[3].clone())
        .map(|b| blocks_end(&b).0)
        .unwrap()
        < 40 << 10
    {
        store
            .append((tag..tag + 7).map(tagged_entry).collect())
            .unwrap();
        tag += 7;
    }
    for _ in 0..3 {
        store.sign_head().unwrap();
    }
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 4, "{segs:?}");
    for (i, seg) in segs.iter().enumerate() {
        let bytes = fs::read(seg).unwrap();
        let (end, zeros_after) = blocks_end(&bytes);
        assert!(zeros_after, "segment {i}: only zeros follow its last block");
        if i < 3 {
            assert_eq!(
                bytes.len(),
                end,
                "sealed segment {i} ends at its last block"
            );
        } else {
            assert_eq!(
                bytes.len(),
                64 << 10,
                "the active segment was zeroed to its capacity"
            );
            assert!(end < bytes.len());
        }
    }

    // A copy taken now is what kill -9 would leave.
    let crashed = tempfile::tempdir().unwrap();
    for e in fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), crashed.path().join(e.file_name())).unwrap();
    }
    // Heads too are written over zeroed records, at least one after the last.
    let heads = fs::read(crashed.path().join(format::HEADS_FILE)).unwrap();
    let in_use = format::heads_in_use(&heads);
    assert!(
        in_use >= 3 && heads.len() / HEAD_RECORD_LEN > in_use,
        "{in_use} heads in {} bytes",
        heads.len()
    );
    let n = store.len();
    let report = audit(crashed.path());
    assert_eq!(report.problem, None, "{:?}", report.recoverable);
    assert_eq!(report.entries, n);
    assert!(
        report.recoverable.iter().any(|r| r.file == "00000003.seg"
            && r.what.contains("zeros after the last block")
            && r.what.contains("opening cuts them off")),
        "{:?}",
        report.recoverable
    );
    assert!(
        report
            .recoverable
            .iter()
            .any(|r| r.file == format::HEADS_FILE
                && r.what.contains("zeroed records after the last head")),
        "{:?}",
        report.recoverable
    );
    assert_eq!(report.heads, in_use as u64);
    let copy = |from: &Path| {
        let to = tempfile::tempdir().unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
        to
    };
    // A head torn while it was written over the zeroed records: never handed
    // out, so not damage; opening cuts it off.
    let last = heads[(in_use - 1) * HEAD_RECORD_LEN..][..HEAD_RECORD_LEN].to_vec();
    let torn = copy(crashed.path());
    let mut heads_torn = heads.clone();
    heads_torn[in_use * HEAD_RECORD_LEN..][..100].copy_from_slice(&last[..100]);
    fs::write(torn.path().join(format::HEADS_FILE), &heads_torn).unwrap();
    let report = audit(torn.path());
    assert_eq!(report.problem, None, "{:?}", report.recoverable);
    assert!(
        report
            .recoverable
            .iter()
            .any(|r| r.file == format::HEADS_FILE
                && r.what.contains(&format!("record {in_use} is a torn write"))),
        "{:?}",
        report.recoverable
    );
    let reopened = EmbeddedStore::open(torn.path(), key(), config.clone()).unwrap();
    assert_eq!(reopened.len(), n);
    assert_eq!(
        reopened.latest_head().map(|h| h.head),
        format::decode_head(&last).map(|h| h.head)
    );
    drop(reopened);
    let after = audit(torn.path());
    assert_eq!((after.problem, after.recoverable), (None, Vec::new()));
    // The same bytes ending a heads file with no zeroed records (a closed
    // log's) are damage.
    let damaged = copy(crashed.path());
    let mut heads_closed = heads[..(in_use + 1) * HEAD_RECORD_LEN].to_vec();
    heads_closed[in_use * HEAD_RECORD_LEN..][..100].copy_from_slice(&last[..100]);
    fs::write(damaged.path().join(format::HEADS_FILE), &heads_closed).unwrap();
    let problem = audit(damaged.path()).problem.expect("damage");
    assert_eq!(problem.file, format::HEADS_FILE, "{problem}");
    assert!(EmbeddedStore::open(damaged.path(), key(), config.clone()).is_err());
    let reopened = EmbeddedStore::open(crashed.path(), key(), config.clone()).unwrap();
    assert_eq!(reopened.len(), n);
    assert_eq!(
        prepared_files(crashed.path()),
        0,
        "opening removes a half-zeroed next segment"
    );
    for i in (0..n).step_by(97) {
        assert_eq!(reopened.entry(i).unwrap(), store.entry(i).unwrap());
    }
    drop(reopened);
    let after = audit(crashed.path());
    assert_eq!(
        (after.problem, after.recoverable, after.entries),
        (None, Vec::new(), n)
    );

    // A clean close leaves no zeros and no half-prepared segment.
    drop(store);
    let report = audit(dir.path());
    assert_eq!((report.problem, report.recoverable), (None, Vec::new()));
    assert_eq!(prepared_files(dir.path()), 0);
    for seg in segment_files(dir.path()) {
        let bytes = fs::read(&seg).unwrap();
        assert_eq!(
            bytes.len(),
            blocks_end(&bytes).0,
            "{seg:?} ends at its last block"
        );
    }
    let heads = fs::read(dir.path().join(format::HEADS_FILE)).unwrap();
    assert_eq!(
        format::heads_in_use(&heads) * HEAD_RECORD_LEN,
        heads.len(),
        "no zeroed head records"
    );
    // More zeroed records than the writer ever leaves are judged the same
    // way by `verify` and by opening.
    let padded = copy(dir.path());
    let mut more = heads.clone();
    more.resize(heads.len() + (format::HEADS_AHEAD + 5) * HEAD_RECORD_LEN, 0);
    fs::write(padded.path().join(format::HEADS_FILE), &more).unwrap();
    let report = audit(padded.path());
    assert_eq!(report.problem, None, "{:?}", report.recoverable);
    assert!(report
        .recoverable
        .iter()
        .any(|r| r.what.contains("zeroed records")));
    let reopened = EmbeddedStore::open(padded.path(), key(), config.clone()).unwrap();
    assert_eq!(reopened.len(), n);
    drop(reopened);
    assert_eq!(audit(padded.path()).recoverable, Vec::new());

    // Reopened, it appends on (the active segment now grows as written).
    let store = EmbeddedStore::open(dir.path(), key(), config).unwrap();
    store.append(vec![tagged_entry(tag)]).unwrap();
    assert_eq!(store.entry(n).unwrap(), tagged_entry(tag));
    drop(store);
    assert_eq!(audit(dir.path()).problem, None);
}

#[test]
fn a_full_queue_is_refused_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        queue_depth: 1,
        ..StoreConfig::default()
    };
    let store = EmbeddedStore::create(dir.path(), key(), config).unwrap();
    let mut pending = Vec::new();
    let mut refused = 0;
    for i in 0..2000 {
        match store.submit(vec![tagged_entry(i)]) {
            Ok(p) => pending.push(p),
            Err(StoreError::QueueFull(1)) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 0, "a queue of one must fill up");
    let acked = pending.len() as u64;
    for p in pending {
        p.wait().unwrap();
    }
    assert_eq!(store.len(), acked);
}

#[test]
fn a_log_is_opened_by_one_owner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = EmbeddedStore::open(dir.path(), key(), small_config())
        .err()
        .expect("refused while open");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    open(dir.path());
}

#[test]
fn other_processes_can_tell_a_log_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(ledger::store::open_elsewhere(dir.path()));
    drop(store);
    assert!(!ledger::store::open_elsewhere(dir.path()));
}

/// A log written in an earlier store format is refused with a message that
/// says so and what to do, not as damage; the audit says the same.
#[test]
fn a_log_in_an_earlier_format_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    store.append(vec![common::tagged_entry(1)]).unwrap();
    drop(store);
    let meta = dir.path().join(ledger::store::format::META_FILE);
    let mut bytes = std::fs::read(&meta).unwrap();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&meta, &bytes).unwrap();
    let err = ledger::store::EmbeddedStore::open_or_create(
        dir.path(),
        common::key(),
        common::small_config(),
    )
    .err()
    .expect("a format-1 log is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("store format 1") && msg.contains("format 2"),
        "{msg}"
    );
    let report = common::audit(dir.path());
    assert!(report.problem.unwrap().what.contains("store format 1"));
}

#[test]
fn the_audit_counts_entries_by_kind_and_unknown_kinds_apart() {
    use ledger::entry::{kind_label, KINDS};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // One entry headed by each kind's tag (the audit reads only the two
    // header bytes), then two of a kind no build knows.
    let mut entries: Vec<Vec<u8>> = (0..KINDS)
        .map(|k| vec![ledger::entry::ENCODING_VERSION, k, 0])
        .collect();
    entries.push(vec![ledger::entry::ENCODING_VERSION, KINDS, 0]);
    entries.push(vec![ledger::entry::ENCODING_VERSION, 200, 0]);
    store.append(entries).unwrap();
    store.sign_head().unwrap();
    drop(store);
    let report = audit(dir.path());
    for k in 0..KINDS {
        let label = kind_label(k).unwrap();
        assert_eq!(report.kinds.get(label), Some(&1), "{label}");
    }
    assert_eq!(report.kinds.get("unknown"), Some(&2));
}
