//! `serve` with receipts over NATS JetStream (`[receipts] nats`): an event
//! about subjects on both shards sends its receipts through the stream,
//! they wait there while the NATS server is down, and arrive once it is
//! back; the logs verify after.

mod support;

use std::time::Duration;

use support::nats::{free_port, nats};
use support::{coldtrail, provision, Server};

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

    support::observe_six(&base, &token, "A");
    support::nats::settle(&base, Duration::from_secs(30));
    assert!(
        !support::log_lines(&log, "receipts travel over NATS JetStream").is_empty(),
        "the server says how receipts travel"
    );

    // NATS down: the next receipts cannot travel, and wait.
    server_nats.kill().unwrap();
    server_nats.wait().unwrap();
    support::observe_six(&base, &token, "B");
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(
        support::nats::pending(&base) > 0.0,
        "with NATS down the receipts wait (they are not relayed in-process)"
    );
    // Back, with its store: they arrive, each once.
    let mut server_nats = nats(port, &store);
    support::nats::settle(&base, Duration::from_secs(60));
    server.stop();
    server_nats.kill().unwrap();
    server_nats.wait().unwrap();

    let verified = coldtrail(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", support::text(&verified));
}
