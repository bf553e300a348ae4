//! The contract every [`Store`] implementation keeps, as tests generic over a
//! [`Harness`]: appends read back and prove, indices have no gaps, heads are
//! kept and found, reopening restores everything, acknowledged appends survive
//! SIGKILL, and stored bytes changed behind the store's back are never handed
//! out and are named by the audit.
//!
//! A test binary per store implements [`Harness`] and expands
//! [`store_contract!`], which declares one `#[test]` per clause (and the
//! crash test's child process).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ledger::merkle::{verify_consistency, verify_inclusion, Blake3Merkle};
use ledger::store::{Store, StoreError};
use ledger::{entry_id, Digest, MerkleHasher, SignedTreeHead};
use rand::{Rng, SeedableRng};

use crate::common::{key, tag_of, tagged_entry};

/// What an offline audit of a log's stored bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audit {
    Intact,
    /// A crash-consistent state that opening repairs (what it will do).
    Recoverable(Vec<String>),
    /// Damage: the entries `[from, to)` it was found in when it can say.
    Damaged {
        entries: Option<(u64, u64)>,
        what: String,
    },
}

/// One store implementation under test: it makes fresh, empty places for a
/// log and reaches their stored bytes behind the store's back.
pub trait Harness {
    type Place: Place;
    fn fresh(&self) -> Self::Place;
    /// The largest entry the stores it opens take.
    fn max_entry_bytes(&self) -> usize;
}

/// Where one log lives.
pub trait Place {
    /// Opens the log here, creating it if new, as a node does at start.
    fn open(&self, key: SigningKey) -> Result<Box<dyn Store>, StoreError>;
    /// Names this place for another process ([`Place::from_locator`]).
    fn locator(&self) -> String;
    fn from_locator(locator: &str) -> Self
    where
        Self: Sized;
    /// Changes stored bytes of entry `index` while no store has it open.
    fn alter_entry(&self, index: u64);
    /// Checks the stored bytes without opening the log (no repair).
    fn audit(&self) -> Audit;
}

/// Declares the contract's tests for a harness built by `$harness`.
#[macro_export]
macro_rules! store_contract {
    ($harness:expr) => {
        #[test]
        fn appended_entries_read_back_and_prove() {
            contract::appended_entries_read_back_and_prove(&$harness);
        }
        #[test]
        fn bad_appends_are_refused_and_write_nothing() {
            contract::bad_appends_are_refused_and_write_nothing(&$harness);
        }
        #[test]
        fn concurrent_appenders_get_gapless_indices_and_lose_nothing() {
            contract::concurrent_appenders_get_gapless_indices_and_lose_nothing(&$harness);
        }
        #[test]
        fn reopening_restores_entries_tree_heads_and_ids() {
            contract::reopening_restores_entries_tree_heads_and_ids(&$harness);
        }
        #[test]
        fn every_signed_head_is_kept_and_found_by_size() {
            contract::every_signed_head_is_kept_and_found_by_size(&$harness);
        }
        #[test]
        fn heads_asked_for_soon_are_shared_and_cover_every_commit() {
            contract::heads_asked_for_soon_are_shared_and_cover_every_commit(&$harness);
        }
        #[test]
        fn a_different_key_cannot_open_the_log() {
            contract::a_different_key_cannot_open_the_log(&$harness);
        }
        #[test]
        fn altered_entries_are_never_handed_out_and_are_named() {
            contract::altered_entries_are_never_handed_out_and_are_named(&$harness);
        }
        #[test]
        fn acknowledged_entries_survive_sigkill() {
            contract::acknowledged_entries_survive_sigkill(&$harness, "crash_child");
        }
        /// The crash test's child process: not a test of its own (ignored,
        /// never counted), run only by `acknowledged_entries_survive_sigkill`.
        #[test]
        #[ignore = "the child process of acknowledged_entries_survive_sigkill"]
        fn crash_child() {
            contract::crash_child(&$harness);
        }
    };
}

fn open<P: Place>(place: &P) -> Box<dyn Store> {
    place.open(key()).expect("the log opens")
}

/// The Merkle tree hash of `entries` (RFC 9162, section 2.1.1), computed
/// here by the definition, apart from any store's code: every store agrees
/// with it, so any two stores agree with each other.
fn reference_root(entries: &[Vec<u8>]) -> Digest {
    match entries.len() {
        0 => Blake3Merkle::empty_root(),
        1 => Blake3Merkle::hash_leaf(&entries[0]),
        n => {
            // The largest power of two below n.
            let k = n.next_power_of_two() / 2;
            Blake3Merkle::hash_children(
                &reference_root(&entries[..k]),
                &reference_root(&entries[k..]),
            )
        }
    }
}

pub fn appended_entries_read_back_and_prove<H: Harness>(h: &H) {
    let place = h.fresh();
    let store = open(&place);
    assert!(store.is_empty());
    let mut all = Vec::new();
    for batch in 0..40u64 {
        let entries: Vec<Vec<u8>> = (0..(batch % 7 + 1))
            .map(|i| tagged_entry(batch * 100 + i))
            .collect();
        let got = store.append(entries.clone()).unwrap();
        assert_eq!(got.first_index, all.len() as u64, "indices follow on");
        assert_eq!(
            got.ids,
            entries.iter().map(|e| entry_id(e)).collect::<Vec<_>>()
        );
        all.extend(entries);
    }
    let n = all.len() as u64;
    assert_eq!(store.len(), n);
    assert_eq!(store.entries(0, n).unwrap(), all);
    assert_eq!(store.entries(5, 9).unwrap(), all[5..9].to_vec());
    let head = store.sign_head().unwrap();
    assert_eq!(head.head.size, n);
    assert_eq!(head.head.root, reference_root(&all));
    head.verify(&key().verifying_key()).unwrap();
    assert_eq!(store.public_key(), key().verifying_key());
    for (i, e) in all.iter().enumerate() {
        let i = i as u64;
        assert_eq!(&store.entry(i).unwrap(), e);
        assert_eq!(store.entry_id(i).unwrap(), entry_id(e));
        assert_eq!(store.find(&entry_id(e)).unwrap(), Some(i));
        let proof = store.inclusion_proof(i, n).unwrap();
        verify_inclusion::<Blake3Merkle>(i, n, &entry_id(e), &proof, &head.head.root).unwrap();
    }
    for size1 in 1..=n {
        assert_eq!(
            store.root(size1).unwrap(),
            reference_root(&all[..size1 as usize])
        );
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
    assert!(store.entries(n - 1, n + 1).is_err());
    assert!(store.inclusion_proof(0, n + 1).is_err());
    assert!(store.consistency_proof(3, n + 1).is_err());
    assert_eq!(store.find(&entry_id(b"never appended")).unwrap(), None);
}

pub fn bad_appends_are_refused_and_write_nothing<H: Harness>(h: &H) {
    let place = h.fresh();
    let store = open(&place);
    assert!(matches!(store.append(vec![]), Err(StoreError::EmptyAppend)));
    let huge = vec![0u8; h.max_entry_bytes() + 1];
    assert!(matches!(
        store.append(vec![tagged_entry(1), huge]),
        Err(StoreError::EntryTooLarge { .. })
    ));
    assert_eq!(
        store.len(),
        0,
        "a refused append writes none of its entries"
    );
    // The largest allowed entry fits, even past any block or page size.
    let big = vec![7u8; h.max_entry_bytes()];
    store.append(vec![big.clone(), big.clone()]).unwrap();
    assert_eq!(store.entry(1).unwrap(), big);
    drop(store);
    assert_eq!(place.audit(), Audit::Intact);
}

pub fn concurrent_appenders_get_gapless_indices_and_lose_nothing<H: Harness>(h: &H) {
    let place = h.fresh();
    let store: Arc<dyn Store> = Arc::from(open(&place));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..100u64)
                    .map(|i| {
                        let tags = [t * 1_000_000 + 2 * i, t * 1_000_000 + 2 * i + 1];
                        let got = store
                            .append(tags.iter().map(|&t| tagged_entry(t)).collect())
                            .unwrap();
                        (tags, got.first_index)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut at: HashMap<u64, u64> = HashMap::new();
    for thread in threads {
        for (tags, first) in thread.join().unwrap() {
            for (k, tag) in tags.into_iter().enumerate() {
                assert_eq!(at.insert(first + k as u64, tag), None, "index given twice");
            }
        }
    }
    assert_eq!(store.len(), 1600);
    assert_eq!(at.len(), 1600, "every index from 0 to 1599, once");
    for (index, tag) in at {
        assert_eq!(store.entry(index).unwrap(), tagged_entry(tag));
    }
    drop(store);
    assert_eq!(place.audit(), Audit::Intact);
}

pub fn reopening_restores_entries_tree_heads_and_ids<H: Harness>(h: &H) {
    let place = h.fresh();
    let entries: Vec<Vec<u8>> = (0..300).map(tagged_entry).collect();
    let head = {
        let store = open(&place);
        for e in &entries {
            store.append(vec![e.clone()]).unwrap();
        }
        store.sign_head().unwrap()
    };
    let store = open(&place);
    assert_eq!(store.len(), 300);
    assert_eq!(store.entries(0, 300).unwrap(), entries);
    assert_eq!(store.root(300).unwrap(), reference_root(&entries));
    assert_eq!(store.latest_head().unwrap(), head);
    for i in [0u64, 1, 150, 299] {
        assert_eq!(
            store.find(&entry_id(&entries[i as usize])).unwrap(),
            Some(i)
        );
    }
    // Appends go on where the log ended.
    assert_eq!(
        store.append(vec![tagged_entry(300)]).unwrap().first_index,
        300
    );
    drop(store);
    assert_eq!(place.audit(), Audit::Intact);
}

pub fn every_signed_head_is_kept_and_found_by_size<H: Harness>(h: &H) {
    let place = h.fresh();
    let mut signed = Vec::new();
    {
        let store = open(&place);
        assert_eq!(store.latest_head(), None);
        for round in 0..12u64 {
            store.append(vec![tagged_entry(round)]).unwrap();
            signed.push(store.sign_head().unwrap());
        }
    }
    let store = open(&place);
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
    // A store may sign an idle tail on its own a moment before: the first
    // head of that size is found either way.
    let found = store.first_head_covering(13).unwrap().unwrap();
    assert_eq!((found.head.size, found.head.root), (13, newest.head.root));
    assert!(found.head.timestamp_ms <= newest.head.timestamp_ms);
    assert_eq!(store.latest_head().unwrap().head.size, 13);
    found.verify(&key().verifying_key()).unwrap();
}

pub fn heads_asked_for_soon_are_shared_and_cover_every_commit<H: Harness>(h: &H) {
    let place = h.fresh();
    let store = open(&place);
    for round in 0..3u64 {
        store
            .append((0..5).map(|i| tagged_entry(round * 10 + i)).collect())
            .unwrap();
        let len = store.len();
        // Fifty readers ask at once: they share heads (one per gap), and
        // each head covers everything committed before the ask.
        let asks: Vec<_> = (0..50)
            .map(|_| store.request_head_soon().unwrap())
            .collect();
        let heads: Vec<SignedTreeHead> = asks.into_iter().map(|a| a.wait().unwrap()).collect();
        let mut distinct: Vec<_> = heads.iter().map(|h| h.signature).collect();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() <= 3,
            "round {round}: {} heads for 50 asks",
            distinct.len()
        );
        for h in &heads {
            assert!(
                h.head.size >= len,
                "round {round}: a head of {} after {len} were committed",
                h.head.size
            );
            h.verify(&key().verifying_key()).unwrap();
        }
    }
    // One reader asking after each commit (as the receipt relay does) gets
    // a head at most once per gap, not one per ask: the count is bound by
    // the time taken, however slow the machine.
    let config = crate::common::small_config();
    let gap = config.head_gap.min(config.head_interval);
    let started = Instant::now();
    let mut signed = Vec::new();
    for round in 0..10u64 {
        store.append(vec![tagged_entry(50 + round)]).unwrap();
        let h = store.request_head_soon().unwrap().wait().unwrap();
        assert_eq!(h.head.size, store.len());
        signed.push(h.signature);
    }
    signed.dedup();
    let bound = (started.elapsed().as_secs_f64() / gap.as_secs_f64()).floor() as usize + 1;
    assert!(
        signed.len() <= bound,
        "{} heads in {:?}",
        signed.len(),
        started.elapsed()
    );
    // Asked for at once, a head is signed for each ask over new entries.
    store.append(vec![tagged_entry(100)]).unwrap();
    let a = store.sign_head().unwrap();
    store.append(vec![tagged_entry(101)]).unwrap();
    let b = store.sign_head().unwrap();
    assert_eq!((a.head.size + 1, b.head.size), (b.head.size, store.len()));
}

pub fn a_different_key_cannot_open_the_log<H: Harness>(h: &H) {
    let place = h.fresh();
    open(&place).append(vec![tagged_entry(1)]).unwrap();
    let other = SigningKey::from_bytes(&[1; 32]);
    let err = place.open(other).err().expect("refused");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    open(&place);
}

/// Stored bytes of an entry changed behind the store's back, in the middle
/// of the log and at its very end (an acknowledged entry is never mistaken
/// for a torn write): the store refuses to open or refuses to read it, never
/// hands the altered bytes out, and the audit names where.
pub fn altered_entries_are_never_handed_out_and_are_named<H: Harness>(h: &H) {
    for which in ["middle", "last"] {
        let place = h.fresh();
        let entries: Vec<Vec<u8>> = (0..200).map(tagged_entry).collect();
        {
            let store = open(&place);
            for chunk in entries.chunks(10) {
                store.append(chunk.to_vec()).unwrap();
            }
            store.sign_head().unwrap();
        }
        let index = if which == "middle" { 97 } else { 199 };
        place.alter_entry(index);
        match place.audit() {
            Audit::Damaged { entries, what } => {
                if let Some((from, to)) = entries {
                    assert!(
                        (from..to).contains(&index),
                        "{which}: the audit names entries {from}..{to}, not {index}: {what}"
                    );
                }
            }
            other => panic!("{which}: altered entry {index} not found by the audit: {other:?}"),
        }
        let Ok(store) = place.open(key()) else {
            continue; // refusing to open is keeping the contract
        };
        assert_eq!(
            store.len(),
            200,
            "{which}: an acknowledged entry was dropped"
        );
        match store.entry(index) {
            Err(StoreError::Corrupt { .. }) => {}
            other => panic!("{which}: entry {index} handed out or refused wrongly: {other:?}"),
        }
        assert!(store.entries(0, 200).is_err(), "{which}: range read");
        for i in (0..200).filter(|&i| i != index) {
            if let Ok(bytes) = store.entry(i) {
                assert_eq!(bytes, entries[i as usize], "{which}: entry {i}");
            }
        }
    }
}

const CRASH_ROUNDS: usize = 60;

/// The crash test's child: appends from three threads until killed,
/// printing `ack <index> <tag>` for each acknowledged entry.
pub fn crash_child<H: Harness>(_: &H) {
    let locator = std::env::var("CONTRACT_CRASH_PLACE")
        .expect("run only as the child of acknowledged_entries_survive_sigkill");
    let start_tag: u64 = std::env::var("CONTRACT_CRASH_TAG")
        .unwrap()
        .parse()
        .unwrap();
    let store: Arc<dyn Store> = Arc::from(open(&H::Place::from_locator(&locator)));
    let next_tag = Arc::new(AtomicU64::new(start_tag));
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (store, next_tag, out) =
                (Arc::clone(&store), Arc::clone(&next_tag), Arc::clone(&out));
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(start_tag + t);
                loop {
                    let n = rng.gen_range(1..20);
                    let tags: Vec<u64> = (0..n)
                        .map(|_| next_tag.fetch_add(1, Ordering::Relaxed))
                        .collect();
                    let appended = store
                        .append(tags.iter().map(|&t| tagged_entry(t)).collect())
                        .unwrap();
                    let mut out = out.lock().unwrap();
                    for (i, tag) in tags.iter().enumerate() {
                        writeln!(out, "ack {} {tag}", appended.first_index + i as u64).unwrap();
                    }
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A child process appends and is killed with SIGKILL at a random moment,
/// many times over on the same log. After each kill, before anything opens
/// the log, the audit sees no damage (a crash must be told apart from
/// tampering); after reopening, every acknowledged entry is there, whole, at
/// its acknowledged index, every entry present is whole, and the audit of
/// the reopened log finds nothing left to repair.
pub fn acknowledged_entries_survive_sigkill<H: Harness>(h: &H, child_test: &str) {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let place = h.fresh();
    let exe = std::env::current_exe().unwrap();
    let mut acked: HashMap<u64, u64> = HashMap::new(); // index -> tag
    let mut next_tag = 0u64;
    let mut kills_mid_write = 0;
    let mut crash_consistent = 0;
    for round in 0..CRASH_ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                child_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CONTRACT_CRASH_PLACE", place.locator())
            .env("CONTRACT_CRASH_TAG", next_tag.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, acking) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ack") {
                    let index: u64 = parts.next().unwrap().parse().unwrap();
                    let tag: u64 = parts.next().unwrap().parse().unwrap();
                    if acks.is_empty() {
                        let _ = first_ack.send(());
                    }
                    acks.push((index, tag));
                }
            }
            acks
        });
        // The kill comes while the child appends: a random moment after
        // its first acknowledgement, however slow the machine is to start it.
        acking
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the child acknowledged nothing"));
        let life = Duration::from_millis(rng.gen_range(5..60));
        let started = Instant::now();
        while started.elapsed() < life {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for (index, tag) in reader.join().unwrap() {
            assert_eq!(
                acked.insert(index, tag),
                None,
                "round {round}: index {index} acknowledged twice"
            );
        }
        next_tag += 1_000_000;

        match place.audit() {
            Audit::Intact => {}
            Audit::Recoverable(_) => crash_consistent += 1,
            damaged => panic!("round {round} (seed {seed}): a kill is not damage: {damaged:?}"),
        }

        let store = open(&place);
        let len = store.len();
        // One read of the whole log (a read per entry is a round trip per
        // entry on a database store).
        let all = store.entries(0, len).unwrap();
        for (&index, &tag) in &acked {
            assert!(
                index < len,
                "round {round} (seed {seed}): acknowledged entry {index} lost (log has {len})"
            );
            assert_eq!(
                all[index as usize],
                tagged_entry(tag),
                "round {round} (seed {seed}): entry {index}"
            );
        }
        for (i, e) in all.iter().enumerate() {
            assert!(
                tag_of(e).is_some(),
                "round {round} (seed {seed}): entry {i} is not whole"
            );
        }
        if (len as usize) > acked.len() {
            kills_mid_write += 1;
        }
        drop(store);
        assert_eq!(
            place.audit(),
            Audit::Intact,
            "round {round} (seed {seed}): opening repaired all"
        );
    }
    // Every round killed a child that was appending (see above).
    assert!(acked.len() >= CRASH_ROUNDS);
    let summary = format!(
        "{CRASH_ROUNDS} kills, {} acknowledged entries, {kills_mid_write} kills left durable but \
         unacknowledged entries, {crash_consistent} left a recoverable state for the audit \
         (seed {seed})",
        acked.len()
    );
    eprintln!("{summary}");
    // The test is about kills in the middle of writing: most must land there
    // (both stores: 60 of 60 on 2026-12-07), or it proved little.
    assert!(
        kills_mid_write >= CRASH_ROUNDS / 4 && crash_consistent >= CRASH_ROUNDS / 4,
        "too few kills landed mid-write: {summary}"
    );
}
