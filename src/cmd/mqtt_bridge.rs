//! `coldtrail mqtt-bridge`: loggers and gateways that speak MQTT publish
//! signed batches and EPCIS documents to a broker; the bridge takes each
//! message, submits it to the node's HTTP API (the same routes, encodings
//! and checks as any partner's request), publishes the node's answer on a
//! reply topic, and only then acknowledges the message to the broker.
//!
//! Topics (`{org}` is the organisation's GLN URN as the node knows it,
//! `{id}` any message id without `/`, chosen by the publisher):
//!
//! | publish to | payload | node route |
//! |---|---|---|
//! | `coldtrail/in/{org}/batches/{id}` | binary batches | `POST /v1/batches` (binary) |
//! | `coldtrail/in/{org}/batches.json/{id}` | `{"batches": […]}` | `POST /v1/batches` (JSON) |
//! | `coldtrail/in/{org}/capture/{id}` | an EPCIS document | `POST /capture` |
//!
//! The answer (the node's JSON result, or its problem document) is
//! published to `coldtrail/out/{org}/{kind}/{id}`.
//!
//! Delivery: the bridge subscribes with QoS 1 in a persistent session, so
//! the broker keeps messages while it is down, and acknowledges a message
//! only once the node has answered it for good. A message the broker
//! delivers again (after a crash) is sent again with the same
//! `Idempotency-Key` (`mqtt:{id}`): the node answers it from its record and
//! commits nothing twice; sequence numbers and event ids refuse what might
//! slip past. Messages are handled one at a time, in order, so a device's
//! batches reach the node in the order they were published.
//!
//! Who may publish as `{org}` is the broker's business: give each
//! organisation its own broker user and an ACL such as Mosquitto's
//! `pattern write coldtrail/in/%u/#`. The bridge holds one partner token per
//! organisation (`--tokens FILE`: lines of `org token`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, QoS};

/// Tests set it to `n` to make the bridge abort after answering its n-th
/// message and before acknowledging it. Debug builds only: a release binary
/// has no such hook (nor its name).
#[cfg(debug_assertions)]
const CRASH_BEFORE_ACK_ENV: &str = "COLDTRAIL_TEST_CRASH_BEFORE_ACK";

/// Crash injection for tests: the message after whose answer the bridge
/// dies before acknowledging it, the worst moment for exactly-once.
#[cfg(debug_assertions)]
fn crash_before_ack() -> Option<usize> {
    std::env::var(CRASH_BEFORE_ACK_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(debug_assertions))]
fn crash_before_ack() -> Option<usize> {
    None
}

#[derive(clap::Args)]
pub struct Args {
    /// The broker, `mqtt://host:port`.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// The node's base URL.
    #[arg(long)]
    node: String,
    /// Partner tokens by organisation: lines of `org token` (`#` comments).
    #[arg(long)]
    tokens: PathBuf,
    /// The bridge's MQTT client id: its persistent session at the broker
    /// (messages wait there while the bridge is down). One per bridge; by
    /// default one per node and prefix (`coldtrail-` and a hash of them), so bridges of different nodes on one broker never take each
    /// other's session, and a restarted bridge finds its own.
    #[arg(long)]
    client_id: Option<String>,
    /// Topic prefix (`{prefix}/in/…`, `{prefix}/out/…`).
    #[arg(long, default_value = "coldtrail")]
    prefix: String,
}

/// The client id of the bridge for `node` under `prefix`: stable across
/// restarts, different for every node and prefix.
fn default_client_id(node: &str, prefix: &str) -> String {
    let hash = blake3::hash(format!("{}\n{prefix}", node.trim_end_matches('/')).as_bytes());
    // 23 bytes: the longest client id every MQTT 3.1.1 broker must accept.
    format!("coldtrail-{}", &hash.to_hex()[..13])
}

/// One message's route on the node, by the topic's kind.
fn route(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "batches" => Some(("/v1/batches", ingest::wire::BINARY_BATCH)),
        "batches.json" => Some(("/v1/batches", "application/json")),
        "capture" => Some(("/capture", "application/ld+json")),
        _ => None,
    }
}

/// A message's place: `{prefix}/in/{org}/{kind}/{id}`.
#[derive(Debug, PartialEq)]
struct Topic<'a> {
    org: &'a str,
    kind: &'a str,
    id: &'a str,
}

fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Option<Topic<'a>> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/in/")?;
    let mut parts = rest.split('/');
    let (org, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || org.is_empty() || id.is_empty() {
        return None;
    }
    Some(Topic { org, kind, id })
}

fn read_tokens(path: &PathBuf) -> Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut tokens = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((org, token)) = line.split_once(char::is_whitespace) else {
            bail!("{}:{}: expected `org token`", path.display(), n + 1);
        };
        tokens.insert(org.to_string(), token.trim().to_string());
    }
    if tokens.is_empty() {
        bail!("{} names no organisation", path.display());
    }
    Ok(tokens)
}

/// A problem document of the bridge's own (the node never saw the message).
fn problem(status: u16, code: &str, detail: String) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": format!("urn:coldtrail:problem:{code}"),
        "title": code,
        "status": status,
        "code": code,
        "detail": detail,
    }))
    .expect("a problem serialises")
}

/// Submits one message until the node answers it for good (any answer but
/// overload, unavailability or a transport error); returns the answer's body.
fn submit(
    agent: &ureq::Agent,
    node: &str,
    token: &str,
    topic: &Topic<'_>,
    payload: &[u8],
) -> Vec<u8> {
    let Some((path, content_type)) = route(topic.kind) else {
        return problem(
            404,
            "no_such_route",
            format!(
                "unknown message kind `{}`: publish to batches, batches.json or capture",
                topic.kind
            ),
        );
    };
    let url = format!("{node}{path}");
    let mut delay = Duration::from_millis(100);
    loop {
        let answer = agent
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .header("Idempotency-Key", format!("mqtt:{}", topic.id))
            .send(payload);
        match answer {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let body = r.body_mut().read_to_vec().unwrap_or_default();
                if !matches!(status, 429 | 503) {
                    return body;
                }
                tracing::warn!(status, id = topic.id, "the node is busy; retrying");
            }
            Err(e) => tracing::warn!(id = topic.id, "the node did not answer ({e}); retrying"),
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn broker_address(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .with_context(|| format!("{url}: the broker is mqtt://host:port"))?;
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    Ok((host.to_string(), port.parse().context("the broker's port")?))
}

/// Options for a client of `broker` (`mqtt://host:port`): keep-alive and
/// packets large enough for a body of batches.
pub(crate) fn options(client_id: &str, broker: &str) -> Result<MqttOptions> {
    let (host, port) = broker_address(broker)?;
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(20))
        .set_max_packet_size(16 << 20, 16 << 20);
    Ok(options)
}

/// A client and its connection, with TCP_NODELAY: answers are small and
/// waited for, and Nagle's algorithm would hold each one back for a delayed
/// ACK (tens of ms on loopback).
pub(crate) fn connect(options: MqttOptions, cap: usize) -> (Client, Connection) {
    let (client, mut connection) = Client::new(options, cap);
    let mut network = connection.eventloop.network_options();
    network.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(network);
    (client, connection)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let tokens = read_tokens(&args.tokens)?;
    let node = args.node.trim_end_matches('/').to_string();
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| default_client_id(&args.node, &args.prefix));
    tracing::info!(%client_id, "the bridge's session at the broker");
    let mut options = options(&client_id, &args.broker)?;
    // The broker keeps the subscription and queued messages while the
    // bridge is away; every message is acknowledged by hand, after the
    // node's answer.
    options.set_clean_session(false).set_manual_acks(true);
    let (client, mut connection) = connect(options, 64);
    let filter = format!("{}/in/+/+/+", args.prefix);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();

    // The connection is driven on this thread; messages are handled, in
    // order, on a worker, which acks and answers through the client.
    let (tx, rx) = std::sync::mpsc::channel::<Publish>();
    let worker_client = client.clone();
    let prefix = args.prefix.clone();
    let crash_at = crash_before_ack();
    let worker = std::thread::spawn(move || {
        for (n, message) in rx.into_iter().enumerate() {
            let answer = match parse_topic(&prefix, &message.topic) {
                None => {
                    tracing::warn!(topic = %message.topic, "not a coldtrail topic; acknowledged and dropped");
                    None
                }
                Some(topic) => {
                    let body = match tokens.get(topic.org) {
                        Some(token) => submit(&agent, &node, token, &topic, &message.payload),
                        None => problem(
                            403,
                            "forbidden",
                            format!("this bridge holds no token for {}", topic.org),
                        ),
                    };
                    Some((
                        format!("{prefix}/out/{}/{}/{}", topic.org, topic.kind, topic.id),
                        body,
                    ))
                }
            };
            if let Some((reply_topic, body)) = answer {
                if let Err(e) = worker_client.publish(reply_topic, QoS::AtLeastOnce, false, body) {
                    tracing::error!("publishing an answer failed: {e}");
                    return;
                }
            }
            if crash_at == Some(n + 1) {
                std::thread::sleep(Duration::from_millis(50));
                std::process::abort();
            }
            // Only now: the node has the message (or refused it for good).
            if let Err(e) = worker_client.ack(&message) {
                tracing::error!("acknowledging a message failed: {e}");
                return;
            }
        }
    });

    println!(
        "coldtrail mqtt-bridge: {} ({filter}) -> {}",
        args.broker, args.node
    );
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Subscribed again on every connection: a session the broker
                // lost would otherwise stay silent.
                client
                    .subscribe(filter.as_str(), QoS::AtLeastOnce)
                    .context("subscribing")?;
                tracing::info!(broker = %args.broker, "connected");
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                // On stdout, for whoever waits for the bridge to listen.
                println!("subscribed {filter}");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("broker connection: {e}; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if worker.is_finished() {
            break;
        }
    }
    drop(tx);
    let _ = worker.join();
    bail!("the bridge stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_client_ids_are_one_per_node_and_prefix_and_stable() {
        let a = default_client_id("http://10.0.0.1:8080", "coldtrail");
        assert_eq!(a, default_client_id("http://10.0.0.1:8080/", "coldtrail"));
        assert!(a.starts_with("coldtrail-") && a.len() <= 23, "{a}");
        assert_ne!(a, default_client_id("http://10.0.0.2:8080", "coldtrail"));
        assert_ne!(a, default_client_id("http://10.0.0.1:8080", "other"));
    }

    #[test]
    fn topics_name_org_kind_and_id() {
        let t = parse_topic(
            "coldtrail",
            "coldtrail/in/urn:epc:id:sgln:0614141.00001.0/batches/m-1",
        );
        assert_eq!(
            t,
            Some(Topic {
                org: "urn:epc:id:sgln:0614141.00001.0",
                kind: "batches",
                id: "m-1"
            })
        );
        for bad in [
            "coldtrail/out/o/batches/1",
            "coldtrail/in/o/batches",
            "coldtrail/in/o/batches/1/2",
            "coldtrail/in//batches/1",
            "other/in/o/batches/1",
        ] {
            assert_eq!(parse_topic("coldtrail", bad), None, "{bad}");
        }
        assert_eq!(route("batches.json").unwrap().1, "application/json");
        assert_eq!(route("readings"), None);
    }

    #[test]
    fn brokers_are_mqtt_urls() {
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            broker_address("mqtt://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert!(broker_address("http://x:1").is_err());
    }
}
