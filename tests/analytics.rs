//! The read side end to end, through the binary: the demo runs the rules
//! and prints what they found; a consumer killed with SIGKILL at random
//! moments while it reads the logs and records verdicts loses and duplicates
//! nothing; a rebuild from the logs equals what streaming built; `sql`,
//! `export parquet` and `breaches` answer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ledger::entry::Entry;
use rand::{Rng, SeedableRng};

fn coldtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coldtrail"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = coldtrail(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "coldtrail {args:?}: {text}");
    text
}

/// (rule, subject, kind, from) of every verdict entry on the logs, with how
/// many times each was recorded.
fn verdicts_on_ledger(dir: &Path) -> BTreeMap<String, usize> {
    let node = shards::Node::open(shards::NodeConfig::new(dir)).unwrap();
    let mut out = BTreeMap::new();
    for s in node.shards() {
        for e in s.store().entries(0, s.committed()).unwrap() {
            if let Ok(Entry::Verdict(v)) = Entry::from_bytes(&e) {
                *out.entry(format!(
                    "{} {} {:?} {}",
                    v.rule, v.subject, v.kind, v.from_ms
                ))
                .or_insert(0) += 1;
            }
        }
    }
    out
}

/// Each table's row count, through `coldtrail sql`.
fn counts(dir: &Path) -> String {
    ok(&[
        "sql",
        "--data-dir",
        dir.to_str().unwrap(),
        "SELECT (SELECT count(*) FROM readings) r, (SELECT count(*) FROM events) e, (SELECT count(*) FROM event_subjects) s, (SELECT count(*) FROM associations) a, (SELECT count(*) FROM verdicts) v",
    ])
    .lines()
    .filter(|l| !l.starts_with("note:"))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn demo_runs_the_rules_and_a_rebuild_equals_what_streaming_built() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let text = ok(&[
        "demo",
        "--data-dir",
        d,
        "--scale",
        "tiny",
        "--listen",
        "127.0.0.1:0",
        "--exit-after-load",
    ]);
    assert!(text.contains("breaches found"), "{text}");
    assert!(
        text.contains("vaccine_heat") && text.contains("above 8 °C"),
        "{text}"
    );
    let streamed = counts(dir.path());
    let verdicts = verdicts_on_ledger(dir.path());
    assert!(verdicts.values().all(|n| *n == 1), "{verdicts:?}");
    assert!(verdicts.len() >= 11, "{verdicts:?}");
    // The verdicts part (the ongoing part is judged against the clock).
    let verdicts_json = |d: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["breaches", "--data-dir", d, "--json"])).unwrap();
        v["verdicts"].clone()
    };
    let breaches = verdicts_json(d);

    let text = ok(&[
        "analytics",
        "rebuild",
        "--data-dir",
        d,
        "--flush-rows",
        "5000",
    ]);
    assert!(text.contains("rebuilt"), "{text}");
    assert!(
        !text.contains("new verdict entries"),
        "a rebuild finds nothing the ledger does not hold: {text}"
    );
    assert_eq!(counts(dir.path()), streamed);
    assert_eq!(verdicts_on_ledger(dir.path()), verdicts);
    assert_eq!(verdicts_json(d), breaches);

    // One lot's verdicts, with their evidence.
    let first = &breaches[0];
    let lot = first["subject"].as_str().unwrap();
    let one: serde_json::Value =
        serde_json::from_str(&ok(&["breaches", "--data-dir", d, "--lot", lot, "--json"])).unwrap();
    let items = one["verdicts"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|v| v["subject"] == lot));
    assert!(!first["evidence"].as_array().unwrap().is_empty());
}

#[test]
fn export_writes_one_parquet_file_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ok(&[
        "demo",
        "--data-dir",
        d,
        "--scale",
        "tiny",
        "--listen",
        "127.0.0.1:0",
        "--exit-after-load",
    ]);
    let out = dir.path().join("export");
    let text = ok(&[
        "export",
        "parquet",
        "--data-dir",
        d,
        "--out",
        out.to_str().unwrap(),
    ]);
    for t in [
        "readings",
        "events",
        "event_subjects",
        "associations",
        "verdicts",
    ] {
        let f = out.join(format!("{t}.parquet"));
        assert!(f.metadata().unwrap().len() > 0, "{t}: {text}");
        // Parquet's magic at both ends.
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
    }
}

#[test]
fn a_consumer_killed_at_random_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // A world on the logs, with no consumer yet: no verdicts recorded.
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let world = fixtures::generate(7, fixtures::Scale::Demo, 1_793_491_200_000);
            let mut config = analytics::RulesConfig::default();
            for p in &world.products {
                config
                    .products
                    .insert(p.gtin.clone(), p.profile.rules.to_string());
            }
            std::fs::write(
                dir.path().join("rules.json"),
                serde_json::to_vec(&config).unwrap(),
            )
            .unwrap();
            let node = Arc::new(
                shards::Node::open(shards::NodeConfig {
                    shards: Some(2),
                    ..shards::NodeConfig::new(dir.path())
                })
                .unwrap(),
            );
            fixtures::load::into_node(&node, &world, 720).await.unwrap();
            node.sign_heads().await.unwrap();
        });
    }
    assert!(verdicts_on_ledger(dir.path()).is_empty());
    let reference = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), reference.path());

    // Kill the consumer at random moments until one run completes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut kills = 0;
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coldtrail"))
            .args(["analytics", "sync", "--data-dir", d, "--flush-rows", "250"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..300)));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the consumer failed: {status}");
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        assert!(kills < 300, "the consumer never finished");
    }
    assert!(
        kills >= 2,
        "only {kills} kills: the run was too quick to test anything"
    );
    let verdicts = verdicts_on_ledger(dir.path());
    assert!(!verdicts.is_empty());
    assert!(
        verdicts.values().all(|n| *n == 1),
        "a verdict recorded twice: {verdicts:?}"
    );

    // The same logs consumed in one go give the same tables and verdicts.
    let r = reference.path().to_str().unwrap();
    ok(&["analytics", "sync", "--data-dir", r]);
    assert_eq!(verdicts_on_ledger(reference.path()), verdicts);
    assert_eq!(counts(dir.path()), counts(reference.path()));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
