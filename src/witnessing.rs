//! The node asks its witnesses (issue 34): at a steady cadence, each
//! shard's newest signed head goes to every configured witness as a
//! checkpoint with a consistency proof from the size that witness holds;
//! each cosignature is checked under the witness's key and kept
//! (`witness::cosigned`), and `/v1/shards/{n}/checkpoint` serves it with the
//! checkpoint. One thread per witness: a witness that is down or slow delays
//! only its own cosignatures, and nothing here is on the write path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use ledger::keyset::{WitnessKey, WitnessPolicy};
use shards::Node;
use witness::client::{submit, Answer, Peer};
use witness::cosigned::Cosigned;

/// How long one request to a witness may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The first sign a witness gave that this node's log is not the one it
/// cosigned (a rollback or a fork), kept until the node restarts: `/readyz`
/// reports it and `coldtrail_witness_alarm` is 1.
pub type Alarm = Arc<std::sync::Mutex<Option<String>>>;

/// Raises the alarm; logged as an error the first time (it is asked again
/// every round until the node restarts).
fn raise(alarm: &Alarm, why: String) {
    metrics::gauge!("coldtrail_witness_alarm").set(1.0);
    let mut held = alarm.lock().expect("alarm lock");
    if held.is_none() {
        tracing::error!(%why, "a witness contradicts this node's log");
        *held = Some(why);
    } else {
        tracing::debug!(%why, "a witness contradicts this node's log");
    }
}

/// The witnesses `serve` asks, how often, and how many of them a client
/// needs (published in the node's key set).
#[derive(Debug, Clone, PartialEq)]
pub struct Witnessing {
    pub peers: Vec<Peer>,
    pub every: Duration,
    pub quorum: u32,
}

/// The witness policy the node publishes, checked: the configured
/// witnesses (their quorum) and its fellow network members, whose mirrors
/// vouch for its heads (with no witness configured, a majority of the
/// members); `None` with neither.
pub fn policy(
    configured: Option<&Witnessing>,
    members: Vec<(String, VerifyingKey)>,
) -> anyhow::Result<Option<WitnessPolicy>> {
    let mut witnesses = Vec::new();
    for p in configured.map_or(&[][..], |w| &w.peers) {
        witnesses.push(WitnessKey {
            name: p.name.clone(),
            public_key: p.public_key().map_err(anyhow::Error::msg)?.to_bytes(),
        });
    }
    let quorum = match configured {
        Some(w) => w.quorum,
        None => members.len() as u32 / 2 + 1,
    };
    witnesses.extend(members.into_iter().map(|(name, key)| WitnessKey {
        name,
        public_key: key.to_bytes(),
    }));
    if witnesses.is_empty() {
        return Ok(None);
    }
    WitnessPolicy::new(quorum, witnesses)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the witnesses configured: {e}"))
}

/// Starts asking the witnesses until `stop` is set.
pub fn spawn(
    node: Arc<Node>,
    witnessing: &Witnessing,
    store: Arc<Cosigned>,
    stop: Arc<AtomicBool>,
    alarm: &Alarm,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let interval = witnessing.every;
    let mut threads = Vec::new();
    for peer in &witnessing.peers {
        let key = peer.public_key().map_err(anyhow::Error::msg)?;
        let (node, store, stop, peer, alarm) = (
            Arc::clone(&node),
            Arc::clone(&store),
            Arc::clone(&stop),
            peer.clone(),
            Arc::clone(alarm),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("witness {}", peer.name))
                .spawn(move || ask(&node, &peer, &key, &store, interval, &stop, &alarm))?,
        );
    }
    Ok(threads)
}

/// One witness's loop: per shard, the size it holds (learnt from its
/// answers; unknown at first, which a 409 tells).
fn ask(
    node: &Node,
    peer: &Peer,
    key: &VerifyingKey,
    store: &Cosigned,
    interval: Duration,
    stop: &AtomicBool,
    alarm: &Alarm,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut held: Vec<Option<u64>> = vec![None; node.shards().len()];
    while !stop.load(Ordering::Relaxed) {
        for shard in node.shards() {
            let i = shard.id() as usize;
            let Some(head) = shard.store().latest_head() else {
                continue;
            };
            // Twice at most: a first answer may only tell the size it holds.
            for _ in 0..2 {
                if held[i] == Some(head.head.size) {
                    break;
                }
                let old = held[i].unwrap_or(0);
                if old > head.head.size {
                    raise(alarm, format!(
                        "witness {} holds shard {i} at size {old}, above this log's newest head ({}): the log was rolled back (restored from an older copy?) or another node signs with its key",
                        peer.name, head.head.size
                    ));
                    break;
                }
                let proof = if old == 0 {
                    Vec::new()
                } else {
                    match shard.store().consistency_proof(old, head.head.size) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(shard = i, error = %e, "no consistency proof for a witness");
                            break;
                        }
                    }
                };
                let checkpoint = match shard.signed_checkpoint(&head) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(shard = i, error = %e, "no checkpoint for a witness");
                        break;
                    }
                };
                match submit(&agent, peer, key, old, &proof, &checkpoint) {
                    Ok(Answer::Cosigned(line)) => {
                        if let Err(e) = store.add(&head.head.log_id, head.head.size, &line) {
                            tracing::warn!(error = %e, "keeping a cosignature");
                            break;
                        }
                        held[i] = Some(head.head.size);
                        metrics::counter!("coldtrail_witness_cosignatures_total").increment(1);
                    }
                    Ok(Answer::Holds(size)) => held[i] = Some(size),
                    Ok(refused) if refused.is_inconsistent() => {
                        raise(alarm, format!(
                            "witness {} refused shard {i}'s checkpoint at size {} as inconsistent with what it cosigned: {refused:?}",
                            peer.name, head.head.size
                        ));
                        break;
                    }
                    Ok(Answer::Refused { why, .. }) => {
                        tracing::warn!(witness = %peer.name, shard = i, %why, "the witness refused a checkpoint");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(witness = %peer.name, error = %e, "the witness did not answer");
                        break;
                    }
                }
            }
        }
        std::thread::sleep(interval);
    }
}
