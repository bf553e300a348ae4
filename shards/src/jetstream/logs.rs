//! Logs over JetStream: each member publishes its shards' committed
//! entries and signed heads ([`LogPublisher`]); every other member follows
//! them into its mirrors ([`MemberFollower`], with `crate::mirror`, which
//! checks everything; JetStream only carries), and vouches for each head it
//! verified with a cosignature the member keeps ([`CosignatureInbox`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use async_nats::HeaderMap;
use futures_util::StreamExt;

use super::{connect, durable_consumer, fetch, kept_stream, nats_error, JetStreamConfig};
use crate::Node;
use crate::ShardError;

impl JetStreamConfig {
    /// The stream that carries every member's logs and key sets.
    fn log_stream_name(&self) -> String {
        format!("{}-LOGS", self.stream)
    }

    /// `{prefix}.{what}.{member}.{shard}` (`what`: `log`, `cosig`), or with
    /// no shard, the filter of all of `member`'s.
    fn member_subject(&self, what: &str, member: &str, shard: Option<u32>) -> String {
        match shard {
            Some(shard) => format!("{}.{what}.{member}.{shard}", self.prefix),
            None => format!("{}.{what}.{member}.*", self.prefix),
        }
    }

    fn keys_subject(&self, member: &str) -> String {
        format!("{}.keys.{member}", self.prefix)
    }

    /// The stream that carries the mirrors' cosignatures.
    fn cosig_stream_name(&self) -> String {
        format!("{}-COSIG", self.stream)
    }
}

/// The cosignatures' stream: a member that was away collects what was
/// vouched for meanwhile.
async fn cosig_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream, ShardError> {
    kept_stream(
        js,
        config,
        config.cosig_stream_name(),
        vec![format!("{}.cosig.>", config.prefix)],
        "the cosignatures stream",
    )
    .await
}

/// How a follower vouches for a head its mirror verified: the cosignature
/// line (C2SP `cosignature/v1`) of the head's checkpoint, under the
/// following node's name and key (`Node::cosign`).
pub type Cosign = Arc<dyn Fn(&ledger::TreeHead) -> String + Send + Sync>;

/// The logs' stream. Logs stay: a member that joins later, or a mirror
/// copied again, reads them from the start; a publisher learns where it
/// stands from its last message.
async fn log_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream, ShardError> {
    kept_stream(
        js,
        config,
        config.log_stream_name(),
        vec![
            format!("{}.log.>", config.prefix),
            format!("{}.keys.>", config.prefix),
        ],
        "the logs stream",
    )
    .await
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
        let subject = self.config.member_subject("log", &self.member, Some(shard));
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
                self.config.member_subject("log", &self.member, Some(shard)),
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
                // Restored from an older copy, or rewritten: say so, and
                // publish what the log is now. Its mirrors judge it (a head
                // that contradicts what they hold is a fork, kept as
                // evidence); hiding it would only delay that.
                tracing::error!(
                    shard = id,
                    published = at,
                    size,
                    "the log is shorter than what was published of it; publishing it as it is"
                );
                at = size;
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
                // The head's root in the id: a rewritten history's run is
                // never dropped as a duplicate of the original's.
                let root = &head.head.root.to_hex()[..16];
                self.send(
                    &run,
                    id,
                    format!("{}.{id}.{at}-{high}.{size}.{root}", self.member),
                )
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
    /// The logs' stream and the consumer's name, to read from the start
    /// again (see [`MemberFollower::run`]).
    stream: jetstream::stream::Stream,
    consumer_name: String,
    mirrors: Vec<Arc<crate::mirror::Mirror>>,
    /// Publishes cosignatures (when `cosign` is set).
    js: jetstream::Context,
    config: JetStreamConfig,
    cosign: Option<Cosign>,
    /// Told when a mirror catches a fork.
    forks: Option<Arc<tokio::sync::Notify>>,
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
        // A mirror copied again (its directory deleted) holds no head while
        // the durable consumer remembers having delivered its runs: read
        // the member's logs from the stream's start again.
        if mirrors.iter().any(|m| m.head().is_none()) {
            if let Ok(info) = stream.consumer_info(&name).await {
                if info.ack_floor.stream_sequence > 0 {
                    tracing::info!(member = %member.name, "a mirror starts over: reading the member's logs from the start");
                    stream
                        .delete_consumer(&name)
                        .await
                        .map_err(|e| nats_error("restarting the mirror consumer", e))?;
                }
            }
        }
        let consumer = mirror_consumer(&stream, &name, config, &member.name).await?;
        cosig_stream(&js, config).await?;
        Ok(MemberFollower {
            member: member.name.clone(),
            consumer,
            stream,
            consumer_name: name,
            mirrors,
            js,
            config: config.clone(),
            cosign: None,
            forks: None,
        })
    }

    /// The mirrors, by shard.
    pub fn mirrors(&self) -> &[Arc<crate::mirror::Mirror>] {
        &self.mirrors
    }

    /// Vouches for each head a mirror verifies, with `cosign`, publishing
    /// the cosignature for the member to keep and serve.
    pub fn vouching(mut self, cosign: Cosign) -> MemberFollower {
        self.cosign = Some(cosign);
        self
    }

    /// Tells `forks` each time a mirror catches a fork.
    pub fn telling_forks(mut self, forks: Arc<tokio::sync::Notify>) -> MemberFollower {
        self.forks = Some(forks);
        self
    }

    /// The shard a log subject names, and its mirror.
    fn mirror_of(&self, subject: &str) -> Option<(u32, &Arc<crate::mirror::Mirror>)> {
        let shard = subject_shard(subject)?;
        Some((shard, self.mirrors.get(shard as usize)?))
    }

    /// Publishes a cosignature of mirror `shard`'s newest verified head,
    /// unless it is the one vouched for last; returns the head vouched for.
    async fn vouch(
        &self,
        shard: u32,
        last: Option<ledger::SignedTreeHead>,
    ) -> Option<ledger::SignedTreeHead> {
        let (Some(cosign), Some(mirror)) = (&self.cosign, self.mirrors.get(shard as usize)) else {
            return last;
        };
        let head = mirror.head()?;
        if Some(head) == last {
            return last;
        }
        let note = format!(
            "{}\n{}",
            ledger::note::checkpoint_text(&head.head),
            cosign(&head.head)
        );
        let mut headers = HeaderMap::new();
        let root = head.head.root.to_hex();
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "cosig.{}.{shard}.{}.{}",
                self.member,
                head.head.size,
                &root[..16]
            )
            .as_str(),
        );
        let published = async {
            self.js
                .publish_with_headers(
                    self.config
                        .member_subject("cosig", &self.member, Some(shard)),
                    headers,
                    note.into_bytes().into(),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match published.await {
            Ok(_) => Some(head),
            Err(e) => {
                // Vouched for at the next head (or this one, next time).
                tracing::debug!(member = %self.member, shard, error = %e, "publishing a cosignature failed");
                last
            }
        }
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
        let (_, mirror) = self
            .mirror_of(subject)
            .ok_or_else(|| refused(format!("member {} has no such shard", self.member)))?;
        let run = crate::mirror::LogRun::from_bytes(payload)
            .map_err(|e| refused(format!("does not decode: {e}")))?;
        mirror.apply(&run).await
    }

    /// Follows until the task is dropped. A message is acknowledged once
    /// kept, refused (named in the log) or past a fork; one that comes
    /// early or could not be written comes again. Runs that keep coming
    /// early for [`EARLY_FOR`] (what a mirror is missing is behind the
    /// consumer: a mirror restored from an older copy) make the follower
    /// read the member's logs from the stream's start again; runs held
    /// already are checked and skipped.
    pub async fn run(mut self) {
        use crate::mirror::{Applied, MirrorError};
        let mut vouched = vec![None; self.mirrors.len()];
        let mut early_since: Option<std::time::Instant> = None;
        loop {
            if early_since.is_some_and(|t| t.elapsed() > EARLY_FOR) {
                match self.read_again().await {
                    Ok(()) => early_since = None,
                    Err(e) => {
                        tracing::warn!(member = %self.member, error = %e, "could not read the member's logs again; retrying")
                    }
                }
            }
            let mut messages = fetch(&self.consumer).await;
            while let Some(Ok(message)) = messages.next().await {
                let ack = match self.take(&message.subject, &message.payload).await {
                    Ok(Applied::Kept(_)) => {
                        early_since = None;
                        if let Some((shard, _)) = self.mirror_of(&message.subject) {
                            let last = vouched[shard as usize];
                            vouched[shard as usize] = self.vouch(shard, last).await;
                        }
                        AckKind::Ack
                    }
                    Ok(Applied::Early { expected }) => {
                        early_since.get_or_insert_with(std::time::Instant::now);
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
                        if let Some(forks) = &self.forks {
                            forks.notify_one();
                        }
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

/// The shard a `{prefix}.{what}.{member}.{shard}` subject names.
fn subject_shard(subject: &str) -> Option<u32> {
    subject.rsplit('.').next()?.parse().ok()
}

/// How long runs may keep coming early before a follower reads the
/// member's logs from the stream's start again.
const EARLY_FOR: Duration = Duration::from_secs(30);

/// The durable consumer `name` of `member`'s log subjects, one run in
/// flight at a time (a log's runs apply in order).
async fn mirror_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
    config: &JetStreamConfig,
    member: &str,
) -> Result<jetstream::consumer::Consumer<consumer::pull::Config>, ShardError> {
    durable_consumer(
        stream,
        name.to_string(),
        config.member_subject("log", member, None),
        Some(1),
        "the mirror consumer",
    )
    .await
}

impl MemberFollower {
    /// Replaces the consumer with a new one from the stream's start.
    async fn read_again(&mut self) -> Result<(), ShardError> {
        tracing::warn!(member = %self.member, "log runs keep coming early: reading the member's logs from the start again");
        self.stream
            .delete_consumer(&self.consumer_name)
            .await
            .map_err(|e| nats_error("restarting the mirror consumer", e))?;
        self.consumer = mirror_consumer(
            &self.stream,
            &self.consumer_name,
            &self.config,
            &self.member,
        )
        .await?;
        Ok(())
    }
}

/// Why a cosignature was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotKept {
    /// Not a cosignature of this log's by a member: never asked again.
    Refused(String),
    /// Could not be kept now (a disk error): it comes again.
    Retry(String),
}

/// The cosignatures the other members' mirrors published for this node's
/// logs, handed to a keeper that checks and keeps them.
pub struct CosignatureInbox {
    consumer: jetstream::consumer::Consumer<consumer::pull::Config>,
}

impl CosignatureInbox {
    /// The durable consumer (`cosig-{member}`) of the cosignatures of
    /// `member`'s logs.
    pub async fn open(
        config: &JetStreamConfig,
        member: &str,
    ) -> Result<CosignatureInbox, ShardError> {
        let js = connect(config).await?;
        let stream = cosig_stream(&js, config).await?;
        let consumer = durable_consumer(
            &stream,
            format!("cosig-{member}"),
            config.member_subject("cosig", member, None),
            None,
            "the cosignatures consumer",
        )
        .await?;
        Ok(CosignatureInbox { consumer })
    }

    /// Hands every message to `keep` (the shard its subject names, the
    /// note) until the task is dropped.
    pub async fn run(self, keep: impl Fn(u32, &str) -> Result<(), NotKept>) {
        loop {
            let mut messages = fetch(&self.consumer).await;
            while let Some(Ok(message)) = messages.next().await {
                let shard = subject_shard(&message.subject);
                let kept = match (shard, std::str::from_utf8(&message.payload)) {
                    (Some(shard), Ok(note)) => keep(shard, note),
                    _ => Err(NotKept::Refused("not a shard's cosignature note".into())),
                };
                let ack = match kept {
                    Ok(()) => AckKind::Ack,
                    Err(NotKept::Refused(why)) => {
                        tracing::warn!(subject = %message.subject, %why, "refused a cosignature");
                        AckKind::Term
                    }
                    Err(NotKept::Retry(why)) => {
                        tracing::warn!(subject = %message.subject, %why, "could not keep a cosignature; it comes again");
                        AckKind::Nak(Some(Duration::from_millis(500)))
                    }
                };
                if let Err(e) = message.ack_with(ack).await {
                    tracing::debug!(error = %e, "acknowledging a cosignature");
                }
            }
        }
    }
}
