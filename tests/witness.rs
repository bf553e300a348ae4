//! `coldtrail witness` over real HTTP: a node's checkpoints, sent with the
//! node's own consistency proofs, are cosigned while the log only grows;
//! a stale old size is answered 409 with the size the witness holds, across a
//! kill -9 of the witness; an unknown log is 404. The cosignatures check in
//! Rust and in a Python checker written from the C2SP texts.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use support::{get, post, post_json, provision, Server};

const NAME: &str = "witness.example/w1";

/// A running witness: its process, base URL and public key.
struct Witness {
    child: Child,
    base: String,
    key: ed25519_dalek::VerifyingKey,
}

impl Witness {
    fn start(dir: &std::path::Path, logs: &[String]) -> Witness {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coldtrail"));
        cmd.args(["witness", "--data-dir", dir.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--name", NAME]);
        for l in logs {
            cmd.args(["--log", l]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut base, mut key) = (None, None);
        while base.is_none() {
            let line = lines
                .next()
                .expect("the witness prints where it listens")
                .unwrap();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["public", "key", k] => key = Some(k.to_string()),
                ["listening", url] => {
                    base = Some(url.trim_end_matches("/add-checkpoint").to_string())
                }
                _ => {}
            }
        }
        let key: [u8; 32] = hex::decode(key.unwrap()).unwrap().try_into().unwrap();
        Witness {
            child,
            base: base.unwrap(),
            key: ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap(),
        }
    }

    fn add(&self, old: u64, proof: &[String], checkpoint: &str) -> support::Reply {
        let lines: String = proof
            .iter()
            .map(|h| {
                format!(
                    "{}\n",
                    base64::engine::general_purpose::STANDARD.encode(hex::decode(h).unwrap())
                )
            })
            .collect();
        let body = format!("old {old}\n{lines}\n{checkpoint}");
        post(
            &self.base,
            "/add-checkpoint",
            None,
            "text/plain",
            body.as_bytes(),
            None,
        )
    }

    /// A `serve` config file in `dir` that names this witness, asked every
    /// 50 ms.
    fn config(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("witnessed.toml");
        std::fs::write(
            &path,
            format!(
                "[witnesses]\ninterval_ms = 50\n[[witnesses.peers]]\nurl = \"{}\"\nname = \"{NAME}\"\nkey = \"{}\"\n",
                self.base,
                hex::encode(self.key.as_bytes())
            ),
        )
        .unwrap();
        path
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The key document's shard keys, hex (the key set's, as a witness operator
/// would copy them).
fn shard_keys(base: &str) -> Vec<String> {
    let doc = get(base, "/.well-known/coldtrail/keys").json();
    let newest = doc["key_sets"].as_array().unwrap().last().unwrap().clone();
    newest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["public_key"].as_str().unwrap().to_string())
        .collect()
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
    let mut witness = Witness::start(witness_dir.path(), &[keys[shard].clone()]);

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
    let witness2 = Witness::start(witness_dir.path(), &[keys[shard].clone()]);
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
    let mut witness = Witness::start(witness_dir.path(), &keys);
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
    let trusted = format!("{NAME}={}", hex::encode(witness.key.as_bytes()));
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
    let witness = Witness::start(witness_dir.path(), &keys);
    let config_dir = tempfile::tempdir().unwrap();
    let config = witness.config(config_dir.path());
    let serve = || Server::start_with(node_dir.path(), &["--config", config.to_str().unwrap()]);

    // The log grows and the witness cosigns its newest size.
    let server = serve();
    for n in 41..45 {
        grow(&server.base, &token, n);
    }
    let size = get(&server.base, &format!("/v1/shards/{shard}/head")).json()["size"]
        .as_u64()
        .unwrap();
    wait_for(|| {
        let r = get(
            &server.base,
            &format!("/v1/shards/{shard}/checkpoint?cosigned=1"),
        );
        (r.body.lines().nth(1) == Some(size.to_string().as_str())).then_some(())
    });
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
    let trusted = format!("{NAME}={}", hex::encode(witness.key.as_bytes()));
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
