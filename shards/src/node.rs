//! A node: its shards, the relay that carries receipts between them, and the
//! history of a subject across shards.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use ledger::entry::{Encoded, Entry, ReceiptDelivery};
use ledger::store::{Backend, StoreConfig};
use ledger::{Digest, SignedTreeHead};
use tokio::sync::Notify;

use crate::shard::{Committed, ReceiptError, Shard};
use crate::{Router, ShardError};

const NODE_FILE: &str = "NODE";
/// Receipts sent to one destination in one run (one proof head, one commit there).
const RELAY_RUN: u64 = 512;
const NODE_TAG: &str = "coldtrail-node v1";

/// How to open a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Shard count. `None`: what the data directory was created with, or one
    /// per core for a new one.
    pub shards: Option<u32>,
    pub store: StoreConfig,
    /// Where the shards' logs live: directories under `data_dir` (the
    /// default), or rows in PostgreSQL. Keys, cursors and the rest of the
    /// node's files stay in `data_dir` either way.
    pub backend: Backend,
}

impl NodeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            shards: None,
            store: StoreConfig::default(),
            backend: Backend::default(),
        }
    }
}

/// A future that the transport trait can return from any implementation.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How receipts travel between shards: in-process ([`LocalTransport`]), or
/// through NATS JetStream (`crate::jetstream`).
pub trait ReceiptTransport: Send + Sync {
    /// Hands a run of deliveries from one sender, in channel order, to their
    /// destination shard, which checks and commits them. Returns how many
    /// the transport took (the local one: how many were committed).
    fn deliver(&self, run: Vec<ReceiptDelivery>) -> BoxFuture<'_, Result<u64, ShardError>>;
    /// The channel sequence shard `to` expects next from shard `from`.
    fn next_expected(&self, from: u32, to: u32) -> BoxFuture<'_, Result<u64, ShardError>>;
}

/// The in-process transport: deliveries go straight to the local shard.
#[derive(Clone)]
pub struct LocalTransport {
    shards: Arc<Vec<Arc<Shard>>>,
    keys: Arc<Vec<VerifyingKey>>,
}

impl ReceiptTransport for LocalTransport {
    fn deliver(&self, run: Vec<ReceiptDelivery>) -> BoxFuture<'_, Result<u64, ShardError>> {
        Box::pin(async move {
            let Some(first) = run.first() else {
                return Ok(0);
            };
            let (from, to) = (first.receipt.from_shard, first.receipt.to_shard);
            let shard = self
                .shards
                .get(to as usize)
                .ok_or(ShardError::NoSuchShard(to))?;
            let key = self.keys.get(from as usize).copied();
            let accepted = shard.accept_batch(run, key).await?;
            Ok(accepted.committed.entries.len() as u64)
        })
    }

    fn next_expected(&self, from: u32, to: u32) -> BoxFuture<'_, Result<u64, ShardError>> {
        Box::pin(async move {
            let shard = self
                .shards
                .get(to as usize)
                .ok_or(ShardError::NoSuchShard(to))?;
            Ok(shard.inbox_expected(from))
        })
    }
}

/// An entry with what proves it: its inclusion proof under a signed head of
/// its shard's log.
#[derive(Debug, Clone)]
pub struct ProvenEntry {
    pub shard: u32,
    pub index: u64,
    pub bytes: Vec<u8>,
    pub proof: Vec<Digest>,
    pub head: SignedTreeHead,
}

impl ProvenEntry {
    /// Checks the head's signature under `key` and the entry's inclusion.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ledger::head::VerifyError> {
        self.head
            .verify_inclusion(key, self.index, &ledger::entry_id(&self.bytes), &self.proof)
    }
}

/// One step of a subject's history: the entry about it, and when the entry
/// lives on another shard, the receipt on the home shard that links it.
#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub entry: ProvenEntry,
    pub link: Option<ProvenEntry>,
}

/// A node's shards.
pub struct Node {
    router: Router,
    key_sets: std::sync::RwLock<crate::keyset::KeySets>,
    shards: Arc<Vec<Arc<Shard>>>,
    keys: Arc<Vec<VerifyingKey>>,
    notify: Arc<Notify>,
    data_dir: PathBuf,
    /// The node's clock (its stores' too): where time decides something.
    clock: ledger::clock::SharedClock,
    /// Where its logs live, and the settings they were opened with: its
    /// mirrors of other members' logs live beside them.
    backend: Backend,
    store_config: StoreConfig,
}

/// What the `NODE` file pins: the shard count, and the store kind
/// ("postgres" when the logs are in a database; no line: embedded).
fn read_node_file(path: &Path) -> Result<Option<(u32, &'static str)>, ShardError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ShardError::io(path, e)),
    };
    let mut lines = text.lines();
    let shards = match (
        lines.next(),
        lines.next().and_then(|l| l.strip_prefix("shards ")),
    ) {
        (Some(NODE_TAG), Some(n)) => n.trim().parse::<u32>().ok().filter(|&n| n > 0),
        _ => None,
    };
    let store = match lines.next().map(str::trim) {
        None | Some("") | Some("store embedded") => Some("embedded"),
        Some("store postgres") => Some("postgres"),
        Some(_) => None,
    };
    match (shards, store) {
        (Some(n), Some(kind)) => Ok(Some((n, kind))),
        _ => Err(ShardError::Config(format!(
            "{} is not a coldtrail node file",
            path.display()
        ))),
    }
}

/// Writes the `NODE` file durably ([`ledger::durable::replace`]).
fn write_node_file(dir: &Path, shards: u32, store: &str) -> Result<(), ShardError> {
    let node_file = dir.join(NODE_FILE);
    let store_line = match store {
        "embedded" => String::new(),
        kind => format!("store {kind}\n"),
    };
    let text = format!("{NODE_TAG}\nshards {shards}\n{store_line}");
    ledger::durable::replace(&node_file, text.as_bytes(), ledger::durable::Mode::Shared)
        .map_err(|e| ShardError::io(&node_file, e))
}

/// Refuses a store other than the one the node's logs are in: opening the
/// other would start empty logs beside the real ones.
fn check_store_kind(dir: &Path, pinned: &str, asked: &Backend) -> Result<(), ShardError> {
    match (pinned, asked.kind()) {
        (a, b) if a == b => Ok(()),
        ("postgres", _) => Err(ShardError::Config(format!(
            "{} keeps its logs in PostgreSQL: give the database with --store postgres://… (or COLDTRAIL_STORE_URL)",
            dir.display()
        ))),
        _ => Err(ShardError::Config(format!(
            "{} keeps its logs in its shard directories, not in PostgreSQL: drop --store, or move them with `coldtrail copy-store --from {} --to postgres://…`",
            dir.display(),
            dir.display()
        ))),
    }
}

/// Points the stopped node in `dir` at another store (after its logs were
/// copied there): rewrites the store kind its `NODE` file pins. Returns
/// the node's shard count.
pub fn repoint_store(dir: &Path, to: &Backend) -> Result<u32, ShardError> {
    let (n, _) = read_node_file(&dir.join(NODE_FILE))?
        .ok_or_else(|| ShardError::Config(format!("{} holds no coldtrail node", dir.display())))?;
    write_node_file(dir, n, to.kind())?;
    Ok(n)
}

/// The shard count and store kind (`embedded`, `postgres`) the node in `dir`
/// was created with, if there is one.
pub fn pinned(dir: &Path) -> Result<Option<(u32, &'static str)>, ShardError> {
    read_node_file(&dir.join(NODE_FILE))
}

impl Node {
    /// Opens the node in `config.data_dir`, creating it if new. Refuses to
    /// open existing data with a different shard count: every subject's home
    /// is its hash modulo the count, so changing it would strand history.
    pub fn open(config: NodeConfig) -> Result<Node, ShardError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| ShardError::io(dir, e))?;
        let node_file = dir.join(NODE_FILE);
        let n = match (read_node_file(&node_file)?, config.shards) {
            (Some((existing, _)), Some(asked)) if existing != asked => {
                return Err(ShardError::Config(format!(
                    "{} holds {existing} shards but {asked} were asked for; start with {existing} shards \
                     (changing the shard count of existing data is not supported: subjects are homed by hash modulo the count)",
                    dir.display()
                )))
            }
            (Some((existing, kind)), _) => {
                check_store_kind(dir, kind, &config.backend)?;
                existing
            }
            (None, asked) => {
                let n = asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get() as u32));
                if n == 0 {
                    return Err(ShardError::Config("a node needs at least one shard".into()));
                }
                write_node_file(dir, n, config.backend.kind())?;
                n
            }
        };
        let router = Router::new(n);
        let notify = Arc::new(Notify::new());
        let keys_dir = dir.join("keys");
        std::fs::create_dir_all(&keys_dir).map_err(|e| ShardError::io(&keys_dir, e))?;
        let mut shards = Vec::with_capacity(n as usize);
        for id in 0..n {
            let key_path = keys_dir.join(format!("shard-{id:03}.key"));
            let key = if key_path.exists() {
                ledger::keys::read_key_file(&key_path)?
            } else {
                let k = ledger::keys::generate()?;
                ledger::keys::write_key_file(&key_path, &k)?;
                k
            };
            let shard_dir = dir.join(format!("shard-{id:03}"));
            let name = format!("shard-{id:03}");
            let store =
                config
                    .backend
                    .open(&shard_dir, &name, key.clone(), config.store.clone())?;
            shards.push(Arc::new(Shard::open(
                id,
                router,
                (store, key),
                &shard_dir,
                crate::checkpoint::path(dir, &format!("sequencer-{id:03}")),
                Arc::clone(&notify),
            )?));
        }
        let keys: Vec<VerifyingKey> = shards.iter().map(|s| s.public_key()).collect();
        let clock = Arc::clone(&config.store.clock);
        let key_sets = crate::keyset::KeySets::open(&keys_dir, &keys, Arc::clone(&clock))?;
        Ok(Node {
            router,
            key_sets: std::sync::RwLock::new(key_sets),
            shards: Arc::new(shards),
            keys: Arc::new(keys),
            notify,
            data_dir: dir.clone(),
            clock,
            backend: config.backend.clone(),
            store_config: config.store.clone(),
        })
    }

    /// Where the node's logs live (embedded or PostgreSQL), and the settings
    /// they were opened with.
    pub fn storage(&self) -> (&Backend, &StoreConfig) {
        (&self.backend, &self.store_config)
    }

    /// The node's clock: what ingest, tokens and the read side ask for now.
    pub fn clock(&self) -> &ledger::clock::SharedClock {
        &self.clock
    }

    /// Writes every shard's sequencer checkpoint (see [`Shard::checkpoint`]):
    /// the next open reads only what was appended after it. Returns how
    /// many shards got one.
    pub async fn checkpoint(&self, wait: Duration) -> Result<usize, ShardError> {
        let mut written = 0;
        for shard in self.shards.iter() {
            written += usize::from(shard.checkpoint(wait).await?.is_some());
        }
        Ok(written)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn router(&self) -> Router {
        self.router
    }

    pub fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    pub fn shard(&self, id: u32) -> Result<&Arc<Shard>, ShardError> {
        self.shards
            .get(id as usize)
            .ok_or(ShardError::NoSuchShard(id))
    }

    /// The public key of each shard's log, by shard.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Every key set the node's operator key signed, oldest first: the
    /// newest names each shard's log key (`/.well-known/coldtrail/keys`).
    pub fn key_sets(&self) -> Vec<ledger::keyset::SignedKeySet> {
        self.key_sets
            .read()
            .expect("key sets lock")
            .chain()
            .to_vec()
    }

    /// Replaces the operator key; the new key set is endorsed by the old key,
    /// so verifiers that pinned it follow the rotation.
    pub fn rotate_operator_key(&self) -> Result<ledger::keyset::SignedKeySet, ShardError> {
        self.key_sets
            .write()
            .expect("key sets lock")
            .rotate_operator()
    }

    /// Publishes the node's witness policy (`None`: no witnesses) in a new
    /// key set, when it differs from the newest set's; returns the new set.
    pub fn publish_witnesses(
        &self,
        policy: Option<ledger::keyset::WitnessPolicy>,
    ) -> Result<Option<ledger::keyset::SignedKeySet>, ShardError> {
        self.key_sets
            .write()
            .expect("key sets lock")
            .publish_witnesses(policy)
    }

    /// The node's operator, as witness `name`, vouches for another log's
    /// head it checked (a mirror's cosignature): the C2SP cosignature line
    /// of `head`'s checkpoint, timed now. The operator key signs key sets,
    /// network votes and these; each message has its own form, so none can
    /// pass for another.
    pub fn cosign(&self, head: &ledger::TreeHead, name: &str) -> String {
        let now_s = (self.clock.now_ms().max(0) / 1000) as u64;
        self.key_sets
            .read()
            .expect("key sets lock")
            .cosign(head, name, now_s)
    }

    /// The witness policy of the node's newest key set.
    pub fn witness_policy(&self) -> Option<ledger::keyset::WitnessPolicy> {
        self.key_sets
            .read()
            .expect("key sets lock")
            .chain()
            .last()
            .and_then(|s| s.set.witnesses.clone())
    }

    pub(crate) fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// Appends `entries` on the home shard of `partition_key` (device for
    /// readings; lot, shipment or container for events; organisation for
    /// identity changes), with receipts for every subject homed elsewhere.
    pub async fn append(
        &self,
        partition_key: &str,
        entries: Vec<Entry>,
    ) -> Result<Committed, ShardError> {
        self.shard(self.router.shard_for(partition_key))?
            .append(entries)
            .await
    }

    /// [`Node::append`] for entries already encoded.
    pub async fn append_encoded(
        &self,
        partition_key: &str,
        entries: Vec<Encoded>,
    ) -> Result<Committed, ShardError> {
        self.shard(self.router.shard_for(partition_key))?
            .append_encoded(entries)
            .await
    }

    /// Receipts committed in some outbox and not yet committed by their
    /// destination, over all channels of this node.
    pub fn pending_receipts(&self) -> u64 {
        let mut n = 0;
        for from in self.shards.iter() {
            for to in self.shards.iter().filter(|t| t.id() != from.id()) {
                n += from
                    .outbox_len(to.id())
                    .saturating_sub(to.inbox_committed(from.id()));
            }
        }
        n
    }

    /// Signs a head over everything committed on every shard (for a clean
    /// shutdown: no acknowledged entry is left outside a signed head).
    pub async fn sign_heads(&self) -> Result<(), ShardError> {
        for s in self.shards.iter() {
            s.head_covering(s.committed()).await?;
        }
        Ok(())
    }

    /// The transport that delivers between this node's own shards.
    pub fn local_transport(&self) -> LocalTransport {
        LocalTransport {
            shards: Arc::clone(&self.shards),
            keys: Arc::clone(&self.keys),
        }
    }

    /// Sends every committed receipt its destination has not yet taken,
    /// channel by channel, in order. Returns how many the transport accepted
    /// (for the local transport: how many were committed).
    pub async fn relay_once(&self, transport: &dyn ReceiptTransport) -> Result<u64, ShardError> {
        let mut delivered = 0;
        for from in &*self.shards {
            for to in 0..self.router.shards() {
                if to == from.id() || from.outbox_len(to) == 0 {
                    continue;
                }
                // Send everything from what the receiver expects to the end of
                // the committed outbox, in order; the receiver refuses what it
                // already has and what comes too early.
                let mut next = transport.next_expected(from.id(), to).await?;
                let end = from.outbox_len(to);
                while next < end {
                    let run = from.relay_run(to, next, end.min(next + RELAY_RUN)).await?;
                    if run.is_empty() {
                        break;
                    }
                    let n = run.len() as u64;
                    match transport.deliver(run).await {
                        Ok(k) => delivered += k,
                        Err(ShardError::Receipt(ReceiptError::Replayed { .. })) => {}
                        Err(ShardError::Receipt(ReceiptError::Skipped { .. })) => break,
                        Err(e) => return Err(e),
                    }
                    next += n;
                }
            }
        }
        Ok(delivered)
    }

    /// Runs the relay until the node is dropped: after every commit, and
    /// every `retry` in case a delivery failed.
    pub fn spawn_relay(self: &Arc<Self>, retry: Duration) -> tokio::task::JoinHandle<()> {
        let transport: Arc<dyn ReceiptTransport> = Arc::new(self.local_transport());
        self.spawn_relay_over(transport, retry)
    }

    /// [`Node::spawn_relay`] over another transport (JetStream's, between nodes).
    pub fn spawn_relay_over(
        self: &Arc<Self>,
        transport: Arc<dyn ReceiptTransport>,
        retry: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(n) = node.upgrade() else { return };
                let notify = Arc::clone(&n.notify);
                let woken = notify.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                // A failed delivery is retried on the next round.
                if let Err(e) = n.relay_once(&*transport).await {
                    tracing::debug!(error = %e, "receipt relay round failed; retrying");
                }
                drop(n);
                let _ = tokio::time::timeout(retry, woken).await;
            }
        })
    }

    async fn prove(&self, shard: u32, index: u64) -> Result<ProvenEntry, ShardError> {
        let s = self.shard(shard)?;
        let head = s.head_covering(index + 1).await?;
        Ok(ProvenEntry {
            shard,
            index,
            bytes: s.store().entry(index)?,
            proof: s.store().inclusion_proof(index, head.head.size)?,
            head,
        })
    }

    /// Every entry about `subject`, in the causal order its home shard
    /// committed them, each with its proof; entries committed on other shards
    /// come with the receipt that links them.
    pub async fn history(&self, subject: &str) -> Result<Vec<HistoryItem>, ShardError> {
        let home = self.router.shard_for(subject);
        let mut out = Vec::new();
        for index in self.shard(home)?.entries_about(subject) {
            if index >= self.shard(home)?.committed() {
                break;
            }
            let here = self.prove(home, index).await?;
            let entry = Entry::from_bytes(&here.bytes).map_err(|e| ShardError::Corrupt {
                shard: home,
                what: format!("entry {index}: {e}"),
            })?;
            match entry {
                Entry::ReceiptIn(d) => {
                    let source = self
                        .prove(d.receipt.from_shard, d.receipt.source_index)
                        .await?;
                    out.push(HistoryItem {
                        entry: source,
                        link: Some(here),
                    });
                }
                _ => out.push(HistoryItem {
                    entry: here,
                    link: None,
                }),
            }
        }
        Ok(out)
    }
}
