//! Replays every fuzz corpus (`fuzz/corpus/TARGET/*`) through the check its
//! target runs (`fuzz/checks.rs`): what a campaign found and kept stays
//! fixed, on every CI run, in seconds rather than a campaign's hours.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_fuzz_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path())
            .collect();
        inputs.sort();
        assert!(
            inputs.len() >= 50,
            "{}: {} inputs; a campaign keeps its corpus here",
            dir.display(),
            inputs.len()
        );
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
        println!("{target}: {} inputs replayed", inputs.len());
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their check: {failures:#?}"
    );
}

/// Writes the seeds of the `witness_body` corpus (`fuzz/corpus/witness_body`):
/// checkpoints of a 20-entry log signed by the key the check's witness
/// watches, cosignable from size 0, with stale old sizes, and malformed in
/// each way the protocol names. Run once when the seeds change:
/// `cargo test --test fuzz_corpora -- --ignored write_witness_body_seeds`.
#[test]
#[ignore]
fn write_witness_body_seeds() {
    use base64::Engine as _;
    use ledger::merkle::{Blake3Merkle, MemoryTree};
    let b64 = |d: &ledger::Digest| base64::engine::general_purpose::STANDARD.encode(d.0);
    let key = ed25519_dalek::SigningKey::from_bytes(&checks::WITNESSED_LOG_SEED);
    let other = ed25519_dalek::SigningKey::from_bytes(&[0x58; 32]);
    let mut tree: MemoryTree<Blake3Merkle> = MemoryTree::new();
    for i in 0..20 {
        tree.push(format!("entry {i}").as_bytes());
    }
    let checkpoint = |key: &ed25519_dalek::SigningKey, size: u64| {
        let head = ledger::TreeHead {
            log_id: ledger::head::log_id(&key.verifying_key()),
            size,
            root: tree.root(size),
            timestamp_ms: 0,
        };
        ledger::note::sign_checkpoint(&head, key)
    };
    let proof = |old: u64, size: u64| -> String {
        tree.prover()
            .consistency_proof(old, size)
            .unwrap()
            .iter()
            .map(|d| format!("{}\n", b64(d)))
            .collect()
    };
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for size in 0..=20 {
        seeds.push(format!("old 0\n\n{}", checkpoint(&key, size)).into_bytes());
    }
    for old in 1..10 {
        let size = old + 3;
        seeds.push(
            format!(
                "old {old}\n{}\n{}",
                proof(old, size),
                checkpoint(&key, size)
            )
            .into_bytes(),
        );
    }
    let good = checkpoint(&key, 7);
    let sixty_four: String = (0..64)
        .map(|_| format!("{}\n", b64(&tree.root(3))))
        .collect();
    for bad in [
        String::new(),
        "old 0".into(),
        "old 0\n".into(),
        format!("old 01\n\n{good}"),
        format!("old -1\n\n{good}"),
        format!("old 1x\n\n{good}"),
        format!("old 18446744073709551616\n\n{good}"),
        format!("old 9\n\n{good}"),
        format!("old 3\nnot base64!\n\n{good}"),
        format!("old 3\nAAAA\n\n{good}"),
        format!("old 3\n{sixty_four}\n{good}"),
        format!("old 0\n{good}"),
        format!("old 0\r\n\r\n{}", good.replace('\n', "\r\n")),
        format!("old 0\n\n{}", checkpoint(&other, 7)),
        format!("old 0\n\n{}", good.replacen("\n7\n", "\n8\n", 1)),
        format!("old 0\n\n{}", good.replacen("\n7\n", "\n07\n", 1)),
        format!("old 0\n\n{}", good.replace('\u{2014}', "-")),
        format!("old 0\n\n{}", good.split("\n\n").next().unwrap()),
        format!("old 0\n\n{good}{}", good.lines().last().unwrap()),
        format!("old 0\n\n{good}trailing"),
        format!(
            "old 0\n\n{}",
            good.replacen("\n\n", "\nextension line\n\n", 1)
        ),
        format!("old 0\n\n{}", good.replacen("=\n", "\n", 1)),
    ] {
        seeds.push(bad.into_bytes());
    }
    seeds.push(b"old 0\n\n\xff\xfe checkpoint".to_vec());
    seeds.push(vec![0; 64]);
    // The first 21 are cosigned by a fresh witness: the check's Ok branch
    // is exercised by the corpus, not only its refusals.
    for seed in &seeds[..21] {
        let dir = tempfile::tempdir().unwrap();
        let w = witness::Witness::open(
            dir.path(),
            "fuzz.example/w",
            &[key.verifying_key()],
            ledger::clock::system(),
        )
        .unwrap();
        w.add_checkpoint_bytes(seed).unwrap();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/witness_body");
    std::fs::create_dir_all(&dir).unwrap();
    for seed in &seeds {
        let name = blake3::hash(seed).to_hex();
        std::fs::write(dir.join(&name[..16]), seed).unwrap();
    }
    assert!(seeds.len() >= 50, "{}", seeds.len());
}
