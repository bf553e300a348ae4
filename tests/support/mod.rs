//! A real `coldtrail serve` on loopback, for end-to-end tests.
#![allow(dead_code)]

pub mod nats;
pub mod witnesses;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ORG: &str = "urn:epc:id:sgln:0614141.00001.0";
pub const OTHER_ORG: &str = "urn:epc:id:sgln:0614141.00002.0";

/// Nodes whose logs are in PostgreSQL, by data directory.
static DATABASES: std::sync::Mutex<std::collections::BTreeMap<PathBuf, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The node in `dir` keeps its logs in the database at `url`.
pub fn use_database(dir: &Path, url: &str) {
    DATABASES
        .lock()
        .unwrap()
        .insert(dir.to_path_buf(), url.to_string());
}

/// The database the node in `dir` keeps its logs in, if any: the one given
/// to [`use_database`], else, with `COLDTRAIL_TEST_STORE=postgres`, a new
/// one of its own (on a throwaway cluster, or on `COLDTRAIL_TEST_PG`): the
/// same tests, the other store.
pub fn store_url(dir: &Path) -> Option<String> {
    let mut urls = DATABASES.lock().unwrap();
    if let Some(u) = urls.get(dir) {
        return Some(u.clone());
    }
    if std::env::var("COLDTRAIL_TEST_STORE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let url = ledger::store::postgres::cluster::fresh_database().expect("a test database");
    urls.insert(dir.to_path_buf(), url.clone());
    Some(url)
}

/// The binary with `args`, told which store the `--data-dir` among them
/// keeps its logs in (see [`store_url`]).
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coldtrail"));
    if let Some(url) = args
        .windows(2)
        .find(|w| w[0] == "--data-dir")
        .and_then(|w| store_url(Path::new(w[1])))
    {
        c.env("COLDTRAIL_STORE_URL", url);
    }
    c.args(args);
    c
}

/// Runs the binary, whatever its exit status.
pub fn run(args: &[&str]) -> std::process::Output {
    command(args).output().expect("the binary runs")
}

/// What a run printed, stdout then stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the binary; it must succeed.
pub fn coldtrail(args: &[&str]) -> std::process::Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "coldtrail {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON log lines in `log` whose message is `message`.
pub fn log_lines(log: &Path, message: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == message)
        .collect()
}

/// Registers organisation `gln` in the node at `dir` (`coldtrail org add`;
/// `extra` arguments after, e.g. `--shards 2` for a new node).
pub fn add_org(dir: &Path, gln: &str, name: &str, role: &str, extra: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "org",
        "add",
        "--data-dir",
        d,
        "--gln",
        gln,
        "--name",
        name,
        "--role",
        role,
    ];
    args.extend_from_slice(extra);
    coldtrail(&args);
}

/// Registers both organisations and issues a partner token for each.
pub fn provision(dir: &Path) -> (String, String) {
    let d = dir.to_str().unwrap();
    add_org(dir, ORG, "Example Carrier", "carrier", &["--shards", "2"]);
    add_org(dir, OTHER_ORG, "Other Packer", "packer", &[]);
    let token = |org: &str| {
        String::from_utf8(coldtrail(&["token", "issue", "--data-dir", d, "--org", org]).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    (token(ORG), token(OTHER_ORG))
}

/// The demo's tiny world loaded into `dir` on two shards (the server stopped after).
pub fn tiny_demo(dir: &Path) {
    coldtrail(&[
        "demo",
        "--data-dir",
        dir.to_str().unwrap(),
        "--scale",
        "tiny",
        "--listen",
        "127.0.0.1:0",
        "--exit-after-load",
        "--shards",
        "2",
    ]);
}

/// A new token for `org` with `role` (partner, investigator, operator).
pub fn token(dir: &Path, org: &str, role: &str) -> String {
    let d = dir.to_str().unwrap();
    let out = coldtrail(&[
        "token",
        "issue",
        "--data-dir",
        d,
        "--org",
        org,
        "--role",
        role,
    ]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// Starts with extra `serve` flags (limits).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        // Request lines stay out of test output; warnings still show.
        let mut cmd = command(&["serve", "--data-dir", dir.to_str().unwrap()]);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        Server::spawn(cmd.stderr(Stdio::inherit()), dir, extra)
    }

    /// Starts with JSON logs at `info` written to `log`.
    pub fn start_logged(dir: &Path, log: &Path) -> Server {
        Server::start_logged_env(dir, log, &[])
    }

    /// [`Server::start_logged`], with extra environment (settings).
    pub fn start_logged_env(dir: &Path, log: &Path, env: &[(&str, &str)]) -> Server {
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = command(&["serve", "--data-dir", dir.to_str().unwrap()]);
        cmd.env("RUST_LOG", "info")
            .env("COLDTRAIL_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stderr(file);
        Server::spawn(&mut cmd, dir, &[])
    }

    fn spawn(cmd: &mut Command, dir: &Path, extra: &[&str]) -> Server {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("an address in the first line")
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            dir: dir.to_path_buf(),
        }
    }

    /// SIGINT, as Ctrl-C: the server finishes and closes its logs cleanly.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "the server exits cleanly on SIGINT: {exit}");
    }

    /// SIGKILL: no chance to flush or sign anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server started on a free port and held before it opens its logs
/// (`COLDTRAIL_TEST_HOLD_OPEN`) until [`Held::release`]: how it answers
/// while it starts.
pub struct Held {
    pub child: Child,
    pub base: String,
    hold: PathBuf,
}

impl Held {
    pub fn start(dir: &Path) -> Held {
        let hold = dir.join("hold-open");
        std::fs::write(&hold, b"").unwrap();
        // A free port is picked, then released for the server to bind: a
        // server another test starts meanwhile may take it first, and ours
        // then exits. Then another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = command(&["serve", "--data-dir", dir.to_str().unwrap()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("COLDTRAIL_TEST_HOLD_OPEN", &hold)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .expect("the server starts");
            let base = format!("http://127.0.0.1:{port}");
            let started = std::time::Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Connected: to ours, unless it is failing to bind.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if child.try_wait().unwrap().is_none() {
                        return Held { child, base, hold };
                    }
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(30),
                    "no answer on {base}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        panic!("the held server did not start on any of five ports");
    }

    /// Lets it open its logs; returns the line it prints once it serves.
    pub fn release(&mut self) -> String {
        std::fs::remove_file(&self.hold).unwrap();
        let mut lines = BufReader::new(self.child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        std::thread::spawn(move || for _ in lines {});
        first
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// A problem+json refusal with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        let j = self.json();
        assert_eq!(j["code"], code, "{}", self.body);
        assert_eq!(j["status"], status);
        assert!(
            j["detail"].as_str().is_some_and(|d| d.len() > 20),
            "a message that says what to fix: {}",
            self.body
        );
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn reply(mut r: ureq::http::Response<ureq::Body>) -> Reply {
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Reply {
        status: r.status().as_u16(),
        content_type,
        headers,
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

pub fn post(
    base: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
    idem: Option<&str>,
) -> Reply {
    try_post(base, path, token, content_type, body, idem).expect("the request completes")
}

/// A POST that may not complete (the server killed under it): `None`.
pub fn try_post(
    base: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
    idem: Option<&str>,
) -> Option<Reply> {
    let idem: Vec<_> = idem.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    try_post_with(base, path, token, content_type, body, &idem)
}

/// A POST with extra headers, which may not complete.
pub fn try_post_with(
    base: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let mut req = agent()
        .post(format!("{base}{path}"))
        .header("Content-Type", content_type);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send(body).ok().map(reply)
}

pub fn post_json(base: &str, path: &str, token: &str, body: &serde_json::Value) -> Reply {
    post(
        base,
        path,
        Some(token),
        "application/json",
        body.to_string().as_bytes(),
        None,
    )
}

/// Runs a second-language check, `tests/tools/TOOL` (Python; `.ci/run`
/// installs `tests/tools/requirements.txt`), with `args`; panics with its
/// output, after `what`, unless it succeeds.
pub fn python_check(tool: &str, args: &[PathBuf], what: &str) {
    let out = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/tools")
                .join(tool),
        )
        .args(args)
        .output()
        .expect("python3 runs (with tests/tools/requirements.txt installed, as .ci/run does)");
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GET with extra headers.
pub fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call().expect("the request completes"))
}

/// GET, HEAD, OPTIONS or DELETE with extra headers, redirects not
/// followed: what the server itself answered.
pub fn ask(method: &str, base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let url = format!("{base}{path}");
    let mut req = match method {
        "GET" => agent.get(url),
        "HEAD" => agent.head(url),
        "OPTIONS" => agent.options(url),
        "DELETE" => agent.delete(url),
        other => panic!("ask: {other} is not a method this helper sends"),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call().expect("the request completes"))
}

pub fn get(base: &str, path: &str) -> Reply {
    reply(
        agent()
            .get(format!("{base}{path}"))
            .call()
            .expect("the request completes"),
    )
}

pub fn get_auth(base: &str, path: &str, token: &str) -> Reply {
    reply(
        agent()
            .get(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("the request completes"),
    )
}

/// Each shard's committed size, as its signed head tells (the test nodes have two shards).
pub fn shard_sizes(base: &str) -> Vec<u64> {
    // Settled sizes: the relay (receipts) and the rules (verdicts) write on
    // their own after a request is answered; compare what they leave.
    let read = || -> Vec<u64> {
        (0..2)
            .map(|s| {
                get(base, &format!("/v1/shards/{s}/head")).json()["size"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let mut last = read();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Registers `device` of the token's organisation under `key`, active since
/// the epoch: the tests send readings of any age (the activation rule has its
/// own test, `a_device_signs_nothing_older_than_its_activation`).
pub fn register_device(base: &str, token: &str, device: &str, key: &ed25519_dalek::SigningKey) {
    let r = post_json(
        base,
        "/v1/devices",
        token,
        &serde_json::json!({"device": device, "public_key": ledger::keys::did_key(&key.verifying_key()), "active_from_ms": 0}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A signed head as the API serves it (`HeadJson`).
pub fn head_of(v: &serde_json::Value) -> ledger::SignedTreeHead {
    ledger::SignedTreeHead {
        head: ledger::TreeHead {
            log_id: ledger::Digest::from_hex(v["log_id"].as_str().unwrap()).unwrap(),
            size: v["size"].as_u64().unwrap(),
            root: ledger::Digest::from_hex(v["root"].as_str().unwrap()).unwrap(),
            timestamp_ms: v["timestamp_ms"].as_i64().unwrap(),
        },
        signature: hex::decode(v["signature"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    }
}

/// The `proof` list of an answer.
pub fn proof_of(v: &serde_json::Value) -> Vec<ledger::Digest> {
    v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| ledger::Digest::from_hex(d.as_str().unwrap()).unwrap())
        .collect()
}

/// Checks a served inclusion proof (`ProofJson`) under the key its head names.
pub fn verify_proof_answer(p: &serde_json::Value) {
    let key = ed25519_dalek::VerifyingKey::from_bytes(
        &hex::decode(p["head"]["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let (shard, index) = (p["shard"].as_u64().unwrap(), p["index"].as_u64().unwrap());
    head_of(&p["head"])
        .verify_inclusion(
            &key,
            index,
            &ledger::Digest::from_hex(p["id"].as_str().unwrap()).unwrap(),
            &proof_of(p),
        )
        .unwrap_or_else(|e| panic!("entry {shard}/{index}: {e}"));
}

/// Fetches a written entry's proof over HTTP (`w` is one of a write
/// answer's `entries`) and checks it with the small verifier.
pub fn verify_written(base: &str, w: &serde_json::Value) {
    let (shard, index) = (w["shard"].as_u64().unwrap(), w["index"].as_u64().unwrap());
    let p = get(base, &format!("/v1/shards/{shard}/entries/{index}/proof"));
    assert_eq!(p.status, 200, "{}", p.body);
    let p = p.json();
    assert_eq!(p["id"], w["id"]);
    verify_proof_answer(&p);
}

/// Removes the recorded 201 answer to Idempotency-Key `key` from the node's
/// journal, keeping the key's intent: the state a crash right after the
/// write committed leaves.
pub fn lose_answer(dir: &Path, key: &str) {
    let journal = dir.join("idempotency.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let answer = |l: &&str| l.contains(&format!("{key}\"")) && l.contains("\"status\":201");
    assert_eq!(text.lines().filter(answer).count(), 1, "{text}");
    let kept: Vec<&str> = text.lines().filter(|l| !answer(l)).collect();
    std::fs::write(&journal, format!("{}\n", kept.join("\n"))).unwrap();
}

/// An EPCIS 2.0 document of `events`, as partners capture them.
pub fn epcis_document(events: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00.000+01:00",
        "epcisBody": {"eventList": events}
    })
    .to_string()
    .into_bytes()
}

/// One observation of six lots (`tag` tells them and the event apart,
/// whose id is `urn:uuid:coldtrail-nats-{tag}`), as an EPCIS document: on
/// two shards, some are homed away from the entry, so it sends receipts.
pub fn six_lots_document(tag: &str) -> Vec<u8> {
    let epcs: Vec<String> = (0..6)
        .map(|i| format!("urn:epc:id:sgtin:0614141.107346.{tag}{i}"))
        .collect();
    let event = serde_json::json!({
        "type": "ObjectEvent",
        "eventID": format!("urn:uuid:coldtrail-nats-{tag}"),
        "eventTime": "2026-11-20T08:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "receiving",
        "epcList": epcs,
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00001.0"}
    });
    epcis_document(vec![event])
}

/// Captures [`six_lots_document`] as the carrier (`token`); it must be taken.
pub fn observe_six(base: &str, token: &str, tag: &str) {
    let r = post(
        base,
        "/capture",
        Some(token),
        "application/ld+json",
        &six_lots_document(tag),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
}
