//! The MQTT bridge against a real broker (Mosquitto on 127.0.0.1:1883, or
//! `COLDTRAIL_TEST_MQTT=host:port`) and a real node: signed batches and an
//! EPCIS document published at QoS 1 are committed and answered on reply
//! topics; refusals come back as problem documents; the bridge killed with
//! SIGKILL mid-stream and restarted loses nothing and commits nothing twice,
//! including what was published while it was down. The first bridge
//! aborts right after answering a message and before acknowledging it.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ingest::wire::{encode_binary, encode_json};
use ingest::DeviceClient;
use ledger::reading::Reading;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use support::{provision, register_device, Server, ORG};

fn broker() -> (String, u16) {
    let addr = std::env::var("COLDTRAIL_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_string(), port.parse().unwrap())
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

struct Bridge(Child);

impl Bridge {
    /// Starts the bridge and waits until it is subscribed.
    fn start(node: &str, tokens: &std::path::Path, client_id: &str, prefix: &str) -> Bridge {
        Bridge::start_crashing(node, tokens, client_id, prefix, None)
    }

    /// With `crash_at`, the bridge aborts after answering that many
    /// messages, before acknowledging the last.
    fn start_crashing(
        node: &str,
        tokens: &std::path::Path,
        client_id: &str,
        prefix: &str,
        crash_at: Option<usize>,
    ) -> Bridge {
        let (host, port) = broker();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coldtrail"));
        if let Some(n) = crash_at {
            cmd.env("COLDTRAIL_TEST_CRASH_BEFORE_ACK", n.to_string());
        }
        let mut child = cmd
            .args(["mqtt-bridge", "--broker", &format!("mqtt://{host}:{port}")])
            .args(["--node", node, "--tokens", tokens.to_str().unwrap()])
            .args(["--client-id", client_id, "--prefix", prefix])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the bridge starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("the bridge says when it is subscribed")
                .unwrap();
            if line.starts_with("subscribed") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Bridge(child)
    }

    /// Waits for the bridge to die by its own crash.
    fn crashed(mut self) {
        let status = self.0.wait().unwrap();
        assert!(!status.success(), "the bridge was to crash: {status}");
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test's own MQTT client: publishes, and collects every answer by id.
struct Peer {
    client: Client,
    answers: mpsc::Receiver<(String, Value)>,
}

impl Peer {
    fn connect(prefix: &str) -> Peer {
        let (host, port) = broker();
        let mut options = MqttOptions::new(unique("ct-test-peer"), host, port);
        options.set_keep_alive(Duration::from_secs(20));
        let (client, mut connection) = Client::new(options, 256);
        client
            .subscribe(format!("{prefix}/out/#"), QoS::AtLeastOnce)
            .unwrap();
        let (tx, answers) = mpsc::channel();
        let (subscribed_tx, subscribed) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let id = p.topic.rsplit('/').next().unwrap().to_string();
                        let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((id, body)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        subscribed
            .recv_timeout(Duration::from_secs(10))
            .expect("the test client subscribes");
        Peer { client, answers }
    }

    fn publish(&self, topic: String, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .unwrap();
    }

    /// Answers until `n` distinct ids are answered (a redelivered message
    /// may be answered twice).
    fn collect(&self, got: &mut HashMap<String, Vec<Value>>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let (id, body) = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("only {} of {n} messages answered", got.len()));
            got.entry(id).or_default().push(body);
        }
    }
}

fn readings(n: i64, start: i64) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading::new(start + i * 60_000, 300 + (i % 9) as i32))
        .collect()
}

#[test]
fn batches_over_mqtt_are_committed_once_through_a_bridge_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    let key = SigningKey::from_bytes(&[61; 32]);
    let device = "urn:epc:id:giai:0614141.MQTT-1";
    register_device(base, &token, device, &key);
    let tokens = dir.path().join("bridge-tokens");
    std::fs::write(&tokens, format!("# org token\n{ORG} {token}\n")).unwrap();
    let prefix = unique("coldtrail-test");
    let client_id = unique("ct-bridge");
    let topic = |kind: &str, id: &str| format!("{prefix}/in/{ORG}/{kind}/{id}");

    let bridge = Bridge::start_crashing(base, &tokens, &client_id, &prefix, Some(7));
    let peer = Peer::connect(&prefix);
    let mut dev = DeviceClient::new(device, key);
    let start = ledger::clock::Clock::now_ms(&ledger::clock::SystemClock) - 12 * 3_600_000;
    const N: i64 = 40;
    const PER: i64 = 15;
    let batch = |dev: &mut DeviceClient, i: i64| dev.sign(readings(PER, start + i * PER * 60_000));
    for i in 0..N / 2 {
        peer.publish(
            topic("batches", &format!("b-{i}")),
            encode_binary(&[batch(&mut dev, i)]),
        );
    }
    let mut got: HashMap<String, Vec<Value>> = HashMap::new();
    // It dies mid-stream: the 7th message committed and answered but not
    // acknowledged (the broker delivers it again), the rest not yet taken.
    bridge.crashed();
    // Published while no bridge runs: the broker keeps them for its session.
    for i in N / 2..N {
        peer.publish(
            topic("batches", &format!("b-{i}")),
            encode_binary(&[batch(&mut dev, i)]),
        );
    }
    let json_batch = batch(&mut dev, N);
    peer.publish(topic("batches.json", "j-1"), encode_json(&[json_batch]));
    peer.publish(topic("batches", "bad-1"), b"\xff\xff not a batch".to_vec());
    peer.publish(topic("readings", "odd-1"), b"{}".to_vec());
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00.000+01:00",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent",
            "eventID": format!("urn:uuid:{}", "6a1f7c2e-8d0b-4f5e-9c3a-2b7d1e0f4a55"),
            "eventTime": "2026-11-20T08:00:00.000+01:00",
            "eventTimeZoneOffset": "+01:00",
            "action": "OBSERVE",
            "bizStep": "shipping",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2019"],
            "readPoint": {"id": ORG}
        }]}
    });
    peer.publish(topic("capture", "c-1"), doc.to_string().into_bytes());
    let _bridge = Bridge::start(base, &tokens, &client_id, &prefix);
    let total = N as usize + 4;
    peer.collect(&mut got, total);

    let answered_twice = got.values().filter(|a| a.len() > 1).count();
    eprintln!(
        "{} messages, {answered_twice} answered twice (delivered again after the crash)",
        got.len()
    );
    // The crash came after the 7th message's answer and before its
    // acknowledgement: the broker must have delivered it again, and the
    // bridge answered it again (from the node's record, below).
    assert!(
        got["b-6"].len() >= 2,
        "the message the bridge died holding was not delivered again: {:?}",
        got["b-6"]
    );
    // Every batch answered with its entry (a redelivered one answered again,
    // from the node's record: the same entry).
    let mut places = std::collections::HashSet::new();
    for i in 0..N {
        let answers = &got[&format!("b-{i}")];
        let first = &answers[0];
        assert!(first["entries"].is_array(), "b-{i}: {first}");
        for again in &answers[1..] {
            assert_eq!(
                again["entries"], first["entries"],
                "b-{i} answered differently"
            );
        }
        let w = &first["entries"][0];
        assert!(
            places.insert((w["shard"].as_u64(), w["index"].as_u64())),
            "b-{i} shares an entry with another batch"
        );
        support::verify_written(base, w);
    }
    assert!(got["j-1"][0]["entries"].is_array(), "{}", got["j-1"][0]);
    assert!(got["c-1"][0]["capture_id"].is_string(), "{}", got["c-1"][0]);
    assert_eq!(
        got["bad-1"][0]["code"], "invalid_body",
        "{}",
        got["bad-1"][0]
    );
    assert_eq!(got["bad-1"][0]["status"], 400);
    assert_eq!(got["odd-1"][0]["code"], "no_such_route");
    // Nothing lost, nothing twice: the device's sequence is exactly every
    // reading published.
    let dev_state = support::get_auth(
        base,
        &format!("/v1/devices/{}", api::params::percent_encode(device)),
        &token,
    );
    assert_eq!(dev_state.json()["next_seq"], (N + 1) * PER);
    server.stop();
}
