//! `serve` as a member of a network (`[network] file, member`): two nodes
//! of two organisations publish their logs over one NATS JetStream server
//! and each keeps a verified mirror of the other's; a node that is not the
//! member it claims is refused at start; a member restored from an old copy
//! that then signs a different history is caught as a fork by the other's
//! mirror (`/readyz` 503 naming it, `coldtrail_mirror_fork 1`, a network
//! record on B's log); each vouches for the other's heads it verified, and
//! proofs carry its cosignature.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::nats::{free_port, nats};
use support::{coldtrail, get, get_auth, provision, run, shard_sizes, text, Server};

/// The node's operator public key, hex (what the network file names).
fn operator_key(dir: &Path) -> String {
    let key = ledger::keys::read_key_file(&dir.join("keys/operator.key")).unwrap();
    hex::encode(key.verifying_key().to_bytes())
}

/// A gauge's value for `labels` (`member="a",shard="0"`) in `/metrics`.
fn gauge(base: &str, name: &str, labels: &str) -> Option<f64> {
    let r = get(base, "/metrics");
    assert_eq!(r.status, 200);
    let prefix = format!("{name}{{{labels}}} ");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// Waits until `base` mirrors `member`'s shards at `sizes`, entries and
/// verified heads both.
fn mirrored(base: &str, member: &str, sizes: &[u64], within: Duration) {
    let deadline = Instant::now() + within;
    let held = |shard: usize| {
        let labels = format!("member=\"{member}\",shard=\"{shard}\"");
        (
            gauge(base, "coldtrail_mirror_entries", &labels),
            gauge(base, "coldtrail_mirror_head_size", &labels),
        )
    };
    loop {
        let now: Vec<_> = (0..sizes.len()).map(held).collect();
        let want: Vec<_> = sizes
            .iter()
            .map(|&s| (Some(s as f64), Some(s as f64)))
            .collect();
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} mirrors {member} at {now:?}, not {want:?}: {}",
            get(base, "/readyz").body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The network records `base` serves (each entry's decoded view), read
/// entry by entry: they are public.
fn network_records_served(base: &str) -> Vec<serde_json::Value> {
    served_entries(base, None)
        .into_iter()
        .filter(|e| e["kind"] == "network")
        .map(|e| e["entry"].clone())
        .collect()
}

/// Every entry of the node at `base` (two shards) as it answers `token`
/// (or a stranger): the entry, or the refusal.
fn served_entries(base: &str, token: Option<&str>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for shard in 0..2 {
        let size = get(base, &format!("/v1/shards/{shard}/head")).json()["size"]
            .as_u64()
            .unwrap();
        for i in 0..size {
            let path = format!("/v1/shards/{shard}/entries/{i}");
            let r = match token {
                Some(t) => get_auth(base, &path, t),
                None => get(base, &path),
            };
            out.push(r.json());
        }
    }
    out
}

/// `base` serves member a's log (`sizes` by shard) from its mirror: each
/// shard's head, signed by a's shard key; every entry's inclusion proof
/// under it (public); every entry's content to `investigator`, none of its
/// custody events to a stranger (the one visibility model).
fn served_from_mirror(base: &str, a: &Path, sizes: &[u64], investigator: &str) {
    for (shard, &size) in sizes.iter().enumerate() {
        let key = ledger::keys::read_key_file(&a.join(format!("keys/shard-{shard:03}.key")))
            .unwrap()
            .verifying_key();
        let r = get(base, &format!("/v1/members/a/shards/{shard}/head"));
        assert_eq!(r.status, 200, "{}", r.body);
        let head = support::head_of(&r.json());
        head.verify(&key).unwrap();
        assert_eq!(head.head.size, size);
        for i in 0..size {
            let path = format!("/v1/members/a/shards/{shard}/entries/{i}");
            let p = get(base, &format!("{path}/proof")).json();
            assert_eq!(support::head_of(&p["head"]), head, "{p}");
            support::verify_proof_answer(&p);
            let e = get_auth(base, &path, investigator);
            assert_eq!(e.status, 200, "{}", e.body);
            let e = e.json();
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                e["bytes"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(ledger::entry_id(&bytes).to_hex(), p["id"].as_str().unwrap());
            assert_eq!(e["proof_url"], format!("{path}/proof"));
            if e["kind"] == "custody" {
                assert_eq!(get(base, &path).status, 401, "a stranger reads {path}");
            }
        }
        let beyond = get(
            base,
            &format!("/v1/members/a/shards/{shard}/entries/{size}"),
        );
        assert_eq!(beyond.status, 404, "{}", beyond.body);
    }
    assert_eq!(get(base, "/v1/members/zz/shards/0/head").status, 404);
    let listed = get(base, "/v1/members").json();
    let shards = listed["members"][0]["shards"].as_array().unwrap();
    assert_eq!(listed["members"][0]["member"], "a", "{listed}");
    for (s, &size) in shards.iter().zip(sizes) {
        assert_eq!(
            (s["entries"].as_u64(), s["head"]["size"].as_u64()),
            (Some(size), Some(size))
        );
        assert!(s["fork"].is_null(), "{listed}");
    }
}

/// The `mirrors` check of `/readyz`, with the status.
fn mirrors_check(base: &str) -> (u16, serde_json::Value) {
    let r = get(base, "/readyz");
    let check = r.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mirrors")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    (r.status, check)
}

/// Two member nodes, `a` and `b` (two shards each, both organisations
/// registered on each), a NATS JetStream server, and version 1 of their
/// network, signed by both.
struct Pair {
    dir: tempfile::TempDir,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    /// A partner token of a's carrier.
    token_a: String,
    url: String,
    nats_port: u16,
    nats: std::process::Child,
    net: String,
}

impl Pair {
    fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (token_a, _) = provision(&a);
        provision(&b);
        let nats_port = free_port();
        let nats = nats(nats_port, &dir.path().join("jetstream"));
        let url = format!("nats://127.0.0.1:{nats_port}");
        let net = dir
            .path()
            .join("network.json")
            .to_str()
            .unwrap()
            .to_string();
        coldtrail(&[
            "network",
            "init",
            "--file",
            &net,
            "--network",
            "coldtrail-test",
            "--member",
            &format!("a,{},http://a.example,0614141,2", operator_key(&a)),
            "--member",
            &format!("b,{},http://b.example,0614142,2", operator_key(&b)),
        ]);
        for (m, d) in [("a", &a), ("b", &b)] {
            let key = d.join("keys/operator.key");
            coldtrail(&[
                "network",
                "sign",
                "--file",
                &net,
                "--member",
                m,
                "--key",
                key.to_str().unwrap(),
            ]);
        }
        Pair {
            dir,
            a,
            b,
            token_a,
            url,
            nats_port,
            nats,
            net,
        }
    }

    /// `serve` of the node in `d` as `member`, publishing every 50 ms.
    fn start(&self, d: &Path, member: &str) -> Server {
        let env = [
            ("COLDTRAIL_RECEIPTS_NATS", self.url.as_str()),
            ("COLDTRAIL_NETWORK_FILE", self.net.as_str()),
            ("COLDTRAIL_NETWORK_MEMBER", member),
            ("COLDTRAIL_NETWORK_PUBLISH_INTERVAL_MS", "50"),
        ];
        Server::start_logged_env(d, &d.with_extension("log"), &env)
    }

    /// SIGKILLs the NATS server and starts it again on its port and store.
    fn kill_nats(&mut self) {
        self.nats.kill().unwrap();
        self.nats.wait().unwrap();
        self.nats = nats(self.nats_port, &self.dir.path().join("jetstream"));
    }

    /// Both nodes' logs verify, and each mirror's (in the node's database
    /// with the node's logs, when it keeps them in PostgreSQL).
    fn verify_all(&self) {
        for d in [&self.a, &self.b] {
            let out = run(&["verify", "--data-dir", d.to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out));
            if support::store_url(d).is_some() {
                assert!(text(&out).contains("mirror_"), "{}", text(&out));
            }
        }
        if support::store_url(&self.a).is_some() {
            return;
        }
        for mirror in ["a/mirrors/b", "b/mirrors/a"] {
            for shard in ["shard-000", "shard-001"] {
                let log = self.dir.path().join(mirror).join(shard);
                let out = run(&["verify", "--data-dir", log.to_str().unwrap()]);
                assert!(out.status.success(), "{}: {}", log.display(), text(&out));
            }
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.nats.kill();
        let _ = self.nats.wait();
    }
}

#[test]
fn members_mirror_each_others_logs_and_a_rewritten_history_is_a_fork() {
    let pair = Pair::new();
    let (a, b, token_a) = (&pair.a, &pair.b, &pair.token_a);
    let dir = &pair.dir;
    let start = |d: &Path, member: &str| pair.start(d, member);

    // A node is the member whose operator key it holds, or it does not start.
    let refused = |d: &Path, member: &str, says: &str| {
        let out = support::command(&["serve", "--data-dir", d.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("COLDTRAIL_RECEIPTS_NATS", &pair.url)
            .env("COLDTRAIL_NETWORK_FILE", &pair.net)
            .env("COLDTRAIL_NETWORK_MEMBER", member)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{member} on {}", d.display());
        assert!(text(&out).contains(says), "{}", text(&out));
    };
    refused(b, "a", "operator key is not member a's");
    refused(a, "zz", "has no member \"zz\"");

    let investigator_b = support::token(b, support::ORG, "investigator");
    let server_a = start(a, "a");
    let server_b = start(b, "b");
    support::observe_six(&server_a.base, token_a, "N1");
    // Each mirrors the other, entry for entry, up to the newest head.
    let within = Duration::from_secs(30);
    // A's receipts between its own shards arrive (members share the
    // stream, and no node takes another's).
    support::nats::settle(&server_a.base, within);
    mirrored(&server_b.base, "a", &shard_sizes(&server_a.base), within);
    mirrored(&server_a.base, "b", &shard_sizes(&server_b.base), within);
    let (status, check) = mirrors_check(&server_b.base);
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], true);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 of 1 members followed: 2 logs"),
        "{check}"
    );

    // B vouches for A's heads it verified: A's key set names B as a
    // witness (quorum 1: a majority of the one other member), and a proof
    // of A's newest entry soon comes with a checkpoint B cosigned.
    let policy = get(&server_a.base, "/.well-known/coldtrail/keys").json()["key_sets"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["witnesses"]
        .clone();
    assert_eq!(policy["quorum"], 1, "{policy}");
    assert_eq!(
        policy["witnesses"][0]["name"], "coldtrail-test/b",
        "{policy}"
    );
    let size = shard_sizes(&server_a.base)[0];
    let path = format!("/v1/shards/0/entries/{}/proof", size - 1);
    let deadline = Instant::now() + within;
    let proof = loop {
        let p = get(&server_a.base, &path).json();
        if !p["witnessed"].is_null() {
            break p;
        }
        assert!(Instant::now() < deadline, "never vouched for: {p}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let b_key = ledger::keys::read_key_file(&b.join("keys/operator.key"))
        .unwrap()
        .verifying_key();
    let a_shard = ledger::keys::read_key_file(&a.join("keys/shard-000.key"))
        .unwrap()
        .verifying_key();
    let (_, vouched) = ledger::note::check_cosigned(
        proof["witnessed"]["checkpoint"].as_str().unwrap(),
        &a_shard,
        &[("coldtrail-test/b".to_string(), b_key)],
    )
    .unwrap();
    assert_eq!(vouched, ["coldtrail-test/b"]);
    assert_eq!(proof["witnessed"]["witnesses"], serde_json::json!(vouched));

    // A copy of A taken now, while it is stopped; A goes on (and B follows).
    let sizes_a = shard_sizes(&server_a.base);
    server_a.stop();
    // A down: B answers for A's log from its mirror, under A's own heads.
    served_from_mirror(&server_b.base, a, &sizes_a, &investigator_b);
    if support::store_url(a).is_some() {
        // A's logs are in its database: restoring its directory from a copy
        // (below) would not roll them back. The fork is the embedded run's.
        server_b.stop();
        pair.verify_all();
        return;
    }
    let old = dir.path().join("a-old");
    let cp = |from: &Path, to: &Path| {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .args([from, to])
            .status()
            .unwrap();
        assert!(status.success());
    };
    cp(a, &old);
    let server_a = start(a, "a");
    for tag in ["N2", "N3"] {
        support::observe_six(&server_a.base, token_a, tag);
    }
    mirrored(&server_b.base, "a", &shard_sizes(&server_a.base), within);
    server_a.stop();

    // A restored from the copy signs a different history over the same
    // indices: B's mirror holds the first, so the new heads contradict it.
    std::fs::remove_dir_all(a).unwrap();
    cp(&old, a);
    let server_a = start(a, "a");
    support::observe_six(&server_a.base, token_a, "R1");
    let deadline = Instant::now() + within;
    let (status, check) = loop {
        let (status, check) = mirrors_check(&server_b.base);
        if check["ok"] == false {
            break (status, check);
        }
        assert!(Instant::now() < deadline, "no fork seen: {check}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503, "a fork makes the node unready: {check}");
    assert!(
        check["detail"].as_str().unwrap().contains("FORK in a/"),
        "{check}"
    );
    // Anyone may see which logs b mirrors, how far, and the fork's heads.
    let listed = get(&server_b.base, "/v1/members").json();
    assert_eq!(listed["members"][0]["member"], "a", "{listed}");
    let forked: Vec<&serde_json::Value> = listed["members"][0]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["fork"].is_null())
        .collect();
    assert!(!forked.is_empty(), "{listed}");
    for s in forked {
        assert_ne!(s["fork"]["held"]["root"], s["fork"]["conflicting"]["root"]);
    }
    let forked: Vec<_> = (0..2)
        .filter_map(|s| {
            gauge(
                &server_b.base,
                "coldtrail_mirror_fork",
                &format!("member=\"a\",shard=\"{s}\""),
            )
        })
        .collect();
    assert!(forked.contains(&1.0), "{forked:?}");
    // B records the fork on its own log, both heads as evidence; anyone may
    // read it.
    let deadline = Instant::now() + within;
    let fork = loop {
        let records = network_records_served(&server_b.base);
        if let Some(f) = records.iter().find(|r| r["record"] == "fork") {
            break f.clone();
        }
        assert!(Instant::now() < deadline, "no fork recorded: {records:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(fork["member"], "a");
    assert!(
        fork["held"]["root"] != fork["conflicting"]["root"],
        "{fork}"
    );
    let adopted: Vec<_> = network_records_served(&server_a.base)
        .into_iter()
        .filter(|r| r["record"] == "adopted")
        .collect();
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(
        (
            adopted[0]["network"].as_str(),
            adopted[0]["version"].as_u64()
        ),
        (Some("coldtrail-test"), Some(1))
    );
    // The fork stays across B's restart (the evidence is in its state).
    server_b.stop();
    let server_b = start(b, "b");
    let deadline = Instant::now() + within;
    while mirrors_check(&server_b.base).1["ok"] != false {
        assert!(Instant::now() < deadline, "the fork is forgotten");
        std::thread::sleep(Duration::from_millis(100));
    }

    server_a.stop();
    server_b.stop();
    // Each node's logs and each mirror verify; each node recorded the
    // network version it follows once, and B the fork it caught.
    pair.verify_all();
    let network_records = |d: &Path| -> u64 {
        let out = coldtrail(&["inspect", "--data-dir", d.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("by kind"))
            .flat_map(|kinds| kinds.split(',').map(str::trim).collect::<Vec<_>>())
            .filter_map(|k| k.strip_prefix("network "))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(network_records(a), 1, "A recorded the version it follows");
    let on_b = network_records(b);
    assert!(
        (2..=3).contains(&on_b),
        "B recorded the version once and each forked shard once: {on_b}"
    );
}

/// The custody events on the log of the node at `base`, by eventID, as
/// `token` (their recorder) reads them.
fn event_ids_on_log(base: &str, token: &str) -> std::collections::BTreeSet<String> {
    served_entries(base, Some(token))
        .iter()
        .filter_map(|e| e["entry"]["event_id"].as_str().map(str::to_string))
        .collect()
}

/// `COLDTRAIL_NETWORK_KILL_CYCLES` cycles (default 3; the campaign's figures
/// are in README.md): a writer captures events on member a as fast as a
/// answers while, at a random moment each cycle, a is SIGKILLed and started
/// again (every third cycle, the NATS server instead); then b is stopped
/// (SIGSTOP) for three seconds while a goes on. After: every capture
/// a acknowledged is on its log, its receipts all arrived, b's mirror holds
/// a's log entry for entry up to its newest head with no fork, and every
/// log and mirror verifies.
#[test]
fn members_killed_under_load_lose_nothing_acknowledged_and_mirrors_catch_up() {
    let cycles: u64 = std::env::var("COLDTRAIL_NETWORK_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut pair = Pair::new();
    let server_b = pair.start(&pair.b, "b");
    let mut server_a = pair.start(&pair.a, "a");
    let base = Arc::new(Mutex::new(server_a.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (base, stop, acked, token) = (
            Arc::clone(&base),
            Arc::clone(&stop),
            Arc::clone(&acked),
            pair.token_a.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let tag = format!("K{n}");
                let at = base.lock().unwrap().clone();
                let r = support::try_post(
                    &at,
                    "/capture",
                    Some(&token),
                    "application/ld+json",
                    &support::six_lots_document(&tag),
                    None,
                );
                match r {
                    Some(r) if r.status == 202 => acked
                        .lock()
                        .unwrap()
                        .push(format!("urn:uuid:coldtrail-nats-{tag}")),
                    // Refused while starting, or cut off by the kill: not
                    // acknowledged, so owed nothing.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    // A small xorshift on the clock: each run kills at other moments.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for cycle in 0..cycles {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(200 + x % 1000));
        if cycle % 3 == 2 {
            pair.kill_nats();
        } else {
            server_a.kill9();
            server_a = pair.start(&pair.a, "a");
            *base.lock().unwrap() = server_a.base.clone();
        }
    }
    // b stopped (SIGSTOP) for a while: a goes on taking writes, and b's
    // mirror catches up once it resumes.
    let signal = |sig: &str| {
        let pid = server_b.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let before = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    assert!(
        acked.lock().unwrap().len() > before,
        "a took writes while b was stopped"
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() as u64 > cycles,
        "the writer got through: {}",
        acked.len()
    );

    let within = Duration::from_secs(60);
    support::nats::settle(&server_a.base, within);
    let on_log = event_ids_on_log(&server_a.base, &pair.token_a);
    let lost: Vec<_> = acked.iter().filter(|id| !on_log.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged and not on a's log: {lost:?}");
    mirrored(&server_b.base, "a", &shard_sizes(&server_a.base), within);
    let (status, check) = mirrors_check(&server_b.base);
    assert_eq!(
        (status, &check["ok"]),
        (200, &serde_json::json!(true)),
        "{check}"
    );
    eprintln!(
        "{cycles} kill cycles: {} captures acknowledged, all on a's log and in b's mirror",
        acked.len()
    );
    server_a.stop();
    server_b.stop();
    pair.verify_all();
}
