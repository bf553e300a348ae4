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
