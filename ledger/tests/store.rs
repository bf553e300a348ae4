//! What the embedded store does beyond the `Store` contract (that is
//! `store_contract.rs`): group commits share blocks, segments roll, the queue
//! is bounded, one process owns a log, older formats are refused.

mod common;

use std::sync::Arc;

use common::{audit, key, open, small_config, tagged_entry};
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
