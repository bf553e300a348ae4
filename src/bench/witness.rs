//! `bench --only witness`: how many checkpoints one witness cosigns per
//! second (issue 34): `--witness-logs` logs submitting at once, through the
//! witness's group commit (one state write answers every log waiting),
//! against the same witness fed one log at a time (one durable write per
//! cosignature) and against the CPU floor of a cosignature (the checkpoint's
//! signature checked, its consistency proof checked, the cosignature
//! signed, nothing stored) on one core, all in the same run. Submissions
//! are signed before the clock starts; CPU time is the process's own.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use ledger::merkle::{verify_consistency, Blake3Merkle, MemoryTree};
use ledger::{Digest, TreeHead};
use rand::{Rng, SeedableRng};

use super::{row, si};

/// One log's submissions, in order, with what a floor check needs.
struct Log {
    key: SigningKey,
    steps: Vec<Step>,
}

struct Step {
    body: String,
    old: u64,
    size: u64,
    proof: Vec<Digest>,
    old_root: Digest,
    root: Digest,
}

fn prepare(n: usize, steps: usize, seed: u64) -> Vec<Log> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|l| {
            let key = SigningKey::from_bytes(&blake3::hash(&(l as u64).to_le_bytes()).into());
            let mut tree: MemoryTree<Blake3Merkle> = MemoryTree::new();
            for i in 0..steps * 13 + 1 {
                tree.push(format!("log {l} entry {i}").as_bytes());
            }
            let mut size = 0u64;
            let steps = (0..steps)
                .map(|_| {
                    let old = size;
                    size += rng.gen_range(1..=13);
                    let proof = if old == 0 {
                        Vec::new()
                    } else {
                        tree.prover().consistency_proof(old, size).unwrap()
                    };
                    let head = TreeHead {
                        log_id: ledger::head::log_id(&key.verifying_key()),
                        size,
                        root: tree.root(size),
                        timestamp_ms: 0,
                    };
                    let lines: String = proof
                        .iter()
                        .map(|d| {
                            format!(
                                "{}\n",
                                base64::engine::general_purpose::STANDARD.encode(d.0)
                            )
                        })
                        .collect();
                    Step {
                        body: format!(
                            "old {old}\n{lines}\n{}",
                            ledger::note::sign_checkpoint(&head, &key)
                        ),
                        old,
                        size,
                        proof,
                        old_root: tree.root(old),
                        root: head.root,
                    }
                })
                .collect();
            Log { key, steps }
        })
        .collect()
}

/// The process's CPU seconds so far (user and system, all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the name).
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn witness(dir: &Path, logs: &[Log]) -> Result<witness::Witness> {
    let keys: Vec<_> = logs.iter().map(|l| l.key.verifying_key()).collect();
    witness::Witness::open(dir, "bench.example/w", &keys, ledger::clock::system())
        .map_err(anyhow::Error::msg)
}

pub fn run(root: &Path, n: usize, steps: usize) -> Result<()> {
    let logs = prepare(n, steps, 34);
    let total = (n * steps) as f64;

    // The floor: what a cosignature costs a core, nothing stored.
    let signer = SigningKey::from_bytes(&[34; 32]);
    let (t, c) = (Instant::now(), cpu_seconds());
    for log in &logs {
        let origin = ledger::note::origin(&ledger::head::log_id(&log.key.verifying_key()));
        for s in &log.steps {
            let (_, checkpoint) = s.body.split_once("\n\n").expect("a body");
            let note = ledger::note::Note::parse(checkpoint)?;
            note.verify_signature(&origin, &log.key.verifying_key())?;
            if s.old > 0 {
                verify_consistency::<Blake3Merkle>(s.old, s.size, &s.proof, &s.old_root, &s.root)?;
            }
            std::hint::black_box(ledger::note::cosign(
                &note.text,
                "bench.example/w",
                &signer,
                0,
            ));
        }
    }
    let floor = total / t.elapsed().as_secs_f64();
    let floor_cpu = total / (cpu_seconds() - c).max(1e-9);
    row(
        "witness: floor, one core, nothing stored",
        format!("{}cosignatures/s", si(floor)),
        format!("{:.1} us of CPU each", 1e6 / floor_cpu),
    );

    // One log at a time: every cosignature waits for its own state write.
    let one = logs.iter().take(1).collect::<Vec<_>>();
    let dir = tempfile::tempdir_in(root)?;
    let w = witness(dir.path(), &logs)?;
    let k = steps.min(300);
    let t = Instant::now();
    for s in &one[0].steps[..k] {
        w.add_checkpoint(&s.body)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let sequential = k as f64 / t.elapsed().as_secs_f64();
    row(
        "witness: one log, one request at a time",
        format!("{}cosignatures/s", si(sequential)),
        format!(
            "{:.2}x the floor (a durable state write each)",
            sequential / floor
        ),
    );

    // Every log at once, one client thread each, through the group commit.
    let dir = tempfile::tempdir_in(root)?;
    let w = witness(dir.path(), &logs)?;
    let (t, c) = (Instant::now(), cpu_seconds());
    std::thread::scope(|scope| {
        for log in &logs {
            let w = &w;
            scope.spawn(move || {
                for s in &log.steps {
                    w.add_checkpoint(&s.body)
                        .expect("each step follows the last");
                }
            });
        }
    });
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c;
    let rate = total / wall;
    row(
        &format!("witness: {n} logs at once"),
        format!("{}cosignatures/s", si(rate)),
        format!(
            "{:.2}x the floor, {:.1}x one at a time; {:.0} us of CPU each ({}cosignatures per CPU-second; goal >= 5,000/s on one core)",
            rate / floor,
            rate / sequential,
            cpu * 1e6 / total,
            si(total / cpu.max(1e-9))
        ),
    );
    Ok(())
}
