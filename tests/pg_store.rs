//! The PostgreSQL store end to end: rows changed with plain SQL are found
//! and named by `verify --store`; a server killed mid-ingest and a database
//! restarted mid-ingest lose no acknowledged entry; logs copied between the
//! stores keep their roots; the schema version is enforced.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ingest::wire::{encode_binary, BINARY_BATCH};
use ingest::DeviceClient;
use ledger::reading::Reading;
use ledger::store::postgres::cluster::{self, Cluster};
use support::{
    command, provision, register_device, run, text, tiny_demo, try_post, use_database,
    verify_written, Server,
};

/// Runs `work` with a connection to the database at `url`, on a thread and
/// runtime of its own.
fn with_client<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(
            tokio_postgres::Client,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            work(client).await
        })
    })
    .join()
    .unwrap()
}

/// Runs statements on the database at `url`; returns the rows the last changed.
fn sql(url: &str, statements: &[String]) -> u64 {
    let statements = statements.to_vec();
    with_client(url, move |client| {
        Box::pin(async move {
            let mut n = 0;
            for s in &statements {
                n = client.execute(s.as_str(), &[]).await.unwrap();
            }
            n
        })
    })
}

/// One value of a row of shard-000's entries, as hex.
fn column_hex(url: &str, column: &str, idx: u64) -> String {
    let q = format!(
        "SELECT encode({column}::bytea, 'hex') FROM coldtrail_entries WHERE log = {LOG0} AND idx = {idx}"
    );
    with_client(url, move |client| {
        Box::pin(async move { client.query_one(q.as_str(), &[]).await.unwrap().get(0) })
    })
}

const LOG0: &str = "(SELECT log FROM coldtrail_logs WHERE name = 'shard-000')";

/// `verify --store` fails (exit 1) naming this row of shard-000.
fn assert_named(url: &str, idx: u64, change: &str) {
    let row = format!("coldtrail_entries row (log shard-000, idx {idx})");
    assert_says(url, change, &[&row]);
}

#[test]
fn rows_changed_with_sql_are_found_and_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let url = cluster::fresh_database().unwrap();
    use_database(dir.path(), &url);
    tiny_demo(dir.path());
    let out = run(&["verify", "--store", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified 2 logs"), "{}", text(&out));
    // `verify --data-dir` finds the database through the node's settings.
    let out = command(&["verify", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let row = |idx: u64| format!("log = {LOG0} AND idx = {idx}");
    // A byte of a stored entry changed.
    let body = column_hex(&url, "body", 5);
    sql(&url, &[format!(
        "UPDATE coldtrail_entries SET body = set_byte(body, length(body) / 2, get_byte(body, length(body) / 2) # 1) WHERE {}",
        row(5)
    )]);
    assert_named(&url, 5, "a byte changed");
    sql(
        &url,
        &[format!(
            "UPDATE coldtrail_entries SET body = decode('{body}', 'hex') WHERE {}",
            row(5)
        )],
    );

    // A row deleted.
    let (id, codec, body) = (
        column_hex(&url, "id", 7),
        column_hex(&url, "codec::int::text", 7),
        column_hex(&url, "body", 7),
    );
    let codec = String::from_utf8(hex::decode(codec).unwrap()).unwrap();
    sql(
        &url,
        &[format!("DELETE FROM coldtrail_entries WHERE {}", row(7))],
    );
    assert_named(&url, 7, "a row deleted");
    sql(&url, &[format!(
        "INSERT INTO coldtrail_entries (log, idx, id, codec, body) VALUES ({LOG0}, 7, decode('{id}', 'hex'), {codec}, decode('{body}', 'hex'))"
    )]);

    // Two rows' bytes (bodies and codecs) swapped.
    let (b3, c3) = (
        column_hex(&url, "body", 3),
        column_hex(&url, "codec::int::text", 3),
    );
    let (b4, c4) = (
        column_hex(&url, "body", 4),
        column_hex(&url, "codec::int::text", 4),
    );
    let c = |h: &str| String::from_utf8(hex::decode(h).unwrap()).unwrap();
    sql(
        &url,
        &[
            format!(
                "UPDATE coldtrail_entries SET body = decode('{b4}', 'hex'), codec = {} WHERE {}",
                c(&c4),
                row(3)
            ),
            format!(
                "UPDATE coldtrail_entries SET body = decode('{b3}', 'hex'), codec = {} WHERE {}",
                c(&c3),
                row(4)
            ),
        ],
    );
    assert_named(&url, 3, "two rows' bytes swapped");
    sql(
        &url,
        &[
            format!(
                "UPDATE coldtrail_entries SET body = decode('{b3}', 'hex'), codec = {} WHERE {}",
                c(&c3),
                row(3)
            ),
            format!(
                "UPDATE coldtrail_entries SET body = decode('{b4}', 'hex'), codec = {} WHERE {}",
                c(&c4),
                row(4)
            ),
        ],
    );
    let out = run(&["verify", "--store", &url]);
    assert!(out.status.success(), "restored: {}", text(&out));

    // A stored run root changed: named by its run, with the entries it covers.
    let flip = |table: &str, column: &str, key: &str| {
        format!(
            "UPDATE {table} SET {column} = set_byte({column}, 0, get_byte({column}, 0) # 1) WHERE log = {LOG0} AND {key}"
        )
    };
    sql(&url, &[flip("coldtrail_nodes", "root", "run = 0")]);
    assert_says(
        &url,
        "a run root changed",
        &[
            "coldtrail_nodes row (log shard-000, run 0)",
            "entries 0..16 hash to another root",
        ],
    );
    sql(&url, &[flip("coldtrail_nodes", "root", "run = 0")]);

    // A signed head's record changed: its signature no longer holds.
    sql(&url, &[flip("coldtrail_heads", "record", "seq = 1")]);
    assert_says(
        &url,
        "a head changed",
        &["coldtrail_heads row (log shard-000, seq 1)"],
    );
    sql(&url, &[flip("coldtrail_heads", "record", "seq = 1")]);

    // The last entry deleted: the latest head (a clean close signs one over
    // everything) commits to more entries than the log has.
    let last: u64 = with_client(&url, |client| {
        Box::pin(async move {
            let q = format!("SELECT max(idx) FROM coldtrail_entries WHERE log = {LOG0}");
            let max: i64 = client.query_one(q.as_str(), &[]).await.unwrap().get(0);
            max as u64
        })
    });
    let (id, codec, body) = (
        column_hex(&url, "id", last),
        c(&column_hex(&url, "codec::int::text", last)),
        column_hex(&url, "body", last),
    );
    sql(
        &url,
        &[format!("DELETE FROM coldtrail_entries WHERE {}", row(last))],
    );
    assert_says(
        &url,
        "the last row deleted",
        &[&format!(
            "commits to {} entries but the log has {last}",
            last + 1
        )],
    );
    sql(&url, &[format!(
        "INSERT INTO coldtrail_entries (log, idx, id, codec, body) VALUES ({LOG0}, {last}, decode('{id}', 'hex'), {codec}, decode('{body}', 'hex'))"
    )]);
    let out = run(&["verify", "--store", &url]);
    assert!(out.status.success(), "restored: {}", text(&out));
}

/// `verify --store` fails (exit 1) saying each of `needles`.
fn assert_says(url: &str, change: &str, needles: &[&str]) {
    let out = run(&["verify", "--store", url]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{change}: {said}");
    for n in needles {
        assert!(said.contains(n), "{change}: expected {n} in: {said}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Devices posting signed batches from their own threads until stopped;
/// every 201's entries are kept.
struct Posters {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<serde_json::Value>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Posters {
    fn start(base: &Arc<Mutex<String>>, token: &str, devices: usize) -> Posters {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..devices)
            .map(|d| {
                let (stop, acked, base, token) = (
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                    Arc::clone(base),
                    token.to_string(),
                );
                let name = format!("pg-logger-{d}");
                let key = SigningKey::from_bytes(&[60 + d as u8; 32]);
                register_device(&base.lock().unwrap(), &token, &name, &key);
                std::thread::spawn(move || {
                    let mut dev = DeviceClient::new(&name, key);
                    let t0 = now_ms() - 86_400_000;
                    let mut n = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        let readings: Vec<Reading> = (0..50)
                            .map(|i| Reading::new(t0 + (n * 50 + i) * 1_000, 400))
                            .collect();
                        let batch = dev.sign(readings);
                        let key = format!("pg-{d}-{n}");
                        // Retried with one key until answered: a batch is
                        // acknowledged at most once whatever happens under it.
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let b = base.lock().unwrap().clone();
                            match try_post(
                                &b,
                                "/v1/batches",
                                Some(&token),
                                BINARY_BATCH,
                                &encode_binary(std::slice::from_ref(&batch)),
                                Some(&key),
                            ) {
                                Some(r) if r.status == 201 => {
                                    acked
                                        .lock()
                                        .unwrap()
                                        .extend(r.json()["entries"].as_array().unwrap().clone());
                                    break;
                                }
                                _ => std::thread::sleep(Duration::from_millis(50)),
                            }
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        Posters {
            stop,
            acked,
            threads,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn wait_for(&self, n: usize) {
        let started = Instant::now();
        while self.acked() < n {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {} acknowledged",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self) -> Vec<serde_json::Value> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Every acknowledged entry is served with a proof that verifies; once
/// the server has stopped, the database audits clean.
fn check_all(server: Server, url: &str, acked: &[serde_json::Value]) {
    for w in acked {
        verify_written(&server.base, w);
    }
    server.stop();
    let out = run(&["verify", "--store", url]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_server_killed_mid_ingest_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let url = cluster::fresh_database().unwrap();
    use_database(dir.path(), &url);
    let (token, _) = provision(dir.path());
    let mut server = Some(Server::start(dir.path()));
    let base = Arc::new(Mutex::new(server.as_ref().unwrap().base.clone()));
    let posters = Posters::start(&base, &token, 4);
    for round in 1..=3 {
        posters.wait_for(40 * round);
        // SIGKILL while the posters are mid-request; they retry each batch
        // with its key against the next server.
        server.take().unwrap().kill9();
        let next = Server::start(dir.path());
        *base.lock().unwrap() = next.base.clone();
        server = Some(next);
    }
    posters.wait_for(160);
    let acked = posters.finish();
    check_all(server.unwrap(), &url, &acked);
}

#[test]
fn a_database_restarted_mid_ingest_loses_no_acknowledged_entry() {
    // A cluster of this test's own: it is stopped under the server.
    let pg = Cluster::start().unwrap();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    use_database(dir.path(), &url);
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = Arc::new(Mutex::new(server.base.clone()));
    let posters = Posters::start(&base, &token, 4);
    posters.wait_for(40);
    // As a crash: no checkpoint, the WAL is replayed at start.
    pg.stop("immediate").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    pg.start_again().unwrap();
    let n = posters.acked();
    posters.wait_for(n + 40);
    // And an orderly restart.
    pg.stop("fast").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pg.start_again().unwrap();
    let n = posters.acked();
    posters.wait_for(n + 40);
    let acked = posters.finish();
    check_all(server, &url, &acked);
}

/// Each shard's signed head size and root, as the node serves them.
fn heads(base: &str) -> Vec<(u64, String)> {
    (0..2)
        .map(|s| {
            let h = support::get(base, &format!("/v1/shards/{s}/head")).json();
            (
                h["size"].as_u64().unwrap(),
                h["root"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn logs_copied_to_postgres_and_back_keep_their_roots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // An embedded node (no database registered for it).
    tiny_demo(dir.path());
    let server = Server::start(dir.path());
    let before = heads(&server.base);
    server.stop();

    let url = cluster::fresh_database().unwrap();
    let out = run(&["copy-store", "--from", d, "--to", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("now keeps its logs in the postgres store"),
        "{}",
        text(&out)
    );
    // The node is pinned to the database now: without it, it refuses.
    let out = run(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("keeps its logs in PostgreSQL"),
        "{}",
        text(&out)
    );

    use_database(dir.path(), &url);
    let server = Server::start(dir.path());
    let after = heads(&server.base);
    for (b, a) in before.iter().zip(&after) {
        assert!(a.0 >= b.0);
    }
    // Same entries, same tree: the copy's root at the old size is the old
    // signed root, and it proves consistent with the copy's newest head.
    for (s, (size, root)) in before.iter().enumerate() {
        let p = support::get(
            &server.base,
            &format!(
                "/v1/shards/{s}/consistency?first={size}&second={}",
                after[s].0
            ),
        );
        assert_eq!(p.status, 200, "{}", p.body);
        assert_eq!(p.json()["first_root"].as_str().unwrap(), root);
    }
    server.stop();
    let out = run(&["verify", "--store", &url]);
    assert!(out.status.success(), "{}", text(&out));

    // And back, into a data directory whose old logs were moved away.
    for s in 0..2 {
        std::fs::rename(
            dir.path().join(format!("shard-{s:03}")),
            dir.path().join(format!("old-shard-{s:03}")),
        )
        .unwrap();
    }
    let out = run(&["copy-store", "--from", &url, "--to", d]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["verify", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let url = cluster::fresh_database().unwrap();
    let out = run(&["migrate", "--store", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("applied migration 1"), "{}", text(&out));
    let out = run(&["migrate", "--store", &url]);
    assert!(
        text(&out).contains("at version 1, the newest"),
        "{}",
        text(&out)
    );
    sql(
        &url,
        &[
            "INSERT INTO coldtrail_schema (version, description) VALUES (99, 'from the future')"
                .to_string(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--store",
        &url,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("schema is version 99, newer than this coldtrail knows (version 1)"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_database_gone_longer_than_the_retry_limit_stops_writes_and_loses_nothing() {
    let pg = Cluster::start().unwrap();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    use_database(dir.path(), &url);
    let (token, _) = provision(dir.path());
    // Retry a failed group commit for one second only.
    let config = dir.path().join("coldtrail.toml");
    std::fs::write(&config, "[store]\nretry_ms = 1000\n").unwrap();
    let conf = config.to_str().unwrap();
    let server = Server::start_with(dir.path(), &["--config", conf]);
    let key = SigningKey::from_bytes(&[90; 32]);
    register_device(&server.base, &token, "pg-stop-logger", &key);
    let mut dev = DeviceClient::new("pg-stop-logger", key);
    let t0 = now_ms() - 3_600_000;
    let batch = |dev: &mut DeviceClient, from: i64| {
        let readings = (0..20)
            .map(|i| Reading::new(from + i * 1_000, 400))
            .collect();
        encode_binary(&[dev.sign(readings)])
    };
    // One batch, sent with its Idempotency-Key; the server must answer.
    let post_batch = |base: &str, body: &[u8], key: &str| {
        try_post(
            base,
            "/v1/batches",
            Some(&token),
            BINARY_BATCH,
            body,
            Some(key),
        )
        .expect("the server answers")
    };
    let first = batch(&mut dev, t0);
    let r = post_batch(&server.base, &first, "a");
    assert_eq!(r.status, 201, "{}", r.body);
    let acked = r.json()["entries"].as_array().unwrap().clone();

    pg.stop("immediate").unwrap();
    let second = batch(&mut dev, t0 + 60_000);
    let r = post_batch(&server.base, &second, "b");
    r.assert_problem(503, "unavailable");
    pg.start_again().unwrap();
    // The log stopped: it takes no more writes until the node restarts
    // (the shard had numbered the lost group).
    let r = post_batch(&server.base, &second, "b");
    r.assert_problem(503, "unavailable");
    server.kill9();

    let server = Server::start_with(dir.path(), &["--config", conf]);
    let r = post_batch(&server.base, &second, "b");
    assert_eq!(
        r.status, 201,
        "the refused batch is taken after the restart: {}",
        r.body
    );
    let mut all = acked;
    all.extend(r.json()["entries"].as_array().unwrap().clone());
    check_all(server, &url, &all);
}
