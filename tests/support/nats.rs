//! A NATS JetStream server of the test's own, from the machine's
//! `nats-server` (`.ci/run` installs it), on a free loopback port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (free when asked; the caller binds it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One JetStream server on `port`, its store in `dir`, once it listens.
pub fn nats(port: u16, dir: &std::path::Path) -> Child {
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

/// `coldtrail_receipts_pending` of the node at `base`.
pub fn pending(base: &str) -> f64 {
    let r = super::get(base, "/metrics");
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("coldtrail_receipts_pending "))
        .expect("the gauge is exported")
        .trim()
        .parse()
        .unwrap()
}

/// Waits until the node at `base` has no receipt pending.
pub fn settle(base: &str, within: Duration) {
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
