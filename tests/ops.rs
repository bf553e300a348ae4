//! What operators see of a running node, end to end over loopback:
//! `/healthz` and `/readyz` while it starts and once it runs, `/metrics`
//! parsed as Prometheus text after real requests and refusals, and the JSON
//! request log (every request, no secrets).

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ingest::wire::encode_json;
use ingest::DeviceClient;
use ledger::reading::Reading;
use support::{get, get_auth, get_with, post, provision, register_device, Server, ORG};

fn now_ms() -> i64 {
    ledger::clock::Clock::now_ms(&ledger::clock::SystemClock)
}

#[test]
fn readyz_is_not_ready_until_the_logs_open() {
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path());
    let mut server = support::Held::start(dir.path());
    let base = server.base.clone();

    // Alive, not ready, and nothing else is served or taken in yet.
    assert_eq!(get(&base, "/healthz").status, 200);
    let r = get(&base, "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    let j = r.json();
    assert_eq!(j["ready"], false);
    assert_eq!(j["checks"][0]["name"], "logs");
    assert_eq!(j["checks"][0]["ok"], false);
    let r = get(&base, "/v1/shards");
    r.assert_problem(503, "unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));

    let first = server.release();
    assert!(first.contains(&base), "{first}");

    let started = Instant::now();
    let ready = loop {
        let r = get(&base, "/readyz");
        if r.status == 200 || started.elapsed() > Duration::from_secs(30) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ready.status, 200, "{}", ready.body);
    let j = ready.json();
    assert_eq!(j["ready"], true);
    let names: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["logs", "relay", "rules", "lineage"]);
    assert_eq!(get(&base, "/healthz").status, 200);
}

/// `/metrics`, parsed by the Prometheus project's own parser
/// (`tests/tools/parse_metrics.py`, Python's prometheus_client).
struct Scrape {
    families: HashMap<String, String>,
    samples: Vec<serde_json::Value>,
}

fn scrape(base: &str) -> Scrape {
    let r = get(base, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let mut child = Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Scrape {
        families: serde_json::from_value(j["families"].clone()).unwrap(),
        samples: j["samples"].as_array().unwrap().clone(),
    }
}

impl Scrape {
    /// The samples of one name whose labels include these.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&serde_json::Value> {
        self.samples
            .iter()
            .filter(|x| x["name"] == name)
            .filter(|x| labels.iter().all(|(k, v)| x["labels"][*k] == *v))
            .collect()
    }

    /// A counter, gauge or histogram count summed over matching series.
    fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .iter()
            .map(|x| x["value"].as_f64().unwrap())
            .sum()
    }

    fn kind(&self, family: &str) -> &str {
        self.families.get(family).map_or("missing", String::as_str)
    }
}

#[test]
fn metrics_and_request_logs_tell_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let log = dir.path().join("server.log");
    let server = Server::start_logged(dir.path(), &log);
    let base = &server.base;

    let key = SigningKey::from_bytes(&[33; 32]);
    register_device(base, &token, "logger-ops", &key);
    let mut dev = DeviceClient::new("logger-ops", key.clone());
    let readings: Vec<Reading> = (0..30)
        .map(|i| Reading::new(now_ms() - 3_600_000 + i * 60_000, 400))
        .collect();
    let body = encode_json(&[dev.sign(readings)]);
    let ok = post(
        base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &body,
        None,
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    // Refusals, each with its stable code.
    post(
        base,
        "/v1/batches",
        Some(&token),
        "application/json",
        b"{not json",
        None,
    )
    .assert_problem(400, "malformed_json");
    post(base, "/v1/batches", None, "application/json", &body, None)
        .assert_problem(401, "unauthenticated");
    post(
        base,
        "/v1/batches",
        Some("ct_not_a_token"),
        "application/json",
        &body,
        None,
    )
    .assert_problem(401, "bad_token");
    get(base, "/v1/no/such/thing").assert_problem(404, "no_such_route");
    // A caller's request id comes back, and is the one logged.
    let r = get_with(
        base,
        "/v1/devices/logger-ops",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Request-Id", "ops-test-42"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("ops-test-42"));
    // One this server made up, when the caller's is unfit for a log line.
    let r = get_with(base, "/healthz", &[("X-Request-Id", "bad id with spaces")]);
    let made_up = r.header("x-request-id").unwrap().to_string();
    assert_eq!(made_up.len(), 16);
    assert_eq!(get_auth(base, "/v1/devices/logger-ops", &token).status, 200);

    let m = scrape(base);
    for (code, n) in [
        ("malformed_json", 1.0),
        ("unauthenticated", 1.0),
        ("bad_token", 1.0),
        ("no_such_route", 1.0),
    ] {
        assert_eq!(
            m.total("coldtrail_http_refusals_total", &[("code", code)]),
            n,
            "{code}"
        );
    }
    assert_eq!(
        m.total(
            "coldtrail_http_requests_total",
            &[
                ("route", "/v1/batches"),
                ("status", "201"),
                ("method", "POST")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.total("coldtrail_http_requests_total", &[("route", "unmatched")]),
        1.0,
        "unknown paths share one label, whatever the path"
    );
    assert!(
        m.total(
            "coldtrail_ingest_ack_duration_seconds_count",
            &[("route", "/v1/batches")]
        ) >= 1.0
    );
    assert!(m.total("coldtrail_http_request_duration_seconds_count", &[]) >= 8.0);
    assert!(m.total("coldtrail_store_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(m.total("coldtrail_store_group_commit_entries_count", &[]) >= 1.0);
    assert!(m.total("coldtrail_store_queue_wait_seconds_count", &[]) >= 1.0);
    for (family, kind) in [
        ("coldtrail_http_requests", "counter"),
        ("coldtrail_http_refusals", "counter"),
        ("coldtrail_http_request_duration_seconds", "histogram"),
        ("coldtrail_ingest_ack_duration_seconds", "histogram"),
        ("coldtrail_store_fsync_duration_seconds", "histogram"),
        ("coldtrail_store_group_commit_entries", "histogram"),
        ("coldtrail_store_queue_wait_seconds", "histogram"),
    ] {
        assert_eq!(m.kind(family), kind, "{family}");
    }
    assert!(
        m.total(
            "coldtrail_http_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ) == m.total("coldtrail_http_request_duration_seconds_count", &[]),
        "the last bucket counts every observation"
    );
    let sizes = support::shard_sizes(base);
    let m = scrape(base);
    assert_eq!(
        m.total("coldtrail_shard_entries", &[]),
        sizes.iter().sum::<u64>() as f64
    );
    assert_eq!(m.matching("coldtrail_store_queue_depth", &[]).len(), 2);
    assert_eq!(m.total("coldtrail_receipts_pending", &[]), 0.0);
    for consumer in ["rules", "lineage"] {
        assert_eq!(
            m.matching("coldtrail_feed_lag_entries", &[("consumer", consumer)])
                .len(),
            1,
            "{consumer}"
        );
    }
    server.stop();

    // One JSON line per request, with what an operator needs; never a
    // token or a key.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(requests.len() >= 10, "{} request lines", requests.len());
    for r in &requests {
        for field in [
            "request_id",
            "method",
            "route",
            "status",
            "latency_ms",
            "org",
        ] {
            assert!(!r[field].is_null(), "{field} missing: {r}");
        }
    }
    let by_id: HashMap<&str, &serde_json::Value> = requests
        .iter()
        .map(|r| (r["request_id"].as_str().unwrap(), *r))
        .collect();
    let tagged = by_id["ops-test-42"];
    assert_eq!(tagged["route"], "/v1/devices/{device}");
    assert_eq!(tagged["org"], ORG);
    assert_eq!(tagged["status"], 200);
    assert_eq!(by_id[made_up.as_str()]["route"], "/healthz");
    assert!(requests
        .iter()
        .any(|r| r["refusal"] == "malformed_json" && r["org"] == ORG && r["status"] == 400));
    for secret in [
        token.clone(),
        token[token.len() - 12..].to_string(),
        hex::encode(key.to_bytes()),
        "ct_not_a_token".to_string(),
    ] {
        assert!(!text.contains(&secret), "the log holds a secret: {secret}");
    }
    // The node's own keys (operator, shards) are key files of a tag line
    // and the hex secret.
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let file = std::fs::read_to_string(&path).unwrap();
            let secret = file.lines().nth(1).unwrap().trim();
            assert!(!text.contains(secret), "the log holds {}", path.display());
        }
    }
}
