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
use std::time::{Duration, Instant};

use support::nats::{free_port, nats};
use support::{coldtrail, get, provision, run, shard_sizes, text, Server};

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
    let mut out = Vec::new();
    for shard in 0..2 {
        let size = get(base, &format!("/v1/shards/{shard}/head")).json()["size"]
            .as_u64()
            .unwrap();
        for i in 0..size {
            let e = get(base, &format!("/v1/shards/{shard}/entries/{i}")).json();
            if e["kind"] == "network" {
                out.push(e["entry"].clone());
            }
        }
    }
    out
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

#[test]
fn members_mirror_each_others_logs_and_a_rewritten_history_is_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (token_a, _) = provision(&a);
    provision(&b);
    let port = free_port();
    let mut server_nats = nats(port, &dir.path().join("jetstream"));
    let url = format!("nats://127.0.0.1:{port}");

    // Version 1 of the network, signed by both founders.
    let net = dir.path().join("network.json");
    let netf = net.to_str().unwrap();
    coldtrail(&[
        "network",
        "init",
        "--file",
        netf,
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
            netf,
            "--member",
            m,
            "--key",
            key.to_str().unwrap(),
        ]);
    }
    let env = |member: &'static str| {
        vec![
            ("COLDTRAIL_RECEIPTS_NATS", url.clone()),
            ("COLDTRAIL_NETWORK_FILE", netf.to_string()),
            ("COLDTRAIL_NETWORK_MEMBER", member.to_string()),
            ("COLDTRAIL_NETWORK_PUBLISH_INTERVAL_MS", "50".to_string()),
        ]
    };
    let start = |d: &Path, member: &'static str| {
        let env = env(member);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_logged_env(d, &d.with_extension("log"), &env)
    };

    // A node is the member whose operator key it holds, or it does not start.
    let refused = |d: &Path, member: &str, says: &str| {
        let out = support::command(&["serve", "--data-dir", d.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("COLDTRAIL_RECEIPTS_NATS", &url)
            .env("COLDTRAIL_NETWORK_FILE", netf)
            .env("COLDTRAIL_NETWORK_MEMBER", member)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{member} on {}", d.display());
        assert!(text(&out).contains(says), "{}", text(&out));
    };
    refused(&b, "a", "operator key is not member a's");
    refused(&a, "zz", "has no member \"zz\"");

    let server_a = start(&a, "a");
    let server_b = start(&b, "b");
    support::observe_six(&server_a.base, &token_a, "N1");
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
    server_a.stop();
    let old = dir.path().join("a-old");
    let cp = |from: &Path, to: &Path| {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .args([from, to])
            .status()
            .unwrap();
        assert!(status.success());
    };
    cp(&a, &old);
    let server_a = start(&a, "a");
    for tag in ["N2", "N3"] {
        support::observe_six(&server_a.base, &token_a, tag);
    }
    mirrored(&server_b.base, "a", &shard_sizes(&server_a.base), within);
    server_a.stop();

    // A restored from the copy signs a different history over the same
    // indices: B's mirror holds the first, so the new heads contradict it.
    std::fs::remove_dir_all(&a).unwrap();
    cp(&old, &a);
    let server_a = start(&a, "a");
    support::observe_six(&server_a.base, &token_a, "R1");
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
    let server_b = start(&b, "b");
    let deadline = Instant::now() + within;
    while mirrors_check(&server_b.base).1["ok"] != false {
        assert!(Instant::now() < deadline, "the fork is forgotten");
        std::thread::sleep(Duration::from_millis(100));
    }

    server_a.stop();
    server_b.stop();
    server_nats.kill().unwrap();
    server_nats.wait().unwrap();
    // Each node's logs and each mirror verify; each node recorded the
    // network version it follows once, and B the fork it caught.
    for d in [&a, &b] {
        let out = run(&["verify", "--data-dir", d.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    for mirror in ["a/mirrors/b", "b/mirrors/a"] {
        for shard in ["shard-000", "shard-001"] {
            let log = dir.path().join(mirror).join(shard);
            let out = run(&["verify", "--data-dir", log.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", log.display(), text(&out));
        }
    }
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
    assert_eq!(network_records(&a), 1, "A recorded the version it follows");
    let on_b = network_records(&b);
    assert!(
        (2..=3).contains(&on_b),
        "B recorded the version once and each forked shard once: {on_b}"
    );
}
