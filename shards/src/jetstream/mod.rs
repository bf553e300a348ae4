//! Receipts over NATS JetStream: the transport between nodes (DESIGN.md,
//! "The network"). A sender publishes each run of deliveries to one
//! durable, replicated stream, on the subject of its channel
//! (`{prefix}.receipts.{to}.{from}`); each destination shard reads its
//! subjects through a durable consumer of its own and commits them with
//! [`Shard::accept_batch`], which checks every proof against the sender's
//! key and commits each receipt exactly once, in channel order.
//!
//! JetStream only carries receipts; it decides nothing. A message published
//! twice (a sender that crashed before its acknowledgement) is dropped by
//! the stream's duplicate window, and whatever slips through is a replay
//! `accept_batch` skips. A run that skips ahead waits (it is redelivered);
//! a forged one is refused, named in the log, and never committed.
//!
//! Invariant: a message holds one run of one channel, in channel order,
//! and a channel's messages are published in order (one relay per node).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_nats::{HeaderMap, ServerAddr};
use ed25519_dalek::VerifyingKey;
use futures_util::StreamExt;
use ledger::entry::{Entry, ReceiptDelivery};

use crate::node::{BoxFuture, ReceiptTransport};
use crate::shard::{verify_delivery, ReceiptError, Shard};
use crate::Node;
use crate::ShardError;

/// The header that names a message's last channel sequence.
const LAST_SEQ: &str = "Coldtrail-Last-Seq";

/// The log keys of sending shards, by shard id.
pub type SenderKeys = Arc<dyn Fn(u32) -> Option<VerifyingKey> + Send + Sync>;

/// Where receipts travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// NATS servers, comma-separated (`nats://127.0.0.1:4222,…`).
    pub servers: String,
    /// The stream's name (one per network).
    pub stream: String,
    /// The subjects' first token (one per network).
    pub prefix: String,
    /// Copies the stream keeps: 3 on a three-server cluster, 1 on one server.
    pub replicas: usize,
    /// The network member whose node this is (`None`: a node on its own).
    /// Members share the stream, so a member's channels and inbox
    /// consumers carry its name: no node reads another's receipts.
    pub member: Option<String>,
}

impl JetStreamConfig {
    /// `{prefix}.receipts[.{member}]`: where this node's channels are.
    fn receipts_subjects(&self) -> String {
        match &self.member {
            None => format!("{}.receipts", self.prefix),
            Some(m) => format!("{}.receipts.{m}", self.prefix),
        }
    }

    fn channel_subject(&self, from: u32, to: u32) -> String {
        format!("{}.{to}.{from}", self.receipts_subjects())
    }

    fn inbox_subjects(&self, to: u32) -> String {
        format!("{}.{to}.*", self.receipts_subjects())
    }

    /// The durable consumer of shard `to`'s inbox.
    fn inbox_name(&self, to: u32) -> String {
        match &self.member {
            None => format!("inbox-{to}"),
            Some(m) => format!("inbox-{m}-{to}"),
        }
    }
}

fn nats_error(what: &str, e: impl std::fmt::Display) -> ShardError {
    ShardError::Transport(format!("{what}: {e}"))
}

async fn connect(config: &JetStreamConfig) -> Result<jetstream::Context, ShardError> {
    let servers: Vec<ServerAddr> = config
        .servers
        .split(',')
        .map(|s| s.trim().parse::<ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| nats_error("NATS server address", e))?;
    let client = async_nats::ConnectOptions::new()
        .name("coldtrail")
        // Keep trying while a server restarts; every publish waits for its
        // acknowledgement, so nothing is taken for sent before it is stored.
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .map_err(|e| nats_error("connecting to NATS", e))?;
    Ok(jetstream::new(client))
}

/// The receipts' stream. Receipts stay: a sender learns where each channel
/// stands from the last message on it (`next_expected`).
async fn receipt_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream, ShardError> {
    kept_stream(
        js,
        config,
        config.stream.clone(),
        vec![format!("{}.receipts.>", config.prefix)],
        "the receipts stream",
    )
    .await
}

/// A stream named `name` over `subjects` (`what` names it in errors) that
/// keeps what it carries on file, with the configured replicas, and drops a
/// message published twice within two minutes (a publisher retrying after
/// a lost acknowledgement).
async fn kept_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
    name: String,
    subjects: Vec<String>,
    what: &str,
) -> Result<jetstream::stream::Stream, ShardError> {
    js.get_or_create_stream(stream::Config {
        name,
        subjects,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error(what, e))
}

/// The durable pull consumer `name` of `stream` over `filter`, each message
/// acknowledged explicitly (or redelivered after 30 s), at most
/// `in_flight` unacknowledged at once (`None`: the server's default).
async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    name: String,
    filter: String,
    in_flight: Option<i64>,
    what: &str,
) -> Result<jetstream::consumer::Consumer<consumer::pull::Config>, ShardError> {
    let defaults = consumer::pull::Config::default();
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: filter,
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: in_flight.unwrap_or(defaults.max_ack_pending),
                ack_wait: Duration::from_secs(30),
                ..defaults
            },
        )
        .await
        .map_err(|e| nats_error(what, e))
}

/// A run of deliveries as one message: each entry's bytes after its
/// length (u32, little-endian).
pub fn encode_run(run: &[ReceiptDelivery]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in run {
        let bytes = Entry::ReceiptIn(d.clone()).to_bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// The run a message holds; an error names what is wrong with it.
pub fn decode_run(mut bytes: &[u8]) -> Result<Vec<ReceiptDelivery>, String> {
    let mut run = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("a run ends inside an entry's length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "an entry claims {len} bytes; {} remain",
                rest.len()
            ));
        }
        let (entry, rest) = rest.split_at(len);
        match Entry::from_bytes(entry).map_err(|e| e.to_string())? {
            Entry::ReceiptIn(d) => run.push(d),
            other => return Err(format!("a run holds a {} entry", other.kind_name())),
        }
        bytes = rest;
    }
    Ok(run)
}

/// The sending side: publishes runs and knows where each channel stands.
pub struct JetStreamTransport {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    config: JetStreamConfig,
    /// The sending shards' own keys: where a channel stands is read from
    /// the stream only off a message they signed.
    keys: SenderKeys,
    /// Per channel (from, to), the sequence to publish next, once learnt.
    next: Mutex<HashMap<(u32, u32), u64>>,
}

impl JetStreamTransport {
    pub async fn connect(
        config: JetStreamConfig,
        keys: SenderKeys,
    ) -> Result<JetStreamTransport, ShardError> {
        let js = connect(&config).await?;
        let stream = receipt_stream(&js, &config).await?;
        Ok(JetStreamTransport {
            js,
            stream,
            config,
            keys,
            next: Mutex::new(HashMap::new()),
        })
    }

    async fn publish(&self, run: Vec<ReceiptDelivery>) -> Result<u64, ShardError> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(0);
        };
        let (from, to) = (first.receipt.from_shard, first.receipt.to_shard);
        let (low, high) = (first.receipt.channel_seq, last.receipt.channel_seq);
        let mut headers = HeaderMap::new();
        // The same run published again (after a crash before its
        // acknowledgement) is the same message id: the stream keeps one.
        headers.insert("Nats-Msg-Id", format!("{from}.{to}.{low}-{high}").as_str());
        // For people reading the stream; `published` trusts only the run.
        headers.insert(LAST_SEQ, high.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(
                self.config.channel_subject(from, to),
                headers,
                encode_run(&run).into(),
            )
            .await
            .map_err(|e| nats_error("publishing receipts", e))?;
        ack.await
            .map_err(|e| nats_error("the stream's acknowledgement", e))?;
        self.next
            .lock()
            .expect("channel positions")
            .insert((from, to), high + 1);
        Ok(run.len() as u64)
    }

    /// Where channel (from, to) stands in the stream: one past the last
    /// sequence published on it, or 0. The last message counts only if it
    /// is the sender's own run on that channel (a stranger's message there
    /// could otherwise claim the channel done and hold its receipts back):
    /// else the channel is sent again from 0, which the stream's duplicate
    /// window and the destination's replay check make harmless.
    async fn published(&self, from: u32, to: u32) -> Result<u64, ShardError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
        let message = match self
            .stream
            .get_last_raw_message_by_subject(&self.config.channel_subject(from, to))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == Kind::NoMessageFound => return Ok(0),
            Err(e) => return Err(nats_error("reading the receipts stream", e)),
        };
        let last = decode_run(&message.payload).ok().and_then(|run| {
            let d = run.last()?;
            let key = (self.keys)(from)?;
            let ours = run
                .iter()
                .all(|d| (d.receipt.from_shard, d.receipt.to_shard) == (from, to));
            (ours && verify_delivery(d, &key, false).is_ok()).then_some(d.receipt.channel_seq)
        });
        match last {
            Some(seq) => Ok(seq + 1),
            None => {
                tracing::warn!(
                    from,
                    to,
                    sequence = message.sequence,
                    "the last receipts message on this channel is not the sender's; sending the channel again"
                );
                Ok(0)
            }
        }
    }
}

impl ReceiptTransport for JetStreamTransport {
    fn deliver(&self, run: Vec<ReceiptDelivery>) -> BoxFuture<'_, Result<u64, ShardError>> {
        Box::pin(self.publish(run))
    }

    fn next_expected(&self, from: u32, to: u32) -> BoxFuture<'_, Result<u64, ShardError>> {
        Box::pin(async move {
            if let Some(&n) = self
                .next
                .lock()
                .expect("channel positions")
                .get(&(from, to))
            {
                return Ok(n);
            }
            let n = self.published(from, to).await?;
            self.next
                .lock()
                .expect("channel positions")
                .insert((from, to), n);
            Ok(n)
        })
    }
}

/// The next batch of up to 16 messages of a pull consumer (an inbox's or
/// a mirror's), waiting up to a second for them; a failed fetch (NATS
/// away) is retried until one succeeds.
async fn fetch(consumer: &consumer::Consumer<consumer::pull::Config>) -> consumer::pull::Batch {
    loop {
        match consumer
            .fetch()
            .max_messages(16)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        {
            Ok(m) => return m,
            Err(e) => {
                tracing::debug!(error = %e, "fetching from a JetStream consumer failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// What the inbox did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Committed this many receipts (0: all of them were replays).
    Committed(u64),
    /// It skips ahead of its channel; it comes again later.
    Early,
    /// Forged or malformed: never committed, never asked again.
    Refused(String),
}

/// The receiving side of one shard: reads its channels' messages in
/// stream order and commits them.
pub struct JetStreamInbox {
    shard: Arc<Shard>,
    consumer: jetstream::consumer::Consumer<consumer::pull::Config>,
    keys: SenderKeys,
}

impl JetStreamInbox {
    pub async fn open(
        config: &JetStreamConfig,
        shard: Arc<Shard>,
        keys: SenderKeys,
    ) -> Result<JetStreamInbox, ShardError> {
        let js = connect(config).await?;
        let stream = receipt_stream(&js, config).await?;
        // One message in flight: a channel's runs commit in order.
        let consumer = durable_consumer(
            &stream,
            config.inbox_name(shard.id()),
            config.inbox_subjects(shard.id()),
            Some(1),
            "the inbox consumer",
        )
        .await?;
        Ok(JetStreamInbox {
            shard,
            consumer,
            keys,
        })
    }

    /// Checks and commits one message's run.
    pub async fn take(&self, payload: &[u8]) -> Result<Taken, ShardError> {
        let run = match decode_run(payload) {
            Ok(run) => run,
            Err(why) => return Ok(Taken::Refused(why)),
        };
        let Some(first) = run.first() else {
            return Ok(Taken::Committed(0));
        };
        let key = (self.keys)(first.receipt.from_shard);
        match self.shard.accept_batch(run, key).await {
            Ok(accepted) => Ok(Taken::Committed(accepted.committed.entries.len() as u64)),
            Err(ShardError::Receipt(ReceiptError::Replayed { .. })) => Ok(Taken::Committed(0)),
            Err(ShardError::Receipt(ReceiptError::Skipped { .. })) => Ok(Taken::Early),
            Err(ShardError::Receipt(forged)) => Ok(Taken::Refused(forged.to_string())),
            Err(ShardError::Config(why)) => Ok(Taken::Refused(why)),
            Err(e) => Err(e),
        }
    }

    /// Reads and commits until the task is dropped. A message is
    /// acknowledged once its receipts are committed (or it is refused); a
    /// failure to commit leaves it to come again.
    pub async fn run(self) {
        loop {
            let mut messages = fetch(&self.consumer).await;
            while let Some(Ok(message)) = messages.next().await {
                let ack = match self.take(&message.payload).await {
                    Ok(Taken::Committed(_)) => AckKind::Ack,
                    Ok(Taken::Early) => AckKind::Nak(Some(Duration::from_millis(100))),
                    Ok(Taken::Refused(why)) => {
                        tracing::error!(
                            shard = self.shard.id(),
                            subject = %message.subject,
                            %why,
                            "refused a receipts message"
                        );
                        AckKind::Term
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, shard = self.shard.id(), "could not commit receipts; they come again");
                        AckKind::Nak(Some(Duration::from_millis(500)))
                    }
                };
                if let Err(e) = message.ack_with(ack).await {
                    tracing::debug!(error = %e, "acknowledging a receipts message");
                }
            }
        }
    }
}

/// A node's own shard keys, as the keys of its channels' senders.
pub fn own_keys(node: &Node) -> SenderKeys {
    let keys = node.keys().to_vec();
    Arc::new(move |from| keys.get(from as usize).copied())
}

/// A node's receipts travelling over JetStream: its relay publishing, and
/// an inbox task per shard committing.
pub struct Relaying {
    pub relay: tokio::task::JoinHandle<()>,
    pub inboxes: Vec<tokio::task::JoinHandle<()>>,
}

impl Relaying {
    /// Starts them: the relay runs after every commit and every `retry`.
    pub async fn spawn(
        node: &Arc<Node>,
        config: &JetStreamConfig,
        retry: Duration,
    ) -> Result<Relaying, ShardError> {
        let keys = own_keys(node);
        let transport = JetStreamTransport::connect(config.clone(), Arc::clone(&keys)).await?;
        let mut inboxes = Vec::new();
        for shard in node.shards() {
            let inbox = JetStreamInbox::open(config, Arc::clone(shard), Arc::clone(&keys)).await?;
            inboxes.push(tokio::spawn(inbox.run()));
        }
        Ok(Relaying {
            relay: node.spawn_relay_over(Arc::new(transport), retry),
            inboxes,
        })
    }
}

mod logs;
pub use logs::{Cosign, CosignatureInbox, LogPublisher, MemberFollower, NotKept};
