use std::sync::Arc;

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use ledger::head::TreeHead;
use ledger::merkle::{Blake3Merkle, MemoryTree};

use super::*;

const NAME: &str = "witness.example/w1";

/// A log of `n` entries, its key, and its trees at every size.
struct Log {
    key: SigningKey,
    tree: MemoryTree<Blake3Merkle>,
}

impl Log {
    fn new(seed: u8, n: u64) -> Log {
        let mut tree = MemoryTree::new();
        for i in 0..n {
            tree.push(format!("entry {i}").as_bytes());
        }
        Log {
            key: SigningKey::from_bytes(&[seed; 32]),
            tree,
        }
    }

    fn head(&self, size: u64) -> TreeHead {
        TreeHead {
            log_id: ledger::head::log_id(&self.key.verifying_key()),
            size,
            root: self.tree.root(size),
            timestamp_ms: 0,
        }
    }

    /// The body of an `add-checkpoint` from `old` to `size`.
    fn body(&self, old: u64, size: u64) -> String {
        let proof = if old == 0 || old >= size {
            Vec::new()
        } else {
            self.tree.prover().consistency_proof(old, size).unwrap()
        };
        let lines: String = proof
            .iter()
            .map(|h| {
                format!(
                    "{}\n",
                    base64::engine::general_purpose::STANDARD.encode(h.0)
                )
            })
            .collect();
        format!(
            "old {old}\n{lines}\n{}",
            ledger::note::sign_checkpoint(&self.head(size), &self.key)
        )
    }
}

fn witness(dir: &Path, logs: &[&Log]) -> Witness {
    let keys: Vec<_> = logs.iter().map(|l| l.key.verifying_key()).collect();
    Witness::open(dir, NAME, &keys, ledger::clock::system()).unwrap()
}

#[test]
fn a_growing_log_is_cosigned_and_the_cosignature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(1, 20);
    let w = witness(dir.path(), &[&log]);
    // An empty log is cosigned too, and grows from it with no proof.
    for (old, size) in [(0, 0), (0, 0), (0, 5), (5, 5), (5, 12), (12, 20)] {
        let line = w.add_checkpoint(&log.body(old, size)).unwrap();
        let checkpoint = ledger::note::sign_checkpoint(&log.head(size), &log.key);
        let note = Note::parse(&format!("{checkpoint}{line}")).unwrap();
        note.verify_cosignature(NAME, &w.public_key()).unwrap();
        assert_eq!(
            w.latest(&ledger::note::origin(&log.head(size).log_id))
                .unwrap()
                .size,
            size
        );
    }
    // The state outlives the process: a new witness over the same
    // directory holds size 20 and the same key.
    let again = witness(dir.path(), &[&log]);
    assert_eq!(again.public_key(), w.public_key());
    assert!(matches!(
        again.add_checkpoint(&log.body(12, 20)),
        Err(Refusal::StaleOldSize(20))
    ));
}

#[test]
fn each_refusal_is_the_one_the_protocol_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(1, 20);
    let w = witness(dir.path(), &[&log]);
    w.add_checkpoint(&log.body(0, 8)).unwrap();
    // A stale old size: 409 naming the size held.
    let stale = w.add_checkpoint(&log.body(5, 12)).unwrap_err();
    assert!(matches!(stale, Refusal::StaleOldSize(8)));
    assert_eq!(stale.status_code(), StatusCode::CONFLICT);
    // A proof that does not verify: 422.
    let mut wrong = log.body(8, 12);
    let first_proof_line = wrong.lines().nth(1).unwrap().to_string();
    wrong = wrong.replacen(
        &first_proof_line,
        &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        1,
    );
    assert_eq!(
        w.add_checkpoint(&wrong).unwrap_err().status_code(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A fork at the size held: another log's tree under the same key.
    let mut forked = Log::new(1, 20);
    forked.tree = MemoryTree::new();
    for i in 0..20 {
        forked.tree.push(format!("other {i}").as_bytes());
    }
    assert!(matches!(
        w.add_checkpoint(&forked.body(8, 8)),
        Err(Refusal::Fork(8))
    ));
    // A log not watched: 404; a checkpoint not signed by the log's key: 403.
    let stranger = Log::new(2, 20);
    assert_eq!(
        w.add_checkpoint(&stranger.body(0, 3))
            .unwrap_err()
            .status_code(),
        StatusCode::NOT_FOUND
    );
    let mut impostor = Log::new(3, 20);
    impostor.key = SigningKey::from_bytes(&[3; 32]);
    let forged =
        log.body(8, 12)
            .replace(&ledger::note::sign_checkpoint(&log.head(12), &log.key), &{
                // The log's checkpoint text, signed by another key under the
                // log's name.
                let text = ledger::note::checkpoint_text(&log.head(12));
                let origin = ledger::note::origin(&log.head(12).log_id);
                let sig = ledger::note::cosign(&text, &origin, &impostor.key, 0);
                format!("{text}\n{sig}")
            });
    assert_eq!(
        w.add_checkpoint(&forged).unwrap_err().status_code(),
        StatusCode::FORBIDDEN
    );
    // Malformed bodies and an old size above the checkpoint's: 400.
    for bad in ["", "old 8", "old 08\n\nx", "new 8\n\nx", &log.body(13, 12)] {
        assert_eq!(
            w.add_checkpoint(bad).unwrap_err().status_code(),
            StatusCode::BAD_REQUEST,
            "{bad:?}"
        );
    }
    assert_eq!(
        w.latest(&ledger::note::origin(&log.head(8).log_id))
            .unwrap()
            .size,
        8,
        "nothing refused moved it"
    );
}

#[test]
fn racing_submissions_never_roll_a_log_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::new(1, 64));
    let w = Arc::new(witness(dir.path(), &[&log]));
    w.add_checkpoint(&log.body(0, 1)).unwrap();
    // Many clients each try to move the log from size 1: exactly one wins
    // (the others are told the size it reached), and sizes never go back.
    let threads: Vec<_> = (2..34u64)
        .map(|size| {
            let (w, log) = (Arc::clone(&w), Arc::clone(&log));
            std::thread::spawn(move || w.add_checkpoint(&log.body(1, size)).map(|_| size))
        })
        .collect();
    let won: Vec<u64> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().ok())
        .collect();
    assert_eq!(won.len(), 1, "one submission from size 1 wins: {won:?}");
    let origin = ledger::note::origin(&log.head(1).log_id);
    assert_eq!(w.latest(&origin).unwrap().size, won[0]);
    let on_disk = witness(dir.path(), &[&log]);
    assert_eq!(
        on_disk.latest(&origin).unwrap().size,
        won[0],
        "persisted before it answered"
    );
}
