//! The embedded store's behaviour: appends, reads, proofs, lookups, reopening,
//! segment rolls, bounds.

mod common;

use std::sync::Arc;

use common::{audit, key, open, small_config, tagged_entry};
use ledger::merkle::{verify_consistency, verify_inclusion, Blake3Merkle};
use ledger::store::{EmbeddedStore, Store, StoreConfig, StoreError};
use ledger::{entry_id, MerkleHasher};

#[test]
fn appended_entries_read_back_and_prove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut all = Vec::new();
    for batch in 0..40u64 {
        let entries: Vec<Vec<u8>> = (0..(batch % 7 + 1))
            .map(|i| tagged_entry(batch * 100 + i))
            .collect();
        let got = store.append(entries.clone()).unwrap();
        assert_eq!(got.first_index, all.len() as u64);
        assert_eq!(
            got.ids,
            entries.iter().map(|e| entry_id(e)).collect::<Vec<_>>()
        );
        all.extend(entries);
    }
    let n = all.len() as u64;
    assert_eq!(store.len(), n);
    assert_eq!(store.entries(0, n).unwrap(), all);
    let head = store.sign_head().unwrap();
    assert_eq!(head.head.size, n);
    head.verify(&key().verifying_key()).unwrap();
    for (i, e) in all.iter().enumerate() {
        let i = i as u64;
        assert_eq!(&store.entry(i).unwrap(), e);
        assert_eq!(store.find(&entry_id(e)).unwrap(), Some(i));
        let proof = store.inclusion_proof(i, n).unwrap();
        verify_inclusion::<Blake3Merkle>(
            i,
            n,
            &Blake3Merkle::hash_leaf(e),
            &proof,
            &head.head.root,
        )
        .unwrap();
    }
    for size1 in 1..=n {
        let proof = store.consistency_proof(size1, n).unwrap();
        verify_consistency::<Blake3Merkle>(
            size1,
            n,
            &proof,
            &store.root(size1).unwrap(),
            &head.head.root,
        )
        .unwrap();
    }
    assert!(matches!(
        store.entry(n),
        Err(StoreError::NoSuchEntry { .. })
    ));
    assert!(store.inclusion_proof(0, n + 1).is_err());
    assert_eq!(store.find(&entry_id(b"never appended")).unwrap(), None);
}

#[test]
fn reopening_restores_entries_tree_heads_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (n, root, head) = {
        let store = open(dir.path());
        for i in 0..300 {
            store.append(vec![tagged_entry(i)]).unwrap();
        }
        let head = store.sign_head().unwrap();
        (store.len(), store.root(300).unwrap(), head)
    };
    let store = open(dir.path());
    assert_eq!(store.len(), n);
    assert_eq!(store.root(n).unwrap(), root);
    assert_eq!(store.latest_head().unwrap().head.size, head.head.size);
    let (segments, _) = store.disk_usage().unwrap();
    assert!(segments >= 3, "small segments roll: {segments}");
    for i in [0u64, 1, 150, 299] {
        assert_eq!(store.find(&entry_id(&tagged_entry(i))).unwrap(), Some(i));
    }
    drop(store);
    assert_eq!(audit(dir.path()).problem, None);
}

#[test]
fn a_different_key_cannot_open_the_log() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let err = EmbeddedStore::open(dir.path(), other, small_config())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

#[test]
fn concurrent_appenders_share_group_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::create(dir.path(), key(), StoreConfig::default()).unwrap());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..200u64)
                    .map(|i| {
                        let tag = t * 1_000_000 + i;
                        (
                            tag,
                            store.append(vec![tagged_entry(tag)]).unwrap().first_index,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acks: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(store.len(), 1600);
    for (tag, index) in acks {
        assert_eq!(store.entry(index).unwrap(), tagged_entry(tag));
    }
    drop(store);
    let report = audit(dir.path());
    assert_eq!(report.problem, None);
    assert!(
        report.blocks < 1600,
        "group commit packs appends into shared blocks ({} blocks)",
        report.blocks
    );
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
fn bad_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(store.append(vec![]), Err(StoreError::EmptyAppend)));
    let huge = vec![0u8; small_config().max_entry_bytes + 1];
    assert!(matches!(
        store.append(vec![huge]),
        Err(StoreError::EntryTooLarge { .. })
    ));
    assert_eq!(store.len(), 0);
}

#[test]
fn entries_larger_than_a_block_limit_still_fit_one_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let big = vec![7u8; 64 << 10];
    store.append(vec![big.clone(), big.clone()]).unwrap();
    assert_eq!(store.entry(1).unwrap(), big);
    drop(store);
    assert_eq!(audit(dir.path()).problem, None);
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

#[test]
fn every_signed_head_is_kept_and_found_by_size_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut signed = Vec::new();
    {
        let store = open(dir.path());
        for round in 0..12u64 {
            store.append(vec![tagged_entry(round)]).unwrap();
            signed.push(store.sign_head().unwrap());
        }
    }
    let store = open(dir.path());
    for h in &signed {
        let found = store.first_head_covering(h.head.size).unwrap().unwrap();
        assert_eq!(found.head.size, h.head.size);
        assert_eq!(found.head.root, h.head.root);
        found.verify(&key().verifying_key()).unwrap();
    }
    // Size 0 is covered by the first head; past the end by none.
    assert_eq!(
        store.first_head_covering(0).unwrap().unwrap().head.size,
        signed[0].head.size
    );
    assert_eq!(store.first_head_covering(13).unwrap(), None);
    store.append(vec![tagged_entry(99)]).unwrap();
    let newest = store.sign_head().unwrap();
    // The writer may have signed size 13 on its own a moment before (it
    // signs an idle tail): the first head of that size is found either way.
    let found = store.first_head_covering(13).unwrap().unwrap();
    assert_eq!((found.head.size, found.head.root), (13, newest.head.root));
    assert!(found.head.timestamp_ms <= newest.head.timestamp_ms);
    found.verify(&key().verifying_key()).unwrap();
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
