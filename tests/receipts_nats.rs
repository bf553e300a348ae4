//! `serve` with receipts over NATS JetStream (`[receipts] nats`): an event
//! about subjects on both shards sends its receipts through the stream,
//! they wait there while the NATS server is down, and arrive once it is
//! back; the logs verify after.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{coldtrail, get, post, provision, Server};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One JetStream server on `port`, its store in `dir`.
fn nats(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed (.ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn pending(base: &str) -> f64 {
    let r = get(base, "/metrics");
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("coldtrail_receipts_pending "))
        .expect("the gauge is exported")
        .trim()
        .parse()
        .unwrap()
}

fn settle(base: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while pending(base) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} receipts pending",
            pending(base)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One observation of six lots: on two shards, some are homed away from
/// the entry, so it sends receipts.
fn capture_six(base: &str, token: &str, tag: &str) {
    let epcs: Vec<String> = (0..6)
        .map(|i| format!("urn:epc:id:sgtin:0614141.107346.{tag}{i}"))
        .collect();
    let event = json!({
        "type": "ObjectEvent",
        "eventID": format!("urn:uuid:coldtrail-nats-{tag}"),
        "eventTime": "2026-11-20T08:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "receiving",
        "epcList": epcs,
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00001.0"}
    });
    let r = post(
        base,
        "/capture",
        Some(token),
        "application/ld+json",
        &support::epcis_document(vec![event]),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn receipts_travel_over_jetstream_and_wait_there_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let (token, _) = provision(&data);
    let port = free_port();
    let store = dir.path().join("jetstream");
    let mut server_nats = nats(port, &store);
    let log = dir.path().join("serve.log");
    let url = format!("nats://127.0.0.1:{port}");
    let server = Server::start_logged_env(&data, &log, &[("COLDTRAIL_RECEIPTS_NATS", &url)]);
    let base = server.base.clone();

    capture_six(&base, &token, "A");
    settle(&base, Duration::from_secs(30));
    assert!(
        !support::log_lines(&log, "receipts travel over NATS JetStream").is_empty(),
        "the server says how receipts travel"
    );

    // NATS down: the next receipts cannot travel, and wait.
    server_nats.kill().unwrap();
    server_nats.wait().unwrap();
    capture_six(&base, &token, "B");
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(
        pending(&base) > 0.0,
        "with NATS down the receipts wait (they are not relayed in-process)"
    );
    // Back, with its store: they arrive, each once.
    let mut server_nats = nats(port, &store);
    settle(&base, Duration::from_secs(60));
    server.stop();
    server_nats.kill().unwrap();
    server_nats.wait().unwrap();

    let verified = coldtrail(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", support::text(&verified));
}
