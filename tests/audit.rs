//! Proofs a stranger can check, end to end over loopback: every kind of entry
//! goes content -> id -> inclusion proof -> signed head -> key document; old
//! heads are served and proofs against them check; `audit-remote` passes on
//! the demo world and fails, naming what, when a proxy alters what the node
//! serves.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use base64::Engine;
use ed25519_dalek::VerifyingKey;
use ledger::entry::{entry_id, Entry};
use ledger::keyset::{verify_chain, SignedKeySet};
use ledger::{Digest, SignedTreeHead};
use serde_json::Value;
use support::{get, get_auth, head_of, post_json, proof_of, run, text, Server};

/// The auditor's carrier: an organisation of its own beside the demo world's.
const AUDITORS_CARRIER: &str = "urn:epc:id:sgln:0614141.00098.0";

/// The tiny demo world on two shards, plus an organisation with a token
/// (to make the logs grow while the server runs).
fn world(dir: &Path) -> String {
    support::tiny_demo(dir);
    support::add_org(dir, AUDITORS_CARRIER, "Auditor's Carrier", "carrier", &[]);
    support::token(dir, AUDITORS_CARRIER, "partner")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The node's shard keys, from the key document, checked as a chain.
fn shard_keys(base: &str) -> Vec<VerifyingKey> {
    let doc = get(base, "/.well-known/coldtrail/keys").json();
    let chain: Vec<SignedKeySet> = doc["key_sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SignedKeySet::from_bytes(&b64(s["signed"].as_str().unwrap())).unwrap())
        .collect();
    let pin = hex32(doc["operator_key"].as_str().unwrap());
    let newest = verify_chain(&chain, Some(&pin)).unwrap();
    newest
        .set
        .shards
        .iter()
        .map(|k| VerifyingKey::from_bytes(&k.public_key).unwrap())
        .collect()
}

#[test]
fn every_kind_of_entry_goes_from_content_to_id_to_proof_to_a_signed_head() {
    let dir = tempfile::tempdir().unwrap();
    let token = world(dir.path());
    // Content is read with an investigator's token; ids, proofs, heads and
    // the key document with none.
    let investigator = support::token(dir.path(), support::OTHER_ORG, "investigator");
    // A partner in none of the demo world's chains.
    let unrelated = "urn:epc:id:sgln:0614141.00097.0";
    support::add_org(dir.path(), unrelated, "Unrelated Carrier", "carrier", &[]);
    let unrelated = support::token(dir.path(), unrelated, "partner");
    let server = Server::start(dir.path());
    let base = &server.base;
    let keys = shard_keys(base);
    assert_eq!(keys.len(), 2);

    let mut kinds = std::collections::BTreeSet::new();
    for (shard, key) in keys.iter().enumerate() {
        let head = head_of(&get(base, &format!("/v1/shards/{shard}/head")).json());
        head.verify(key).unwrap();
        for index in 0..head.head.size {
            let path = format!("/v1/shards/{shard}/entries/{index}");
            let e = get_auth(base, &path, &investigator);
            assert_eq!(e.status, 200, "{}", e.body);
            let e = e.json();
            let kind = e["kind"].as_str().unwrap().to_string();
            if !kinds.insert(kind.clone()) {
                continue; // one of each kind is walked in full
            }
            // A stranger is told to bring a token; a partner the entry does
            // not concern is refused.
            if kind != "checkpoint" {
                for p in [path.clone(), format!("{path}/raw")] {
                    let anonymous = get(base, &p);
                    assert_eq!(anonymous.status, 401, "{kind} {p}: {}", anonymous.body);
                }
                let stranger = get_auth(base, &path, &unrelated);
                let directory = kind == "identity" && e["entry"]["change"] == "org_registered";
                let want = if directory { 200 } else { 403 };
                assert_eq!(stranger.status, want, "{kind} {path}: {}", stranger.body);
            }
            let bytes = b64(e["bytes"].as_str().unwrap());
            let entry = Entry::from_bytes(&bytes).unwrap();
            assert_eq!(entry.kind_name(), kind);
            assert_eq!(e["entry"]["kind"], kind.as_str(), "the decoded view");
            let id = entry_id(&bytes);
            assert_eq!(e["id"], id.to_hex());
            let by_id = get_auth(base, &format!("/v1/entries/{id}"), &investigator).json();
            assert_eq!(by_id["bytes"], e["bytes"]);
            let p = get(
                base,
                &format!(
                    "/v1/shards/{shard}/entries/{index}/proof?size={}",
                    head.head.size
                ),
            )
            .json();
            let under = head_of(&p["head"]);
            assert_eq!(
                (under.head.size, under.head.root),
                (head.head.size, head.head.root)
            );
            head.verify_inclusion(key, index, &id, &proof_of(&p))
                .unwrap_or_else(|err| panic!("{kind} entry {shard}/{index}: {err}"));
        }
    }
    for kind in [
        "readings",
        "custody",
        "identity",
        "receipt-out",
        "receipt-in",
        "verdict",
        "recall",
    ] {
        assert!(
            kinds.contains(kind),
            "the demo world has a {kind} entry: {kinds:?}"
        );
    }

    // The logs grow; a proof against the old head still checks, the old head
    // is served as it was signed, and the new one extends it.
    let before: Vec<SignedTreeHead> = (0..keys.len())
        .map(|s| head_of(&get(base, &format!("/v1/shards/{s}/head")).json()))
        .collect();
    let shard = grow(base, &token) as usize;
    let old = before[shard];
    let served_old = get(base, &format!("/v1/shards/{shard}/heads/{}", old.head.size));
    assert_eq!(served_old.status, 200, "{}", served_old.body);
    served_old_head_matches(&head_of(&served_old.json()), &old, &keys[shard]);
    let new = head_of(&get(base, &format!("/v1/shards/{shard}/head")).json());
    assert!(new.head.size > old.head.size);
    let c = get(
        base,
        &format!(
            "/v1/shards/{shard}/consistency?first={}&second={}",
            old.head.size, new.head.size
        ),
    )
    .json();
    old.verify_consistency(&new, &keys[shard], &proof_of(&c))
        .unwrap();
    for (signed, ours) in [(&c["first_head"], &old), (&c["second_head"], &new)] {
        let signed = head_of(signed);
        signed.verify(&keys[shard]).unwrap();
        assert_eq!(
            signed.head.root, ours.head.root,
            "the consistency answer's heads are signed"
        );
    }
    let last_old = old.head.size - 1;
    let p = get(
        base,
        &format!(
            "/v1/shards/{shard}/entries/{last_old}/proof?size={}",
            old.head.size
        ),
    )
    .json();
    let id = Digest::from_hex(p["id"].as_str().unwrap()).unwrap();
    old.verify_inclusion(&keys[shard], last_old, &id, &proof_of(&p))
        .unwrap();
    // A size no head was signed at is refused, naming the next signed size.
    let r = get(
        base,
        &format!("/v1/shards/{shard}/heads/{}", new.head.size + 1000),
    );
    r.assert_problem(404, "no_signed_head");

    // Every signed size can be listed (not only found one at a time from a
    // refusal): in order, old and new among them, each head served and
    // signed; a listing in pages of one gives the same sizes.
    let listed = get(base, &format!("/v1/shards/{shard}/heads")).json();
    let sizes: Vec<u64> = listed["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{listed}");
    assert!(
        sizes.contains(&old.head.size) && sizes.contains(&new.head.size),
        "{listed}"
    );
    assert_eq!(listed["next"], serde_json::Value::Null);
    for size in &sizes {
        let h = get(base, &format!("/v1/shards/{shard}/heads/{size}"));
        assert_eq!(h.status, 200, "{size}: {}", h.body);
        head_of(&h.json()).verify(&keys[shard]).unwrap();
    }
    let (mut paged, mut from) = (Vec::new(), Some(0));
    while let Some(f) = from {
        let page = get(base, &format!("/v1/shards/{shard}/heads?from={f}&limit=1")).json();
        paged.extend(
            page["sizes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
        from = page["next"].as_u64();
    }
    assert_eq!(paged, sizes);
    get(base, &format!("/v1/shards/{shard}/heads?limit=0"))
        .assert_problem(400, "invalid_parameter");

    // The same heads as C2SP checkpoints (VERIFYING.md §6): the log key's
    // signed note of origin, size and root, checked here and by a checker
    // written in Python from the specifications alone.
    let dir = tempfile::tempdir().unwrap();
    for (size, head) in [(Some(old.head.size), &old), (None, &new)] {
        let query = size.map_or(String::new(), |s| format!("?size={s}"));
        let r = get(base, &format!("/v1/shards/{shard}/checkpoint{query}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.content_type.starts_with("text/plain"),
            "{}",
            r.content_type
        );
        let note = ledger::note::Note::parse(&r.body).unwrap();
        let origin = ledger::note::origin(&head.head.log_id);
        note.verify_signature(&origin, &keys[shard]).unwrap();
        let checkpoint = ledger::note::Checkpoint::parse(&note.text).unwrap();
        let served = match size {
            Some(_) => *head,
            // The newest: whatever the log has signed since is what the
            // checkpoint names.
            None => head_of(&get(base, &format!("/v1/shards/{shard}/head")).json()),
        };
        assert!(checkpoint.is_of(&served.head), "{}", r.body);
        let file = dir.path().join(format!("checkpoint-{}", served.head.size));
        std::fs::write(&file, &r.body).unwrap();
        support::python_check(
            "check_checkpoint.py",
            &[
                file,
                hex::encode(keys[shard].as_bytes()).into(),
                served.head.size.to_string().into(),
                served.head.root.to_hex().into(),
            ],
            "the checkpoint does not check in Python",
        );
    }
    get(
        base,
        &format!(
            "/v1/shards/{shard}/checkpoint?size={}",
            new.head.size + 1000
        ),
    )
    .assert_problem(404, "no_signed_head");
}

fn served_old_head_matches(served: &SignedTreeHead, old: &SignedTreeHead, key: &VerifyingKey) {
    served.verify(key).unwrap();
    assert_eq!(served.head.root, old.head.root);
    assert_eq!(served.head.size, old.head.size);
}

/// Registers a device (an identity entry on the organisation's home shard);
/// returns that shard.
fn grow(base: &str, token: &str) -> u64 {
    let key = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let r = post_json(
        base,
        "/v1/devices",
        token,
        &serde_json::json!({"device": "logger-audit", "public_key": hex::encode(key.verifying_key().as_bytes())}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["entries"][0]["shard"].as_u64().unwrap()
}

/// Rewrites what the node serves: forwards each GET and passes the answer
/// body through `alter` (given the path and query).
struct Proxy {
    base: String,
}

type Alter = dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync;

impl Proxy {
    fn start(upstream: &str, alter: Arc<Alter>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (upstream, alter) = (upstream.clone(), Arc::clone(&alter));
                std::thread::spawn(move || serve_one(conn, &upstream, &*alter));
            }
        });
        Proxy { base }
    }
}

fn serve_one(conn: TcpStream, upstream: &str, alter: &Alter) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // The caller's token goes on upstream: the node decides what it may read.
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(format!("{upstream}{path}"));
    if let Some(a) = &authorization {
        request = request.header("Authorization", a);
    }
    let mut resp = request.call().unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    let body = alter(&path, body);
    let mut out = conn;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(&body);
}

/// `body` as JSON, changed by `f`.
fn edit_json(body: Vec<u8>, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn flip_hex(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    c[0] = if c[0] == '0' { '1' } else { '0' };
    c.into_iter().collect()
}

fn audit(base: &str, extra: &[&str]) -> Output {
    let mut args = vec!["audit-remote", base];
    args.extend(extra);
    run(&args)
}

#[test]
fn audit_remote_passes_on_the_demo_and_names_each_alteration() {
    let dir = tempfile::tempdir().unwrap();
    let token = world(dir.path());
    let investigator = support::token(dir.path(), support::OTHER_ORG, "investigator");
    let server = Server::start(dir.path());
    let state = dir.path().join("audit-state.json");
    let state_arg = state.to_str().unwrap();

    // A stranger's audit: every id under its signed head, no content.
    let stranger = audit(&server.base, &["--all"]);
    assert!(stranger.status.success(), "{}", text(&stranger));
    assert!(
        text(&stranger).contains(" 0 entries (content -> id -> proof -> head)"),
        "{}",
        text(&stranger)
    );
    let ok = audit(
        &server.base,
        &["--state", state_arg, "--all", "--token", &investigator],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("audit passed"), "{}", text(&ok));
    assert!(text(&ok).contains(" 0 entries by id only"), "{}", text(&ok));
    let pinned: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let operator = pinned["operator_key"].as_str().unwrap().to_string();

    // The node grows; the saved heads must be extended, not replaced.
    grow(&server.base, &token);
    let ok = audit(
        &server.base,
        &[
            "--state",
            state_arg,
            "--pin",
            &operator,
            "--token",
            &investigator,
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));

    // Each alteration, seen through a proxy, fails the audit and is named.
    // The state file is copied so every case starts from the same saved heads.
    let cases: Vec<(&str, Arc<Alter>, &str)> = vec![
        (
            "an entry's bytes",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path == "/v1/shards/0/entries/3" {
                    edit_json(body, |v| {
                        let mut b = b64(v["bytes"].as_str().unwrap());
                        let last = b.len() - 1;
                        b[last] ^= 1;
                        v["bytes"] = base64::engine::general_purpose::STANDARD.encode(b).into();
                    })
                } else {
                    body
                }
            }),
            "shard 0 entry 3: served id",
        ),
        (
            "a proof",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path.starts_with("/v1/shards/1/entries/2/proof") {
                    edit_json(body, |v| {
                        let first = v["proof"][0].as_str().unwrap().to_string();
                        v["proof"][0] = flip_hex(&first).into();
                    })
                } else {
                    body
                }
            }),
            "shard 1 entry 2: inclusion under the head",
        ),
        (
            "a head",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path == "/v1/shards/1/head" {
                    edit_json(body, |v| {
                        let root = v["root"].as_str().unwrap().to_string();
                        v["root"] = flip_hex(&root).into();
                    })
                } else {
                    body
                }
            }),
            "shard 1 head: the served head",
        ),
        (
            "a saved head rewritten",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path.starts_with("/v1/shards/0/heads/") {
                    edit_json(body, |v| {
                        let sig = v["signature"].as_str().unwrap().to_string();
                        v["signature"] = flip_hex(&sig).into();
                    })
                } else {
                    body
                }
            }),
            "shard 0 consistency with the saved head",
        ),
        (
            "a shard key in the key document",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path == "/.well-known/coldtrail/keys" {
                    edit_json(body, |v| {
                        let set = &mut v["key_sets"][0];
                        let mut signed =
                            SignedKeySet::from_bytes(&b64(set["signed"].as_str().unwrap()))
                                .unwrap();
                        let forged = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
                        signed.set.shards[1].public_key = forged.verifying_key().to_bytes();
                        set["signed"] = base64::engine::general_purpose::STANDARD
                            .encode(signed.to_bytes())
                            .into();
                        set["shards"][1]["public_key"] =
                            hex::encode(signed.set.shards[1].public_key).into();
                        set["shards"][1]["log_id"] =
                            signed.set.shards[1].log_id().unwrap().to_hex().into();
                    })
                } else {
                    body
                }
            }),
            "key document: key set 0: the operator signature does not verify",
        ),
        (
            "the key document's fields against its bytes",
            Arc::new(|path: &str, body: Vec<u8>| {
                if path == "/.well-known/coldtrail/keys" {
                    edit_json(body, |v| {
                        let k = v["key_sets"][0]["shards"][0]["public_key"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        v["key_sets"][0]["shards"][0]["public_key"] = flip_hex(&k).into();
                    })
                } else {
                    body
                }
            }),
            "fields disagree with the signed bytes",
        ),
    ];
    for (what, alter, expected) in cases {
        let proxy = Proxy::start(&server.base, alter);
        let copy = dir.path().join("state-copy.json");
        std::fs::copy(&state, &copy).unwrap();
        let out = audit(
            &proxy.base,
            &[
                "--state",
                copy.to_str().unwrap(),
                "--all",
                "--token",
                &investigator,
            ],
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what} went unnoticed: {t}");
        assert!(
            t.contains(expected),
            "{what}: expected {expected:?} in: {t}"
        );
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(&state).unwrap(),
            "{what}: a failed audit leaves the state as it was"
        );
    }

    // A node that answers under another operator key is refused against the pin.
    let other = tempfile::tempdir().unwrap();
    world(other.path());
    let stranger = Server::start(other.path());
    let out = audit(&stranger.base, &["--pin", &operator]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("signs no key set"), "{}", text(&out));
}
