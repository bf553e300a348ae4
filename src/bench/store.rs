//! `coldtrail bench --only store`: the PostgreSQL store beside the embedded
//! store, in one run over the same entries: fill rate, proofs, reads by
//! index, open time and a full audit at `--entries` entries.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use ed25519_dalek::SigningKey;
use ledger::store::postgres::{audit_database, cluster::Cluster, Database, PgConfig, PgStore};
use ledger::store::{audit_log, EmbeddedStore, Store, StoreConfig};
use rand::{Rng, SeedableRng};

use crate::bench::{per_sec, row, si};

/// What one store did, for the side-by-side rows.
struct Figures {
    fill: Duration,
    proof: Duration,
    read: Duration,
    open: Duration,
    audit: Duration,
}

const PROBES: u64 = 2_000;

/// Fills `store` with `n` entries of 32 random bytes (seeded: both stores
/// get the same entries), a few groups in flight.
fn fill(store: &dyn Store, n: u64) -> Result<Duration> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let t = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(4096);
        let group: Vec<Vec<u8>> = (0..k).map(|_| rng.gen::<[u8; 32]>().to_vec()).collect();
        loop {
            match store.submit(group.clone()) {
                Ok(p) => {
                    inflight.push_back(p);
                    break;
                }
                Err(ledger::store::StoreError::QueueFull(_)) => {
                    if let Some(p) = inflight.pop_front() {
                        p.wait()?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if inflight.len() >= 8 {
            inflight.pop_front().expect("non-empty").wait()?;
        }
        done += k;
    }
    for p in inflight {
        p.wait()?;
    }
    Ok(t.elapsed())
}

/// Inclusion proofs and single-entry reads at random indices.
fn probe(store: &dyn Store, n: u64) -> Result<(Duration, Duration)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let idx: Vec<u64> = (0..PROBES).map(|_| rng.gen_range(0..n)).collect();
    let t = Instant::now();
    for &i in &idx {
        std::hint::black_box(store.inclusion_proof(i, n)?);
    }
    let proof = t.elapsed();
    let t = Instant::now();
    for &i in &idx {
        std::hint::black_box(store.entry(i)?);
    }
    Ok((proof, t.elapsed()))
}

pub fn run(root: &Path, n: u64, url: Option<&str>) -> Result<()> {
    let key = SigningKey::from_bytes(&[5; 32]);
    let config = StoreConfig::default();

    // Embedded.
    let dir = root.join("store-embedded");
    let _ = std::fs::remove_dir_all(&dir);
    let store = EmbeddedStore::create(&dir, key.clone(), config.clone())?;
    let fill_e = fill(&store, n)?;
    let head = store.sign_head()?;
    let (proof_e, read_e) = probe(&store, n)?;
    drop(store);
    let t = Instant::now();
    let store = EmbeddedStore::open(&dir, key.clone(), config.clone())?;
    let open_e = t.elapsed();
    anyhow::ensure!(
        store.root(n)? == head.head.root,
        "the embedded log reopened differs"
    );
    drop(store);
    let t = Instant::now();
    let report = audit_log(&dir, &|_| {})?;
    let audit_e = t.elapsed();
    anyhow::ensure!(report.problem.is_none(), "{:?}", report.problem);
    let _ = std::fs::remove_dir_all(&dir);

    // PostgreSQL: the database given, or a throwaway cluster.
    let cluster;
    let url = match url {
        Some(u) => u.to_string(),
        None => {
            cluster = Cluster::start()?;
            cluster.url("postgres")
        }
    };
    let db = Database::connect(PgConfig::new(&url))?;
    let name = format!("bench-{}", std::process::id());
    let store = PgStore::open(&db, &name, key.clone(), config.clone())?;
    let fill_p = fill(&store, n)?;
    let head_p = store.sign_head()?;
    anyhow::ensure!(
        head_p.head.root == head.head.root,
        "the stores' roots differ"
    );
    let (proof_p, read_p) = probe(&store, n)?;
    drop(store);
    let t = Instant::now();
    let store = PgStore::open(&db, &name, key, config)?;
    let open_p = t.elapsed();
    anyhow::ensure!(
        store.root(n)? == head.head.root,
        "the PostgreSQL log reopened differs"
    );
    drop(store);
    let t = Instant::now();
    let reports = audit_database(&db, Some(&name), &|_| {})?;
    let audit_p = t.elapsed();
    anyhow::ensure!(
        reports.iter().all(|r| r.problem.is_none()),
        "{:?}",
        reports.iter().find_map(|r| r.problem.clone())
    );

    let e = Figures {
        fill: fill_e,
        proof: proof_e,
        read: read_e,
        open: open_e,
        audit: audit_e,
    };
    let p = Figures {
        fill: fill_p,
        proof: proof_p,
        read: read_p,
        open: open_p,
        audit: audit_p,
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6 / PROBES as f64;
    row(
        &format!("postgres: fill {n} entries of 32 B"),
        format!("{}entries/s", si(per_sec(n as f64, p.fill))),
        format!(
            "embedded {}entries/s ({:.2}x)",
            si(per_sec(n as f64, e.fill)),
            e.fill.as_secs_f64() / p.fill.as_secs_f64()
        ),
    );
    row(
        &format!("postgres: inclusion proof at {n}"),
        format!("{:.1} us", us(p.proof)),
        format!("embedded {:.1} us", us(e.proof)),
    );
    row(
        "postgres: one entry by index",
        format!("{:.1} us", us(p.read)),
        format!("embedded {:.1} us", us(e.read)),
    );
    row(
        &format!("postgres: open at {n} entries"),
        format!("{:.1} ms", p.open.as_secs_f64() * 1e3),
        format!("embedded {:.1} ms", e.open.as_secs_f64() * 1e3),
    );
    row(
        &format!("postgres: verify {n} entries"),
        format!(
            "{:.2} s ({}entries/s)",
            p.audit.as_secs_f64(),
            si(per_sec(n as f64, p.audit))
        ),
        format!("embedded {:.2} s", e.audit.as_secs_f64()),
    );
    Ok(())
}
