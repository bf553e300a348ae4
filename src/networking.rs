//! The node as a member of a network (issue 35): it publishes its own logs
//! over NATS JetStream (`shards::jetstream::LogPublisher`) and follows every
//! other member's into verified mirrors (`shards::mirror`), a task per
//! member, under `{data_dir}/mirrors/{member}`. The membership is the
//! network file's newest adopted version, read at start; the node must be
//! the member it says it is (its operator key and shard count are the
//! document's). `Followed` is what `/readyz` and `/metrics` read of the
//! mirrors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ed25519_dalek::VerifyingKey;
use ledger::entry::{Entry, NetworkRecord};
use ledger::network::Member;
use shards::jetstream::{
    Cosign, CosignatureInbox, JetStreamConfig, LogPublisher, MemberFollower, NotKept,
};
use shards::mirror::{Mirror, Mirrors};
use shards::Node;

/// How often a follower that could not open (the member has published no
/// key sets yet, NATS away) tries again, and how often the mirrors are
/// asked whether one caught a fork not yet recorded.
const RETRY: Duration = Duration::from_secs(1);

/// The node's place in a network, as configured (`[network]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Networking {
    /// The network file (`coldtrail network`).
    pub file: PathBuf,
    /// Which of its members this node is.
    pub member: String,
    /// Where logs travel (`[receipts]`'s servers, stream and prefix).
    pub jetstream: JetStreamConfig,
    /// How often the node publishes what its logs committed.
    pub every: Duration,
}

/// Where the node stands with one other member's logs.
#[derive(Clone)]
pub enum Following {
    /// Not followed yet, and why (it has published no key sets yet, or
    /// NATS is away); tried again every second.
    Waiting(String),
    /// Followed: its mirrors, by shard.
    Mirrors(Vec<Arc<Mirror>>),
}

/// Every other member, and where the node stands with its logs: the
/// members whose mirrors are open are the ones in `mirrors`, the others
/// wait.
#[derive(Clone, Default)]
pub struct Followed {
    /// Members not followed yet, and why.
    waiting: Arc<RwLock<BTreeMap<String, String>>>,
    /// Told when a member's mirrors open or one catches a fork: the fork
    /// recorder looks then (and every second).
    changed: Arc<tokio::sync::Notify>,
    /// The mirrors opened, as the read side reads them too.
    mirrors: Mirrors,
}

impl Followed {
    /// The mirrors opened so far (and later), as the read side reads them.
    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    /// `member` is not followed yet, because of `why`.
    fn waiting(&self, member: &str, why: String) {
        self.waiting
            .write()
            .expect("followed lock")
            .insert(member.to_string(), why);
        self.changed.notify_one();
    }

    /// `member`'s mirrors are open.
    fn following(&self, member: &str, mirrors: Vec<Arc<Mirror>>) {
        self.mirrors.insert(member, mirrors);
        self.waiting.write().expect("followed lock").remove(member);
        self.changed.notify_one();
    }

    /// Each member, by name.
    pub fn members(&self) -> Vec<(String, Following)> {
        let mut all: BTreeMap<String, Following> = self
            .waiting
            .read()
            .expect("followed lock")
            .iter()
            .map(|(m, why)| (m.clone(), Following::Waiting(why.clone())))
            .collect();
        for (m, mirrors) in self.mirrors.members() {
            all.insert(m, Following::Mirrors(mirrors));
        }
        all.into_iter().collect()
    }
}

/// The node as the member it checked it is: the network document it
/// follows, and its own entry in it.
pub struct Joined {
    adopted: ledger::network::SignedNetworkDoc,
    me: Member,
}

impl Joined {
    /// Checks that the node is the member it says it is. Fails if the
    /// network file does not verify, names no such member, or names other
    /// keys or another shard count for it.
    pub fn check(node: &Node, networking: &Networking) -> Result<Joined> {
        let file = &networking.file;
        let adopted = crate::cmd::network::membership(file)
            .with_context(|| format!("the network file {}", file.display()))?;
        let me = member_of(node, networking, &adopted.doc)?.clone();
        Ok(Joined { adopted, me })
    }

    /// The other members as witnesses of this node's logs: each vouches,
    /// under the name `{network}/{member}` and its operator key, for the
    /// heads its mirrors verified.
    pub fn witnesses(&self) -> Vec<(String, VerifyingKey)> {
        member_witnesses(&self.adopted.doc, &self.me.name)
    }
}

/// Every member of `doc` but `me`, as a witness: its name and key.
fn member_witnesses(doc: &ledger::network::NetworkDoc, me: &str) -> Vec<(String, VerifyingKey)> {
    doc.members
        .iter()
        .filter(|m| m.name != me)
        .filter_map(|m| {
            Some((
                witness_name(&doc.network, &m.name),
                VerifyingKey::from_bytes(&m.operator_key).ok()?,
            ))
        })
        .collect()
}

/// The name a member vouches for other members' heads under.
fn witness_name(network: &str, member: &str) -> String {
    format!("{network}/{member}")
}

/// `networking.member`'s entry in `doc`, if this node is that member.
fn member_of<'d>(
    node: &Node,
    networking: &Networking,
    doc: &'d ledger::network::NetworkDoc,
) -> Result<&'d Member> {
    let file = &networking.file;
    let Some(me) = doc.member(&networking.member) else {
        bail!(
            "{} (network {}, version {}) has no member {:?}; network.member names this node's member",
            file.display(),
            doc.network,
            doc.version,
            networking.member
        );
    };
    let operator = node.key_sets().last().map(|s| s.set.operator_key);
    if operator != Some(me.operator_key) {
        bail!(
            "this node's operator key is not member {}'s in {} (version {}): a node publishes only as the member whose key it holds",
            me.name,
            file.display(),
            doc.version
        );
    }
    if me.shards as usize != node.shards().len() {
        bail!(
            "member {} hosts {} shards in {} (version {}), this node {}",
            me.name,
            me.shards,
            file.display(),
            doc.version,
            node.shards().len()
        );
    }
    Ok(me)
}

/// Starts publishing the node's logs, keeping the cosignatures the other
/// members publish for them, and following every other member's logs
/// (vouching for each head verified). Fails if NATS cannot be reached: a
/// node that cannot publish its logs does not serve as a member.
pub async fn start(
    node: &Arc<Node>,
    networking: &Networking,
    joined: Joined,
    followed: &Followed,
    cosigned: &Arc<witness::cosigned::Cosigned>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let Joined { adopted, me } = joined;
    let doc = &adopted.doc;
    let voters = member_witnesses(doc, &me.name);
    let inbox = CosignatureInbox::open(&networking.jetstream, &me.name)
        .await
        .context("the cosignatures of this node's logs")?;
    let publisher = LogPublisher::connect(networking.jetstream.clone(), &me.name, Arc::clone(node))
        .await
        .with_context(|| {
            format!(
                "publishing the logs over NATS JetStream at {}",
                networking.jetstream.servers
            )
        })?;
    if record_once(
        node,
        &doc.network,
        Entry::Network(NetworkRecord::Adopted(adopted.clone())),
    )
    .await?
    {
        tracing::info!(network = %doc.network, version = doc.version, "recorded the network document this node follows on its log");
    }
    let keeper = (Arc::clone(node), Arc::clone(cosigned));
    let mut tasks =
        vec![
            tokio::spawn(publisher.run(networking.every)),
            tokio::spawn(inbox.run(move |shard, note| {
                keep_cosignature(&keeper.0, &voters, &keeper.1, shard, note)
            })),
            tokio::spawn(record_forks(
                Arc::clone(node),
                doc.network.clone(),
                followed.clone(),
            )),
        ];
    let (backend, store_config) = node.storage();
    for member in doc.members.iter().filter(|m| m.name != me.name) {
        followed.waiting(&member.name, "not opened yet".to_string());
        tasks.push(tokio::spawn(follow(
            FollowTask {
                config: networking.jetstream.clone(),
                follower: me.name.clone(),
                member: member.clone(),
                dir: mirrors_dir(node.data_dir(), &member.name),
                backend: backend.clone(),
                store_config: store_config.clone(),
                cosign: {
                    let (node, name) = (Arc::clone(node), witness_name(&doc.network, &me.name));
                    Arc::new(move |head: &ledger::TreeHead| node.cosign(head, &name))
                },
            },
            followed.clone(),
        )));
    }
    tracing::info!(
        network = %doc.network,
        version = doc.version,
        member = %me.name,
        members = doc.members.len(),
        "publishing this node's logs and following the other members'"
    );
    Ok(tasks)
}

/// Where the node keeps its mirrors of `member`'s logs.
pub fn mirrors_dir(data_dir: &Path, member: &str) -> PathBuf {
    data_dir.join("mirrors").join(member)
}

/// What one follower task needs.
struct FollowTask {
    config: JetStreamConfig,
    follower: String,
    member: Member,
    dir: PathBuf,
    backend: ledger::store::Backend,
    store_config: ledger::store::StoreConfig,
    cosign: Cosign,
}

/// Opens the mirrors of one member's logs (retrying until its key sets are
/// published) and follows them until the task is dropped.
async fn follow(f: FollowTask, followed: Followed) {
    let mut said = None;
    loop {
        match MemberFollower::open(
            &f.config,
            &f.follower,
            &f.member,
            &f.dir,
            &f.backend,
            f.store_config.clone(),
        )
        .await
        {
            Ok(follower) => {
                let follower = follower
                    .vouching(Arc::clone(&f.cosign))
                    .telling_forks(Arc::clone(&followed.changed));
                followed.following(&f.member.name, follower.mirrors().to_vec());
                tracing::info!(member = %f.member.name, shards = f.member.shards, "following a member's logs");
                follower.run().await;
                return;
            }
            Err(e) => {
                let why = e.to_string();
                // Said once at info: a member not up yet is usual at start.
                if said.as_ref() != Some(&why) {
                    tracing::info!(member = %f.member.name, why = %why, "cannot follow a member's logs yet; retrying");
                    said = Some(why.clone());
                }
                followed.waiting(&f.member.name, why);
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Appends `entry` to the node's log unless it is there already (on the
/// shard the network's name routes to): network records carry no time, so
/// one version or one fork has one id. Returns whether it appended.
async fn record_once(node: &Node, network: &str, entry: Entry) -> Result<bool> {
    let key = format!("network:{network}");
    let id = ledger::entry_id(&entry.to_bytes());
    let shard = node.shard(node.router().shard_for(&key))?;
    if shard.store().find(&id)?.is_some() {
        return Ok(false);
    }
    node.append(&key, vec![entry])
        .await
        .context("recording a network record")?;
    Ok(true)
}

/// Records on the node's own log each fork a mirror caught (at once, and
/// after a restart for one caught before), each once.
async fn record_forks(node: Arc<Node>, network: String, followed: Followed) {
    let mut recorded = std::collections::HashSet::new();
    loop {
        for (member, mirrors) in followed.mirrors.members() {
            for (shard, mirror) in mirrors.iter().enumerate() {
                let Some(fork) = mirror.fork() else { continue };
                if recorded.contains(mirror.name()) {
                    continue;
                }
                let entry = Entry::Network(NetworkRecord::Fork {
                    member: member.clone(),
                    shard: shard as u32,
                    held: fork.held,
                    conflicting: fork.conflicting,
                });
                match record_once(&node, &network, entry).await {
                    Ok(new) => {
                        if new {
                            tracing::error!(mirror = %mirror.name(), "recorded a member's fork on this node's log");
                        }
                        recorded.insert(mirror.name().to_string());
                    }
                    Err(e) => {
                        tracing::warn!(mirror = %mirror.name(), error = %format!("{e:#}"), "recording a fork failed; retrying")
                    }
                }
            }
        }
        tokio::select! {
            _ = followed.changed.notified() => {}
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Checks one cosignature note a member published for this node's log
/// `shard` and keeps its line (served with the checkpoint from then on):
/// its checkpoint must be of that log, at a size it reached and with the
/// root it has there, and the line must verify under one of `voters`.
fn keep_cosignature(
    node: &Node,
    voters: &[(String, VerifyingKey)],
    cosigned: &witness::cosigned::Cosigned,
    shard: u32,
    note: &str,
) -> Result<(), NotKept> {
    use ledger::note::{Checkpoint, Note};
    let refused = |why: String| NotKept::Refused(why);
    let parsed = Note::parse(note).map_err(|e| refused(e.to_string()))?;
    let checkpoint = Checkpoint::parse(&parsed.text).map_err(|e| refused(e.to_string()))?;
    let log = node.shard(shard).map_err(|e| refused(e.to_string()))?;
    let log_id = ledger::head::log_id(&log.public_key());
    if checkpoint.origin != ledger::note::origin(&log_id) {
        return Err(refused(format!(
            "its checkpoint is of {}, not of shard {shard}'s log",
            checkpoint.origin
        )));
    }
    let store = log.store();
    if checkpoint.size > store.len() {
        return Err(refused(format!(
            "its checkpoint is of size {}, beyond this log's {}",
            checkpoint.size,
            store.len()
        )));
    }
    let root = store
        .root(checkpoint.size)
        .map_err(|e| NotKept::Retry(e.to_string()))?;
    if root != checkpoint.root {
        tracing::error!(
            shard,
            size = checkpoint.size,
            "a member vouched for another history of this log: another node signs with its key, or it was restored from an older copy"
        );
        return Err(refused(format!(
            "it vouches for a root at size {} this log does not have",
            checkpoint.size
        )));
    }
    let Some((name, _)) = voters
        .iter()
        .find(|(name, key)| parsed.verify_cosignature(name, key).is_ok())
    else {
        return Err(refused("no member's cosignature on it verifies".into()));
    };
    if parsed.signatures.len() != 1 {
        return Err(refused("it carries more than its one cosignature".into()));
    }
    let line = note
        .split_once("\n\n")
        .map(|(_, line)| line)
        .ok_or_else(|| refused("no signature line".into()))?;
    cosigned
        .add(&log_id, checkpoint.size, line)
        .map_err(|e| NotKept::Retry(e.to_string()))?;
    metrics::counter!("coldtrail_member_cosignatures_total", "member" => name.clone()).increment(1);
    Ok(())
}
