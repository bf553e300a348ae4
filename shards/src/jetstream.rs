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
}

impl JetStreamConfig {
    fn channel_subject(&self, from: u32, to: u32) -> String {
        format!("{}.receipts.{to}.{from}", self.prefix)
    }

    fn inbox_subjects(&self, to: u32) -> String {
        format!("{}.receipts.{to}.*", self.prefix)
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

async fn receipt_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream, ShardError> {
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.receipts.>", config.prefix)],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        // Receipts stay: a sender learns where each channel stands from the
        // last message on it (`next_expected`).
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error("the receipts stream", e))
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
        let name = format!("inbox-{}", shard.id());
        let consumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: config.inbox_subjects(shard.id()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // One message in flight: a channel's runs commit in order.
                    max_ack_pending: 1,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_error("the inbox consumer", e))?;
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

// ---------------------------------------------------------------------------
// Logs over JetStream: each member publishes its shards' committed entries
// and signed heads; every other member follows them into its mirrors
// (`crate::mirror`, which checks everything; JetStream only carries).

impl JetStreamConfig {
    /// The stream that carries every member's logs and key sets.
    fn log_stream_name(&self) -> String {
        format!("{}-LOGS", self.stream)
    }

    fn log_subject(&self, member: &str, shard: u32) -> String {
        format!("{}.log.{member}.{shard}", self.prefix)
    }

    fn member_log_subjects(&self, member: &str) -> String {
        format!("{}.log.{member}.*", self.prefix)
    }

    fn keys_subject(&self, member: &str) -> String {
        format!("{}.keys.{member}", self.prefix)
    }
}

async fn log_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream, ShardError> {
    js.get_or_create_stream(stream::Config {
        name: config.log_stream_name(),
        subjects: vec![
            format!("{}.log.>", config.prefix),
            format!("{}.keys.>", config.prefix),
        ],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        // Logs stay: a member that joins later, or a mirror copied again,
        // reads them from the start; a publisher learns where it stands
        // from its last message.
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error("the logs stream", e))
}

/// Bytes of entries one log message carries at most (NATS refuses
/// messages over its `max_payload`, 1 MiB by default). An entry larger than
/// that alone cannot be published (the node's entries are far smaller).
const RUN_BYTES: usize = 512 << 10;
/// Entries one log message carries at most.
const RUN_ENTRIES: u64 = 4096;

/// A key-set chain as one message.
fn encode_chain(chain: &[ledger::keyset::SignedKeySet]) -> Vec<u8> {
    let mut w = ledger::codec::Writer::new();
    w.seq(chain, |w, s| w.bytes(&s.to_bytes()));
    w.into_bytes()
}

fn decode_chain(bytes: &[u8]) -> Result<Vec<ledger::keyset::SignedKeySet>, String> {
    let mut r = ledger::codec::Reader::new(bytes);
    let chain = r
        .seq("key sets", 1, |r| {
            ledger::keyset::SignedKeySet::from_bytes(r.bytes("key set")?)
        })
        .map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    Ok(chain)
}

/// Where a publisher stands on one shard's subject.
#[derive(Default)]
struct Published {
    /// The next entry to publish.
    next: u64,
    /// The newest head published.
    head: Option<ledger::SignedTreeHead>,
}

/// Publishes a node's logs: every committed entry of each shard, in
/// order, each run under one of the shard's signed heads, and a head alone
/// when the log has a new one and nothing new to carry.
pub struct LogPublisher {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    config: JetStreamConfig,
    member: String,
    node: Arc<Node>,
    positions: Vec<Option<Published>>,
}

impl LogPublisher {
    /// Connects and publishes the node's key sets (how followers learn its
    /// shards' keys under its operator key).
    pub async fn connect(
        config: JetStreamConfig,
        member: &str,
        node: Arc<Node>,
    ) -> Result<LogPublisher, ShardError> {
        let js = connect(&config).await?;
        let stream = log_stream(&js, &config).await?;
        let ack = js
            .publish(
                config.keys_subject(member),
                encode_chain(&node.key_sets()).into(),
            )
            .await
            .map_err(|e| nats_error("publishing the key sets", e))?;
        ack.await
            .map_err(|e| nats_error("the stream's acknowledgement", e))?;
        let positions = node.shards().iter().map(|_| None).collect();
        Ok(LogPublisher {
            js,
            stream,
            config,
            member: member.to_string(),
            node,
            positions,
        })
    }

    /// Where shard `shard` stands in the stream: after the last run on its
    /// subject, if the shard's own key signed that run's head; else from 0
    /// (mirrors keep what they hold once).
    async fn learn(&self, shard: u32) -> Result<Published, ShardError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
        let subject = self.config.log_subject(&self.member, shard);
        let message = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m,
            Err(e) if e.kind() == Kind::NoMessageFound => return Ok(Published::default()),
            Err(e) => return Err(nats_error("reading the logs stream", e)),
        };
        let key = self.node.keys()[shard as usize];
        match crate::mirror::LogRun::from_bytes(&message.payload) {
            Ok(run) if run.head.verify(&key).is_ok() => Ok(Published {
                next: run.high(),
                head: Some(run.head),
            }),
            _ => {
                tracing::warn!(%subject, "the last log message is not this shard's; publishing the log again");
                Ok(Published::default())
            }
        }
    }

    async fn send(
        &self,
        run: &crate::mirror::LogRun,
        shard: u32,
        id: String,
    ) -> Result<(), ShardError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let ack = self
            .js
            .publish_with_headers(
                self.config.log_subject(&self.member, shard),
                headers,
                run.to_bytes().into(),
            )
            .await
            .map_err(|e| nats_error("publishing a log run", e))?;
        ack.await
            .map_err(|e| nats_error("the stream's acknowledgement", e))?;
        Ok(())
    }

    /// Publishes what each shard committed since the last call; returns
    /// the entries published.
    pub async fn publish_once(&mut self) -> Result<u64, ShardError> {
        let mut sent = 0;
        for shard in self.node.shards().to_vec() {
            let id = shard.id();
            if self.positions[id as usize].is_none() {
                let learnt = self.learn(id).await?;
                self.positions[id as usize] = Some(learnt);
            }
            let store = shard.store();
            let len = store.len();
            let mut head = store.latest_head();
            if head.is_none_or(|h| h.head.size < len) {
                head = Some(store.request_head_soon()?.await?);
            }
            let Some(head) = head else { continue };
            let size = head.head.size;
            let mut at = self.positions[id as usize].as_ref().map_or(0, |p| p.next);
            if at > size {
                tracing::error!(
                    shard = id,
                    published = at,
                    size,
                    "the log is shorter than what was published of it"
                );
                continue;
            }
            while at < size {
                let mut entries = Vec::new();
                let mut bytes = 0;
                for e in store.entries(at, size.min(at + RUN_ENTRIES))? {
                    if !entries.is_empty() && bytes + e.len() > RUN_BYTES {
                        break;
                    }
                    bytes += e.len();
                    entries.push(e);
                }
                let high = at + entries.len() as u64;
                let proof = if high == size {
                    Vec::new()
                } else {
                    store.consistency_proof(high, size)?
                };
                let run = crate::mirror::LogRun {
                    low: at,
                    entries,
                    head,
                    proof,
                };
                self.send(&run, id, format!("{}.{id}.{at}-{high}.{size}", self.member))
                    .await?;
                sent += high - at;
                at = high;
                self.positions[id as usize] = Some(Published {
                    next: at,
                    head: Some(head),
                });
            }
            let published = self.positions[id as usize].as_ref().and_then(|p| p.head);
            if published != Some(head) {
                let run = crate::mirror::LogRun {
                    low: size,
                    entries: Vec::new(),
                    head,
                    proof: Vec::new(),
                };
                let ts = head.head.timestamp_ms;
                self.send(&run, id, format!("{}.{id}.head.{size}.{ts}", self.member))
                    .await?;
                self.positions[id as usize] = Some(Published {
                    next: size,
                    head: Some(head),
                });
            }
        }
        Ok(sent)
    }

    /// Publishes every `interval` until the task is dropped; a failure
    /// (NATS away) is retried at the next tick from where it stood.
    pub async fn run(mut self, interval: Duration) {
        loop {
            if let Err(e) = self.publish_once().await {
                tracing::warn!(error = %e, "publishing the logs; retrying");
                // Learn again: a publish may have landed before its ack was lost.
                self.positions.iter_mut().for_each(|p| *p = None);
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Follows one member's logs into this node's mirrors of them.
pub struct MemberFollower {
    member: String,
    consumer: jetstream::consumer::Consumer<consumer::pull::Config>,
    mirrors: Vec<Arc<crate::mirror::Mirror>>,
}

impl MemberFollower {
    /// Opens this node's (`follower`'s) mirrors of `member`'s shards in
    /// `dir` (one directory per shard) on `backend`, with the shard keys
    /// of the member's key sets as published in the stream, checked as a
    /// chain whose newest set the network document's operator key signed.
    pub async fn open(
        config: &JetStreamConfig,
        follower: &str,
        member: &ledger::network::Member,
        dir: &std::path::Path,
        backend: &ledger::store::Backend,
        store_config: ledger::store::StoreConfig,
    ) -> Result<MemberFollower, ShardError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
        let js = connect(config).await?;
        let stream = log_stream(&js, config).await?;
        let message = match stream
            .get_last_raw_message_by_subject(&config.keys_subject(&member.name))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == Kind::NoMessageFound => {
                return Err(ShardError::Transport(format!(
                    "member {} has published no key sets yet",
                    member.name
                )))
            }
            Err(e) => return Err(nats_error("reading the logs stream", e)),
        };
        let refused =
            |why: String| ShardError::Config(format!("member {}'s key sets: {why}", member.name));
        let chain = decode_chain(&message.payload).map_err(refused)?;
        let newest = ledger::keyset::verify_chain(&chain, Some(&member.operator_key))
            .map_err(|e| refused(e.to_string()))?;
        if newest.set.operator_key != member.operator_key {
            return Err(refused(
                "the newest set is not signed by the operator key the network document names"
                    .into(),
            ));
        }
        let mut mirrors = Vec::new();
        for shard in 0..member.shards {
            let key = newest
                .set
                .shard_key(shard)
                .ok_or_else(|| refused(format!("no key for shard {shard}")))?;
            let mirror = crate::mirror::Mirror::open(
                backend,
                &dir.join(format!("shard-{shard:03}")),
                (&member.name, shard),
                key,
                store_config.clone(),
            )
            .map_err(|e| ShardError::Config(e.to_string()))?;
            mirrors.push(Arc::new(mirror));
        }
        let name = format!("mirror-{follower}-{}", member.name);
        let consumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: config.member_log_subjects(&member.name),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // One run at a time: a log's runs apply in order.
                    max_ack_pending: 1,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_error("the mirror consumer", e))?;
        Ok(MemberFollower {
            member: member.name.clone(),
            consumer,
            mirrors,
        })
    }

    /// The mirrors, by shard.
    pub fn mirrors(&self) -> &[Arc<crate::mirror::Mirror>] {
        &self.mirrors
    }

    /// Checks and keeps one message (on `subject`).
    pub async fn take(
        &self,
        subject: &str,
        payload: &[u8],
    ) -> Result<crate::mirror::Applied, crate::mirror::MirrorError> {
        let refused = |why: String| crate::mirror::MirrorError::Refused {
            log: subject.to_string(),
            low: 0,
            high: 0,
            why,
        };
        let mirror = subject
            .rsplit('.')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|s| self.mirrors.get(s))
            .ok_or_else(|| refused(format!("member {} has no such shard", self.member)))?;
        let run = crate::mirror::LogRun::from_bytes(payload)
            .map_err(|e| refused(format!("does not decode: {e}")))?;
        mirror.apply(&run).await
    }

    /// Follows until the task is dropped. A message is acknowledged once
    /// kept, refused (named in the log) or past a fork; one that comes
    /// early or could not be written comes again.
    pub async fn run(self) {
        use crate::mirror::{Applied, MirrorError};
        loop {
            let mut messages = fetch(&self.consumer).await;
            while let Some(Ok(message)) = messages.next().await {
                let ack = match self.take(&message.subject, &message.payload).await {
                    Ok(Applied::Kept(_)) => AckKind::Ack,
                    Ok(Applied::Early { expected }) => {
                        tracing::debug!(subject = %message.subject, expected, "a log run came early");
                        AckKind::Nak(Some(Duration::from_millis(100)))
                    }
                    Ok(Applied::Forked(fork)) => {
                        tracing::error!(
                            subject = %message.subject,
                            held_size = fork.held.head.size,
                            conflicting_size = fork.conflicting.head.size,
                            "FORK: the member signed two histories of this log; both heads are kept and the mirror follows it no further"
                        );
                        AckKind::Ack
                    }
                    Err(e @ (MirrorError::Refused { .. } | MirrorError::Stopped { .. })) => {
                        tracing::error!(error = %e, "refused a log run");
                        AckKind::Term
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not keep a log run; it comes again");
                        AckKind::Nak(Some(Duration::from_millis(500)))
                    }
                };
                if let Err(e) = message.ack_with(ack).await {
                    tracing::debug!(error = %e, "acknowledging a log message");
                }
            }
        }
    }
}
