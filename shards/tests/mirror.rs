//! A mirror following a real log (an embedded store under its own key):
//! runs of every shape are kept once and in order, and its copy proves
//! entries under the origin's own heads; what is not what the origin signed
//! (a changed entry, another key's head, a proof that does not lead to the
//! head) is refused and named, and leaves the copy as it was; an origin that
//! signs two histories is caught as a fork, with both heads kept, across a
//! restart; a copy whose state was lost after an append picks up from its
//! store.

mod common;

use ed25519_dalek::SigningKey;
use ledger::merkle::verify_inclusion;
use ledger::store::{Backend, EmbeddedStore, Store, StoreConfig};
use ledger::Blake3Merkle;
use shards::mirror::{Applied, LogRun, Mirror, MirrorError};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An origin log of `n` custody entries under `key`; `tag` makes its
/// history its own.
fn origin(dir: &std::path::Path, key: SigningKey, n: u64, tag: &str) -> EmbeddedStore {
    let store = EmbeddedStore::open_or_create(dir, key, StoreConfig::default()).unwrap();
    append(&store, 0..n, tag);
    store
}

fn append(store: &EmbeddedStore, range: std::ops::Range<u64>, tag: &str) {
    let entries: Vec<Vec<u8>> = range
        .map(|i| {
            common::observe(i, &format!("urn:epc:class:lgtin:4012345.012345.{tag}{i}")).to_bytes()
        })
        .collect();
    if !entries.is_empty() {
        store.append(entries).unwrap();
    }
}

/// The run `[low, high)` as the origin's node publishes it, under `head`.
fn run(store: &dyn Store, low: u64, high: u64, head: ledger::SignedTreeHead) -> LogRun {
    let size = head.head.size;
    LogRun {
        low,
        entries: store.entries(low, high).unwrap(),
        head,
        proof: if high == size || high == 0 {
            Vec::new()
        } else {
            store.consistency_proof(high, size).unwrap()
        },
    }
}

fn open(dir: &std::path::Path, origin_key: &SigningKey) -> Mirror {
    Mirror::open(
        &Backend::Embedded,
        dir,
        ("acme", 0),
        origin_key.verifying_key(),
        StoreConfig::default(),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn refused(r: Result<Applied, MirrorError>) -> String {
    match r {
        Err(e @ MirrorError::Refused { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_mirror_keeps_runs_of_every_shape_once_and_proves_entries_under_the_origin_heads() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key(1);
    let src = origin(&tmp.path().join("origin"), k.clone(), 100, "a");
    let head100 = src.sign_head().unwrap();
    let m = open(&tmp.path().join("mirror"), &k);
    let rt = rt();
    // A run that ends short of its head, then the rest in pieces, a
    // duplicate, an overlap and one that comes early.
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 0, 40, head100))).unwrap(),
        Applied::Kept(40)
    );
    assert_eq!(m.head(), None, "no head at the copy's size yet");
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 70, 100, head100))).unwrap(),
        Applied::Early { expected: 40 }
    );
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 0, 40, head100))).unwrap(),
        Applied::Kept(0)
    );
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 30, 70, head100))).unwrap(),
        Applied::Kept(30)
    );
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 70, 100, head100))).unwrap(),
        Applied::Kept(30)
    );
    assert_eq!(m.len(), 100);
    assert_eq!(m.head(), Some(head100));
    // The origin grows; a head alone announces where it is, then its entries.
    append(&src, 100..150, "a");
    let head150 = src.sign_head().unwrap();
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 100, 150, head150))).unwrap(),
        Applied::Kept(50)
    );
    let announced = run(&src, 150, 150, src.sign_head().unwrap());
    assert_eq!(rt.block_on(m.apply(&announced)).unwrap(), Applied::Kept(0));
    assert_eq!(m.head(), Some(announced.head));
    // The copy is the origin's log: same bytes, and its proofs verify under
    // the origin's heads with the origin's key alone.
    for i in (0..150).step_by(7) {
        assert_eq!(m.entry(i).unwrap(), src.entry(i).unwrap());
        let proof = m.inclusion_proof(i, 150).unwrap();
        let leaf = ledger::entry_id(&m.entry(i).unwrap());
        verify_inclusion::<Blake3Merkle>(i, 150, &leaf, &proof, &head150.head.root).unwrap();
    }
    head100
        .verify_consistency(
            &head150,
            &k.verifying_key(),
            &m.consistency_proof(100, 150).unwrap(),
        )
        .unwrap();
    // Reopened, it is where it was.
    drop(m);
    let m = open(&tmp.path().join("mirror"), &k);
    assert_eq!((m.len(), m.head()), (150, Some(announced.head)));
}

#[test]
fn what_the_origin_did_not_sign_is_refused_named_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key(2);
    let src = origin(&tmp.path().join("origin"), k.clone(), 64, "b");
    let head = src.sign_head().unwrap();
    let m = open(&tmp.path().join("mirror"), &k);
    let rt = rt();
    rt.block_on(m.apply(&run(&src, 0, 32, head))).unwrap();

    // An entry changed in transit.
    let mut bad = run(&src, 32, 64, head);
    let last = bad.entries[5].len() - 1;
    bad.entries[5][last] ^= 1;
    let why = refused(rt.block_on(m.apply(&bad)));
    assert!(why.contains("acme/0") && why.contains("32..64"), "{why}");
    // A held entry that is not the one held.
    let mut bad = run(&src, 0, 64, head);
    bad.entries[3].push(0);
    let why = refused(rt.block_on(m.apply(&bad)));
    assert!(why.contains("entry 3 differs"), "{why}");
    // A head signed by another key (a stranger's, over the same root).
    let other = key(9);
    let mut forged = run(&src, 32, 64, head);
    forged.head.signature = {
        use ed25519_dalek::Signer;
        other.sign(&head.head.signing_message().0).to_bytes()
    };
    assert!(refused(rt.block_on(m.apply(&forged))).contains("its head"));
    // A proof that does not lead to the head.
    let mut bad = run(&src, 32, 40, head);
    bad.proof[0].0[0] ^= 1;
    assert!(refused(rt.block_on(m.apply(&bad))).contains("do not lead to its head"));
    // A run whose head covers fewer entries than it carries.
    let small =
        EmbeddedStore::open_or_create(&tmp.path().join("small"), k.clone(), StoreConfig::default())
            .unwrap();
    append(&small, 0..10, "b");
    let mut bad = run(&src, 32, 64, head);
    bad.head = small.sign_head().unwrap();
    assert!(refused(rt.block_on(m.apply(&bad))).contains("fewer than the run"));

    // None of it changed the copy; the real run still applies.
    assert_eq!(m.len(), 32);
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 32, 64, head))).unwrap(),
        Applied::Kept(32)
    );
    assert_eq!(m.head(), Some(head));
    // The run encodes and decodes as it was; a cut message does not decode.
    let good = run(&src, 10, 20, head);
    let bytes = good.to_bytes();
    assert_eq!(LogRun::from_bytes(&bytes).unwrap(), good);
    for cut in [0, 1, 10, bytes.len() - 1] {
        assert!(LogRun::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn an_origin_that_signs_two_histories_is_a_fork_kept_with_both_heads_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key(3);
    let src = origin(&tmp.path().join("origin"), k.clone(), 50, "c");
    let head = src.sign_head().unwrap();
    let m = open(&tmp.path().join("mirror"), &k);
    let rt = rt();
    rt.block_on(m.apply(&run(&src, 0, 50, head))).unwrap();

    // The same key signs a rewritten history: entry 20 onwards differ.
    let rewritten = EmbeddedStore::open_or_create(
        &tmp.path().join("rewritten"),
        k.clone(),
        StoreConfig::default(),
    )
    .unwrap();
    append(&rewritten, 0..20, "c");
    append(&rewritten, 20..60, "forged");
    // Announced at a size the mirror holds: the roots differ.
    let at40 = run(&rewritten, 40, 40, {
        let r2 = EmbeddedStore::open_or_create(
            &tmp.path().join("r40"),
            k.clone(),
            StoreConfig::default(),
        )
        .unwrap();
        append(&r2, 0..20, "c");
        append(&r2, 20..40, "forged");
        r2.sign_head().unwrap()
    });
    let Applied::Forked(fork) = rt.block_on(m.apply(&at40)).unwrap() else {
        panic!("a second history at size 40 is a fork");
    };
    assert_eq!(fork.held, head);
    assert_eq!(fork.conflicting, at40.head);
    fork.held.verify(&k.verifying_key()).unwrap();
    fork.conflicting.verify(&k.verifying_key()).unwrap();
    // It follows the log no further, even with its real continuation, and
    // says so after a restart.
    append(&src, 50..60, "c");
    let next = run(&src, 50, 60, src.sign_head().unwrap());
    assert!(matches!(
        rt.block_on(m.apply(&next)),
        Err(MirrorError::Stopped { .. })
    ));
    drop(m);
    let m = open(&tmp.path().join("mirror"), &k);
    assert_eq!(m.fork().map(|f| f.conflicting), Some(at40.head));
    assert!(matches!(
        rt.block_on(m.apply(&next)),
        Err(MirrorError::Stopped { .. })
    ));
    assert_eq!(m.len(), 50);

    // A longer rewritten history at a size past the copy: the same size as
    // a head kept ahead with another root is a fork too.
    let m2 = open(&tmp.path().join("mirror2"), &k);
    let src_head60 = src.sign_head().unwrap();
    rt.block_on(m2.apply(&run(&src, 0, 30, src_head60)))
        .unwrap();
    let forged60 = run(&rewritten, 60, 60, rewritten.sign_head().unwrap());
    assert!(matches!(
        rt.block_on(m2.apply(&forged60)).unwrap(),
        Applied::Forked(_)
    ));

    // A longer rewritten history, its run starting inside the copy (an
    // origin restored from an older copy publishes from where it stands):
    // entry 20 differs from the one held, and the run is carried to its
    // head from the copy's first 20 entries, so the key signed a tree that
    // does not extend the held head's: a fork. A run whose entries do not
    // lead to its head is only refused.
    let m3 = open(&tmp.path().join("mirror3"), &k);
    let head60 = src.sign_head().unwrap();
    rt.block_on(m3.apply(&run(&src, 0, 60, head60))).unwrap();
    append(&rewritten, 60..70, "forged");
    let head70 = rewritten.sign_head().unwrap();
    let mut garbled = run(&rewritten, 20, 70, head70);
    garbled.entries[5] = garbled.entries[6].clone();
    assert!(refused(rt.block_on(m3.apply(&garbled))).contains("entry 20 differs"));
    assert!(m3.fork().is_none());
    let longer = run(&rewritten, 20, 70, head70);
    let Applied::Forked(fork) = rt.block_on(m3.apply(&longer)).unwrap() else {
        panic!("a longer history over other entries is a fork");
    };
    assert_eq!((fork.held, fork.conflicting), (head60, head70));
    assert_eq!(m3.len(), 60, "the copy is the first history, untouched");
}

#[test]
fn a_copy_whose_state_was_lost_after_an_append_folds_its_store_back_in() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key(4);
    let src = origin(&tmp.path().join("origin"), k.clone(), 80, "d");
    let head = src.sign_head().unwrap();
    let dir = tmp.path().join("mirror");
    let m = open(&dir, &k);
    let rt = rt();
    rt.block_on(m.apply(&run(&src, 0, 30, head))).unwrap();
    let state = std::fs::read(dir.join("mirror.state")).unwrap();
    rt.block_on(m.apply(&run(&src, 30, 55, head))).unwrap();
    drop(m);
    // As if the process died between the store's append and the state's
    // replacement.
    std::fs::write(dir.join("mirror.state"), state).unwrap();
    let m = open(&dir, &k);
    assert_eq!(m.len(), 55);
    assert_eq!(
        rt.block_on(m.apply(&run(&src, 55, 80, head))).unwrap(),
        Applied::Kept(25)
    );
    assert_eq!(m.head(), Some(head));
    // A state that claims more than the store holds is refused at open.
    drop(m);
    let lost = tmp.path().join("lost");
    std::fs::create_dir_all(&lost).unwrap();
    std::fs::copy(dir.join("mirror.state"), lost.join("mirror.state")).unwrap();
    let err = Mirror::open(
        &Backend::Embedded,
        &lost,
        ("acme", 0),
        k.verifying_key(),
        StoreConfig::default(),
    )
    .err()
    .expect("a state ahead of its store");
    assert!(err.to_string().contains("the store holds 0"), "{err}");
}
