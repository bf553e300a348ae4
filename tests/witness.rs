//! `coldtrail witness` over real HTTP: a node's checkpoints, sent with the
//! node's own consistency proofs, are cosigned while the log only grows;
//! a stale old size is answered 409 with the size the witness holds, across a
//! kill -9 of the witness; an unknown log is 404. The cosignatures check in
//! Rust and in a Python checker written from the C2SP texts.

mod support;

use std::process::Command;

use base64::Engine;
use support::witnesses::{config, shard_keys, Witness};
use support::{get, post_json, provision, Server};

const NAME: &str = "witness.example/w1";

/// A witness named `NAME`.
fn start_witness(dir: &std::path::Path, logs: &[String]) -> Witness {
    Witness::named(dir, logs, NAME)
}

/// Registers a device (an entry on the organisation's shard); that shard.
fn grow(base: &str, token: &str, n: u8) -> u64 {
    let key = ed25519_dalek::SigningKey::from_bytes(&[100 + n; 32]);
    let r = post_json(
        base,
        "/v1/devices",
        token,
        &serde_json::json!({"device": format!("logger-w{n}"), "public_key": hex::encode(key.verifying_key().as_bytes())}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["entries"][0]["shard"].as_u64().unwrap()
}

#[test]
fn a_witness_cosigns_a_growing_log_and_holds_its_size_across_a_kill() {
    let node_dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(node_dir.path());
    let server = Server::start(node_dir.path());
    let base = server.base.as_str();
    let keys = shard_keys(base);
    let shard = grow(base, &token, 0) as usize;
    let witness_dir = tempfile::tempdir().unwrap();
    let mut witness = start_witness(witness_dir.path(), &[keys[shard].clone()]);

    let checkpoint = |size: Option<u64>| {
        let q = size.map_or(String::new(), |s| format!("?size={s}"));
        let r = get(base, &format!("/v1/shards/{shard}/checkpoint{q}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let size_of = |c: &str| c.lines().nth(1).unwrap().parse::<u64>().unwrap();
    let check = |c: &str, line: &str| {
        let note = ledger::note::Note::parse(&format!("{c}{line}")).unwrap();
        note.verify_cosignature(NAME, &witness_key(&witness_dir))
            .unwrap();
        let file = witness_dir.path().join("cosigned");
        std::fs::write(&file, format!("{c}{line}")).unwrap();
        let text = ledger::note::Checkpoint::parse(&note.text).unwrap();
        support::python_check(
            "check_checkpoint.py",
            &[
                file,
                keys[shard].clone().into(),
                text.size.to_string().into(),
                text.root.to_hex().into(),
                NAME.into(),
                hex::encode(witness_key(&witness_dir).as_bytes()).into(),
            ],
            "the cosigned checkpoint does not check in Python",
        );
    };

    // First sight: from size 0, no proof.
    let first = checkpoint(None);
    let a = size_of(&first);
    let r = witness.add(0, &[], &first);
    assert_eq!(r.status, 200, "{}", r.body);
    check(&first, &r.body);

    // The log grows; the node's consistency proof carries the witness on.
    for n in 1..4 {
        grow(base, &token, n);
    }
    let second = checkpoint(None);
    let b = size_of(&second);
    assert!(b > a);
    let c = get(
        base,
        &format!("/v1/shards/{shard}/consistency?first={a}&second={b}"),
    )
    .json();
    let proof: Vec<String> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    let r = witness.add(a, &proof, &second);
    assert_eq!(r.status, 200, "{}", r.body);
    check(&second, &r.body);

    // An old size the witness no longer holds: 409 naming the one it holds.
    let r = witness.add(0, &[], &first);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body, format!("{b}\n"));
    assert!(
        r.content_type.starts_with("text/x.tlog.size"),
        "{}",
        r.content_type
    );
    // A proof that does not lead to the checkpoint: 422.
    let mut wrong = proof.clone();
    wrong[0] = "00".repeat(32);
    grow(base, &token, 9);
    let third = checkpoint(None);
    let r = witness.add(b, &wrong, &third);
    assert_eq!(r.status, 422, "{}", r.body);

    // Killed and started again, the witness still holds size b: what it
    // answered was durable first.
    witness.kill();
    let witness2 = start_witness(witness_dir.path(), &[keys[shard].clone()]);
    assert_eq!(witness2.key, witness.key, "the same key");
    let r = witness2.add(a, &proof, &second);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body, format!("{b}\n"));
    // A log it does not watch: 404.
    let other = (0..keys.len()).find(|&s| s != shard).unwrap();
    let theirs = get(base, &format!("/v1/shards/{other}/checkpoint")).body;
    assert_eq!(witness2.add(0, &[], &theirs).status, 404);
    // A checkpoint's text with the signature of another key: 403.
    let forged = second.replace(
        second.lines().last().unwrap(),
        &format!(
            "\u{2014} {} {}",
            second.lines().next().unwrap(),
            base64::engine::general_purpose::STANDARD.encode([1u8; 68])
        ),
    );
    assert_eq!(witness2.add(b, &[], &forged).status, 403);
}

/// The witness's public key, from its key file.
fn witness_key(dir: &tempfile::TempDir) -> ed25519_dalek::VerifyingKey {
    ledger::keys::read_key_file(&dir.path().join(witness::KEY_FILE))
        .unwrap()
        .verifying_key()
}

#[test]
fn a_node_gets_its_checkpoints_cosigned_and_serves_them_and_a_dead_witness_blocks_no_write() {
    let node_dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(node_dir.path());
    // The witness operator copies the log keys from the key document.
    let keys = {
        let server = Server::start(node_dir.path());
        let keys = shard_keys(&server.base);
        server.stop();
        keys
    };
    let witness_dir = tempfile::tempdir().unwrap();
    let mut witness = start_witness(witness_dir.path(), &keys);
    let config = witness.config(node_dir.path());
    let server = Server::start_with(node_dir.path(), &["--config", config.to_str().unwrap()]);
    let base = server.base.as_str();
    let shard = grow(base, &token, 20) as usize;
    let newest = || {
        let head = get(base, &format!("/v1/shards/{shard}/head")).json();
        head["size"].as_u64().unwrap()
    };
    // The node offers its heads on its own; soon the newest is cosigned.
    let size = newest();
    let cosigned = wait_for(|| {
        let r = get(base, &format!("/v1/shards/{shard}/checkpoint?cosigned=1"));
        (r.status == 200 && r.body.lines().nth(1) == Some(size.to_string().as_str()))
            .then_some(r.body)
    });
    let note = ledger::note::Note::parse(&cosigned).unwrap();
    assert_eq!(
        note.verify_cosignature(NAME, &witness.key).map(|_| ()),
        Ok(())
    );
    note.verify_signature(
        note.text.lines().next().unwrap(),
        &ed25519_dalek::VerifyingKey::from_bytes(
            &hex::decode(&keys[shard]).unwrap().try_into().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    // By size too, and it grows with the log (the node proves consistency).
    let by_size = get(base, &format!("/v1/shards/{shard}/checkpoint?size={size}")).body;
    assert_eq!(by_size, cosigned);
    for n in 21..24 {
        grow(base, &token, n);
    }
    let later = newest();
    assert!(later > size);
    wait_for(|| {
        let r = get(base, &format!("/v1/shards/{shard}/checkpoint?cosigned=1"));
        (r.body.lines().nth(1) == Some(later.to_string().as_str())).then_some(())
    });
    get(base, &format!("/v1/shards/{shard}/checkpoint?cosigned=2"))
        .assert_problem(404, "not_found");
    // A client that trusts the witness checks every shard's head against a
    // checkpoint it cosigned; one that asks for two witnesses is refused.
    let trusted = witness.trusted();
    wait_for(|| {
        let out = support::command(&["audit-remote", base, "--witness", &trusted])
            .output()
            .unwrap();
        out.status.success().then_some(out)
    });
    let other = format!("witness.example/w2={}", hex::encode([9u8; 32]));
    let out = support::command(&[
        "audit-remote",
        base,
        "--witness",
        &trusted,
        "--witness",
        &other,
    ])
    .output()
    .unwrap();
    assert!(
        !out.status.success(),
        "two of two cannot hold with one witness"
    );
    get(
        base,
        &format!("/v1/shards/{shard}/checkpoint?cosigned=1&size=1"),
    )
    .assert_problem(400, "invalid_parameter");

    // A witness that is gone: writes go on, answered as before, and what
    // it cosigned stays served.
    witness.kill();
    for n in 30..35 {
        grow(base, &token, n);
    }
    let r = get(base, &format!("/v1/shards/{shard}/checkpoint?cosigned=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop();
}

/// Waits until the shard's newest head is cosigned by `k` witnesses;
/// returns its size.
fn wait_cosigned(base: &str, shard: usize, k: usize) -> u64 {
    let size = get(base, &format!("/v1/shards/{shard}/head")).json()["size"]
        .as_u64()
        .unwrap();
    wait_for(|| {
        let r = get(base, &format!("/v1/shards/{shard}/checkpoint?cosigned={k}"));
        (r.body.lines().nth(1) == Some(size.to_string().as_str())).then_some(())
    });
    size
}

/// Runs `coldtrail ARGS` (an `audit-remote`) and asserts whether it passed.
fn audited(args: &[&str], passes: bool) {
    let out = support::command(args).output().unwrap();
    assert_eq!(
        out.status.success(),
        passes,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Polls `f` every 50 ms for up to 20 s until it gives a value.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("not within 20 s")
}

/// `cp -a SRC/. DST`: a copy of a node's data directory, as a backup is.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_node_restored_from_an_old_copy_is_caught_by_its_witness() {
    let node_dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(node_dir.path());
    let (keys, shard) = {
        let server = Server::start(node_dir.path());
        let keys = shard_keys(&server.base);
        let shard = grow(&server.base, &token, 40) as usize;
        server.stop();
        (keys, shard)
    };
    // The operator's backup, taken now.
    let backup = tempfile::tempdir().unwrap();
    copy_dir(node_dir.path(), backup.path());
    let witness_dir = tempfile::tempdir().unwrap();
    let witness = start_witness(witness_dir.path(), &keys);
    let config_dir = tempfile::tempdir().unwrap();
    let config = witness.config(config_dir.path());
    let serve = || Server::start_with(node_dir.path(), &["--config", config.to_str().unwrap()]);

    // The log grows and the witness cosigns its newest size.
    let server = serve();
    for n in 41..45 {
        grow(&server.base, &token, n);
    }
    wait_cosigned(&server.base, shard, 1);
    assert_eq!(get(&server.base, "/readyz").status, 200);
    server.stop();

    // Restored from the backup, the node's log is shorter than what the
    // witness cosigned: the witness says so, and the node reports it.
    std::fs::remove_dir_all(node_dir.path()).unwrap();
    copy_dir(backup.path(), node_dir.path());
    let server = serve();
    let ready = wait_for(|| {
        let r = get(&server.base, "/readyz");
        (r.status == 503 && r.body.contains("rolled back")).then_some(r)
    });
    assert!(ready.body.contains("witnesses"), "{}", ready.body);
    let metrics = get(&server.base, "/metrics").body;
    assert!(
        metrics.lines().any(|l| l == "coldtrail_witness_alarm 1"),
        "the alarm is a metric: {metrics}"
    );
    // A client that trusts the witness, run fresh with nothing saved, does
    // not take the restored node's heads as witnessed.
    let trusted = witness.trusted();
    let out = support::command(&["audit-remote", &server.base, "--witness", &trusted])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.stop();
}

/// Registers a device; its shard, and the path of the newest entry's proof
/// there (the registration's, as nothing else writes).
fn grow_one(base: &str, token: &str, n: u8) -> (usize, String) {
    let shard = grow(base, token, n) as usize;
    let size = get(base, &format!("/v1/shards/{shard}/head")).json()["size"]
        .as_u64()
        .unwrap();
    (
        shard,
        format!("/v1/shards/{shard}/entries/{}/proof", size - 1),
    )
}

/// The proof at `path` once it carries a witnessed checkpoint.
fn witnessed_proof(base: &str, path: &str) -> serde_json::Value {
    wait_for(|| {
        let p = get(base, path).json();
        (!p["witnessed"].is_null()).then_some(p)
    })
}

/// The newest key set's witness policy, as the key document shows it.
fn published_policy(base: &str) -> serde_json::Value {
    let doc = get(base, "/.well-known/coldtrail/keys").json();
    doc["key_sets"].as_array().unwrap().last().unwrap()["witnesses"].clone()
}

/// Checks a proof answer's `witnessed` object as a client would: the
/// checkpoint is the shard's, signed by its key, cosigned by `quorum` of
/// `witnesses`, and the entry's path leads to its root. Returns who vouched.
fn check_witnessed(
    proof: &serde_json::Value,
    shard_key: &str,
    trusted: &[(String, ed25519_dalek::VerifyingKey)],
    quorum: usize,
) -> Vec<String> {
    let w = &proof["witnessed"];
    let key = ed25519_dalek::VerifyingKey::from_bytes(
        &hex::decode(shard_key).unwrap().try_into().unwrap(),
    )
    .unwrap();
    let (checkpoint, vouched) =
        ledger::note::check_cosigned(w["checkpoint"].as_str().unwrap(), &key, trusted).unwrap();
    assert!(vouched.len() >= quorum, "{vouched:?}");
    assert_eq!(checkpoint.size, w["size"].as_u64().unwrap());
    let path: Vec<ledger::Digest> = w["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| ledger::Digest::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let leaf = ledger::Digest::from_hex(proof["id"].as_str().unwrap()).unwrap();
    ledger::merkle::verify_inclusion::<ledger::merkle::Blake3Merkle>(
        proof["index"].as_u64().unwrap(),
        checkpoint.size,
        &leaf,
        &path,
        &checkpoint.root,
    )
    .unwrap();
    vouched
}

#[test]
fn three_witnesses_and_a_2_of_3_policy_published_served_with_proofs_and_checked_by_clients() {
    let node_dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(node_dir.path());
    let keys = {
        let server = Server::start(node_dir.path());
        let keys = shard_keys(&server.base);
        assert_eq!(published_policy(&server.base), serde_json::Value::Null);
        server.stop();
        keys
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Named out of order: the policy lists them sorted.
    let mut witnesses: Vec<Witness> = ["w.example/c", "w.example/a", "w.example/b"]
        .iter()
        .zip(&dirs)
        .map(|(name, d)| Witness::named(d.path(), &keys, name))
        .collect();
    let config_dir = tempfile::tempdir().unwrap();
    let cfg = config(
        config_dir.path(),
        &witnesses.iter().collect::<Vec<_>>(),
        None,
    );
    let server = Server::start_with(node_dir.path(), &["--config", cfg.to_str().unwrap()]);
    let base = server.base.as_str();

    // The node publishes the policy (a majority: 2 of 3) in a signed key set.
    let policy = published_policy(base);
    assert_eq!(policy["quorum"], 2, "{policy}");
    let names: Vec<&str> = policy["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w.example/a", "w.example/b", "w.example/c"]);
    let doc = get(base, "/.well-known/coldtrail/keys").json();
    let newest = doc["key_sets"].as_array().unwrap().last().unwrap();
    let signed = ledger::keyset::SignedKeySet::from_bytes(
        &base64::engine::general_purpose::STANDARD
            .decode(newest["signed"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    signed.verify().unwrap();
    let held = signed.set.witnesses.unwrap();
    assert_eq!(held.quorum, 2);
    assert!(held
        .witnesses
        .iter()
        .zip(["w.example/a", "w.example/b", "w.example/c"])
        .all(|(w, name)| w.name == name
            && witnesses
                .iter()
                .any(|x| x.name == name && x.key.to_bytes() == w.public_key)));

    // An entry's proof soon carries a checkpoint two of them cosigned.
    let (shard, proof_path) = grow_one(base, &token, 50);
    let proof = witnessed_proof(base, &proof_path);
    let all: Vec<(String, ed25519_dalek::VerifyingKey)> =
        witnesses.iter().map(|w| (w.name.clone(), w.key)).collect();
    let mut vouched = check_witnessed(&proof, &keys[shard], &all, 2);
    vouched.sort();
    assert_eq!(
        proof["witnessed"]["witnesses"],
        serde_json::json!(vouched),
        "the names the node lists are the ones that check"
    );

    // audit-remote, run fresh with nothing saved and no --witness, checks
    // the policy the key set names.
    let out = wait_for(|| {
        let out = support::command(&["audit-remote", base]).output().unwrap();
        out.status.success().then_some(out)
    });
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("witnesses from the key set: 2 of"), "{said}");
    assert!(
        said.contains(&format!("shard {shard}: the head grew from size")),
        "{said}"
    );

    // One witness down: two still make the quorum for new entries.
    witnesses[0].kill();
    let (shard2, path2) = grow_one(base, &token, 51);
    let proof2 = witnessed_proof(base, &path2);
    let vouched2 = check_witnessed(&proof2, &keys[shard2], &all, 2);
    assert!(!vouched2.contains(&witnesses[0].name), "{vouched2:?}");

    // Two down: a new entry is signed but no quorum vouches for it, while
    // the earlier ones keep their cosigned checkpoint.
    witnesses[1].kill();
    let (_, path3) = grow_one(base, &token, 52);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let proof3 = get(base, &path3).json();
    assert!(proof3["witnessed"].is_null(), "{proof3}");
    assert!(!proof3["head"].is_null());
    assert!(!get(base, &proof_path).json()["witnessed"].is_null());
    // audit-remote still passes: each head grew from a checkpoint the
    // quorum cosigned earlier (it checks consistency, not freshness).
    let out = support::command(&["audit-remote", base]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.stop();

    // Served without witnesses, the node publishes that it has none.
    let server = Server::start(node_dir.path());
    assert_eq!(published_policy(&server.base), serde_json::Value::Null);
    assert!(get(&server.base, &proof_path).json()["witnessed"].is_null());
    server.stop();
}

#[test]
fn a_second_node_with_the_same_keys_and_another_history_is_refused_by_every_witness() {
    let node_dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(node_dir.path());
    let keys = {
        let server = Server::start(node_dir.path());
        let keys = shard_keys(&server.base);
        grow(&server.base, &token, 60);
        server.stop();
        keys
    };
    // The fork: a copy of the node (same operator and log keys) that will
    // write another history from here.
    let fork_dir = tempfile::tempdir().unwrap();
    copy_dir(node_dir.path(), fork_dir.path());
    let witness_dirs: Vec<tempfile::TempDir> =
        (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let witnesses: Vec<Witness> = ["w.example/a", "w.example/b"]
        .iter()
        .zip(&witness_dirs)
        .map(|(name, d)| Witness::named(d.path(), &keys, name))
        .collect();
    let config_dir = tempfile::tempdir().unwrap();
    let cfg = config(
        config_dir.path(),
        &witnesses.iter().collect::<Vec<_>>(),
        Some(2),
    );
    let serve =
        |dir: &std::path::Path| Server::start_with(dir, &["--config", cfg.to_str().unwrap()]);

    // The first node grows and both witnesses cosign its newest heads.
    let a = serve(node_dir.path());
    let (shard, _) = grow_one(&a.base, &token, 61);
    grow(&a.base, &token, 62);
    let size = wait_cosigned(&a.base, shard, 2);
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("audit.json");
    audited(
        &[
            "audit-remote",
            &a.base,
            "--state",
            state_file.to_str().unwrap(),
        ],
        true,
    );
    a.stop();

    // The fork writes other entries, more of them, on the same keys: every
    // witness refuses its checkpoints, and it raises the alarm.
    let b = serve(fork_dir.path());
    for n in 70..75 {
        grow(&b.base, &token, n);
    }
    let ready = wait_for(|| {
        let r = get(&b.base, "/readyz");
        (r.status == 503 && r.body.contains("witnesses")).then_some(r)
    });
    // First sight may be a head below what they hold, later ones a proof
    // that fails: either way the witnesses contradict this log.
    assert!(
        ready.body.contains("inconsistent")
            || ready.body.contains("another node signs with its key"),
        "{}",
        ready.body
    );
    for w in &witnesses {
        // What each witness holds is still the first node's size.
        let r = w.add(
            0,
            &[],
            &get(&b.base, &format!("/v1/shards/{shard}/checkpoint")).body,
        );
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body, format!("{size}\n"), "{}", w.name);
    }
    // Neither a fresh client (nothing saved, the key set's policy) nor
    // one that saved the first node's heads takes the fork.
    let fresh = support::command(&["audit-remote", &b.base])
        .output()
        .unwrap();
    assert!(
        !fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stdout)
    );
    audited(
        &[
            "audit-remote",
            &b.base,
            "--state",
            state_file.to_str().unwrap(),
        ],
        false,
    );
    b.stop();
}

/// A log of `n` entries held in memory, signed by `key`: what a witness is
/// sent, without a node.
struct MemLog {
    key: ed25519_dalek::SigningKey,
    tree: ledger::merkle::MemoryTree<ledger::merkle::Blake3Merkle>,
}

impl MemLog {
    fn checkpoint(&self, size: u64) -> String {
        let head = ledger::TreeHead {
            log_id: ledger::head::log_id(&self.key.verifying_key()),
            size,
            root: self.tree.root(size),
            timestamp_ms: 0,
        };
        ledger::note::sign_checkpoint(&head, &self.key)
    }

    fn proof(&self, old: u64, size: u64) -> Vec<String> {
        if old == 0 || old >= size {
            return Vec::new();
        }
        let p = self.tree.prover().consistency_proof(old, size).unwrap();
        p.iter().map(|d| d.to_hex()).collect()
    }
}

#[test]
fn a_witness_killed_mid_request_never_cosigns_a_size_below_one_it_cosigned() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut log = MemLog {
        key: ed25519_dalek::SigningKey::from_bytes(&[77; 32]),
        tree: ledger::merkle::MemoryTree::new(),
    };
    for i in 0..100_000u64 {
        log.tree.push(format!("entry {i}").as_bytes());
    }
    let log_key = hex::encode(log.key.verifying_key().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let cycles: u64 = std::env::var("COLDTRAIL_WITNESS_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    // The largest size any answer cosigned, over every cycle.
    let acknowledged = AtomicU64::new(0);
    for cycle in 0..cycles {
        let mut witness = Witness::named(dir.path(), std::slice::from_ref(&log_key), NAME);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for client in 0..4u64 {
                let (witness, log, stop, acknowledged) = (&witness, &log, &stop, &acknowledged);
                s.spawn(move || {
                    // The size this client believes the witness holds.
                    let mut held = 0u64;
                    let mut step = 1 + client;
                    while !stop.load(Ordering::Relaxed) {
                        let size = (held + step).min(99_999);
                        step = step % 7 + 1;
                        let Some(r) =
                            witness.try_add(held, &log.proof(held, size), &log.checkpoint(size))
                        else {
                            // The witness is gone (killed under the request).
                            return;
                        };
                        match r.status {
                            200 => {
                                let note = format!("{}{}", log.checkpoint(size), r.body);
                                ledger::note::Note::parse(&note)
                                    .unwrap()
                                    .verify_cosignature(NAME, &witness.key)
                                    .unwrap();
                                acknowledged.fetch_max(size, Ordering::SeqCst);
                                held = size;
                            }
                            409 => held = r.body.trim().parse().unwrap_or(held),
                            other => panic!("cycle {cycle}: {other} {}", r.body),
                        }
                    }
                });
            }
            // Kill it while the requests race: some are mid-flight.
            std::thread::sleep(std::time::Duration::from_millis(150 + 97 * cycle % 200));
            let killed = Command::new("kill")
                .args(["-KILL", &witness.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            stop.store(true, Ordering::Relaxed);
        });
        witness.kill();
        // Started again, it holds at least every size it answered for.
        let again = Witness::named(dir.path(), std::slice::from_ref(&log_key), NAME);
        let r = again.add(0, &[], &log.checkpoint(1));
        let held: u64 = match r.status {
            409 => r.body.trim().parse().unwrap(),
            200 => 1,
            other => panic!("{other} {}", r.body),
        };
        let acked = acknowledged.load(Ordering::SeqCst);
        assert!(
            held >= acked,
            "cycle {cycle}: holds {held}, but cosigned {acked} before the kill"
        );
        assert!(held <= 99_999);
        eprintln!("cycle {cycle}: cosigned up to {acked} before the kill; holds {held} after");
        drop(again);
    }
    assert!(
        acknowledged.load(Ordering::SeqCst) > 0,
        "some requests were cosigned"
    );
}
