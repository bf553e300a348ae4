//! What ingest derives from the logs: the identity state and the eventID
//! index, folded from committed entries, with how far each shard was read;
//! and its checkpoint, so that a start reads only the logs' tails.
//!
//! The write path keeps its own copies of both (`Ingest::identity`,
//! `Ingest::events`) and changes them as it commits, including sequence
//! numbers it has reserved but not yet committed. Those copies are never
//! checkpointed: only this fold, which the follower keeps current from the
//! committed-entry feed, is a function of the logs alone.
//!
//! The checkpoint (`DIR/checkpoints/ingest`, [`shards::checkpoint`]) names
//! the identity and verdict entries folded (by shard and index: they are
//! read again from the logs, which check them), the next sequence number of
//! every device (the only thing readings give), and the eventID index.

use std::collections::HashMap;

use ledger::entry::{Entry, EntryRef};
use serde::{Deserialize, Serialize};
use shards::checkpoint::{self, Checkpoint};
use shards::{Node, ShardError};

use crate::identity::IdentityState;

/// Where a captured event is, and its content fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventLoc {
    pub shard: u32,
    pub index: u64,
    pub fingerprint: String,
}
/// The payload's kind and version.
const KIND: &[u8; 8] = b"CTINGv01";
/// The checkpoint's name under `DIR/checkpoints/`.
pub const NAME: &str = "ingest";

/// The identity state and eventID index of a prefix of every log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Derived {
    pub identity: IdentityState,
    pub events: HashMap<String, Vec<EventLoc>>,
    /// The identity and verdict entries folded, in the order they were.
    sources: Vec<(u32, u64)>,
    /// Entries folded of each shard: entries `0..positions[s]` of shard `s`.
    pub positions: Vec<u64>,
}

/// What the checkpoint holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    sources: Vec<(u32, u64)>,
    sequences: Vec<(String, u64)>,
    events: Vec<(String, Vec<EventLoc>)>,
}

impl Derived {
    pub fn new(shards: usize) -> Derived {
        Derived {
            positions: vec![0; shards],
            ..Derived::default()
        }
    }

    /// Folds entry `index` of `shard` if it is the next one there; an entry
    /// already folded is skipped (the follower and a catch-up may both
    /// offer it).
    pub fn apply(&mut self, shard: u32, index: u64, bytes: &[u8]) {
        let Some(position) = self.positions.get_mut(shard as usize) else {
            return;
        };
        if index != *position {
            debug_assert!(index < *position, "entries are folded in log order");
            return;
        }
        *position += 1;
        // Readings only move a device's next sequence number: read their
        // header, not their readings.
        if let Some((device, first_seq, count)) = ledger::entry::peek_readings(bytes) {
            self.identity
                .advance_sequence(&device, first_seq.saturating_add(count));
            return;
        }
        let at = || EntryRef {
            shard,
            index,
            id: ledger::entry_id(bytes),
        };
        match ledger::entry::kind_of(bytes) {
            Some("identity") | Some("verdict") => {
                if let Ok(e) = Entry::from_bytes(bytes) {
                    self.identity.apply(&e, at());
                    self.sources.push((shard, index));
                }
            }
            Some("custody") => {
                if let Ok(Entry::Custody(c)) = Entry::from_bytes(bytes) {
                    let doc: serde_json::Value =
                        serde_json::from_slice(&c.document).unwrap_or_default();
                    self.events.entry(c.event_id).or_default().push(EventLoc {
                        shard,
                        index,
                        fingerprint: ledger::Domain::EventFingerprint
                            .hash(crate::epcis::canonical_json(&doc).as_bytes())
                            .to_hex(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Reads each shard from where this stopped up to `to[shard]`; returns
    /// how many entries that was.
    pub fn catch_up(&mut self, node: &Node, to: &[u64]) -> Result<u64, ShardError> {
        let mut read = 0;
        for (shard, &end) in node.shards().iter().zip(to) {
            let mut from = self.positions[shard.id() as usize];
            read += end.saturating_sub(from);
            // In chunks: memory stays bounded by one chunk of entries.
            while from < end {
                let until = (from + 4096).min(end);
                for (bytes, index) in shard.store().entries(from, until)?.into_iter().zip(from..) {
                    self.apply(shard.id(), index, &bytes);
                }
                from = until;
            }
        }
        Ok(read)
    }

    /// Writes the checkpoint of this fold.
    pub fn save(&self, node: &Node) -> Result<(), ShardError> {
        let saved = Saved {
            sources: self.sources.clone(),
            sequences: self.identity.sequences(),
            events: self
                .events
                .iter()
                .map(|(id, locs)| (id.clone(), locs.clone()))
                .collect(),
        };
        let payload = postcard::to_allocvec(&saved).expect("the ingest state encodes");
        let sizes: Vec<(u32, u64)> = node
            .shards()
            .iter()
            .map(|s| (s.id(), self.positions[s.id() as usize]))
            .collect();
        Checkpoint::new(node, &sizes, payload)?.save(&checkpoint::path(node.data_dir(), NAME), KIND)
    }

    /// The fold from the checkpoint, if there is one that matches the logs:
    /// its identity and verdict entries are read again from the logs.
    pub fn load(node: &Node) -> Option<Derived> {
        let path = checkpoint::path(node.data_dir(), NAME);
        let c = Checkpoint::load_or_scan(&path, KIND, node)?;
        let unusable = |why: &str| {
            tracing::warn!(checkpoint = %path.display(), why, "checkpoint not used; reading the whole log instead");
            None
        };
        if c.covers.len() != node.shards().len() {
            return unusable("it covers another number of shards");
        }
        let Ok(saved) = postcard::from_bytes::<Saved>(&c.payload) else {
            return unusable("its payload does not decode");
        };
        let mut d = Derived::new(node.shards().len());
        for &(shard, index) in &saved.sources {
            let entry = node
                .shard(shard)
                .ok()
                .filter(|_| index < c.size(shard))
                .and_then(|s| s.store().entry(index).ok())
                .and_then(|bytes| Some((Entry::from_bytes(&bytes).ok()?, bytes)));
            let Some((e, bytes)) = entry else {
                return unusable("it names an entry the log does not give");
            };
            let at = EntryRef {
                shard,
                index,
                id: ledger::entry_id(&bytes),
            };
            d.identity.apply(&e, at);
        }
        for (device, next) in &saved.sequences {
            d.identity.advance_sequence(device, *next);
        }
        d.events = saved.events.into_iter().collect();
        d.sources = saved.sources;
        d.positions = node.shards().iter().map(|s| c.size(s.id())).collect();
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ed25519_dalek::SigningKey;
    use ledger::entry::{
        CustodyEvent, EventKind, IdentityChange, OrgRole, RuleVerdict, Subject, SubjectRole,
        VerdictKind,
    };
    use ledger::reading::Reading;
    use shards::NodeConfig;

    use super::*;
    use crate::{DeviceClient, Ingest, Limits};
    use api::{Principal, Role};

    const SHARDS: u32 = 4;

    fn open(dir: &std::path::Path) -> Arc<Node> {
        let config = NodeConfig {
            shards: Some(SHARDS),
            ..NodeConfig::new(dir)
        };
        Arc::new(Node::open(config).unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// An organisation homed on `shard`, registered.
    async fn org_on(node: &Node, shard: u32) -> String {
        let org = (0..)
            .map(|i| format!("urn:epc:id:sgln:4012345.{i:05}.0"))
            .find(|o| node.router().shard_for(o) == shard)
            .unwrap();
        let entry = Entry::Identity(IdentityChange::OrgRegistered {
            org: org.clone(),
            name: format!("org on shard {shard}"),
            role: OrgRole::Carrier,
            at_ms: 0,
        });
        node.append(&org, vec![entry]).await.unwrap();
        org
    }

    /// A device name homed on `shard`.
    fn device_on(node: &Node, shard: u32, tag: &str) -> String {
        (0..)
            .map(|i| format!("urn:epc:id:giai:4012345.{tag}{i}"))
            .find(|d| node.router().shard_for(d) == shard)
            .unwrap()
    }

    fn readings(n: i64) -> Vec<Reading> {
        (0..n)
            .map(|i| Reading::new(1_700_000_000_000 + i * 60_000, 400))
            .collect()
    }

    fn event(id: &str, lot: &str, note: &str) -> Entry {
        Entry::Custody(CustodyEvent {
            recorded_by: "urn:epc:id:sgln:4012345.00000.0".into(),
            event_id: id.into(),
            kind: EventKind::Object,
            action: None,
            event_time_ms: 1_700_000_000_000,
            tz_offset_min: 0,
            biz_step: None,
            disposition: None,
            read_point: None,
            biz_location: None,
            subjects: vec![Subject {
                role: SubjectRole::Object,
                id: lot.into(),
                quantity: None,
            }],
            readings: Vec::new(),
            document: serde_json::to_vec(&serde_json::json!({ "eventID": id, "note": note }))
                .unwrap(),
        })
    }

    fn verdict(kind: VerdictKind, subject: &str) -> Entry {
        Entry::Verdict(RuleVerdict {
            rule: "device_health".into(),
            subject: subject.into(),
            kind,
            from_ms: 0,
            to_ms: None,
            explanation: format!("{} {subject}", kind.name()),
            evidence: Vec::new(),
        })
    }

    /// Identity changes, readings, policies and events, spread over the
    /// shards so that devices' readings sit on shards before their
    /// registrations'; returns the committed sizes halfway.
    async fn write_world(node: &Node) -> Vec<u64> {
        let org = org_on(node, 3).await;
        let mut halfway = Vec::new();
        for round in 0..2 {
            for shard in 0..SHARDS {
                let device = device_on(node, shard, &format!("r{round}s"));
                let key = SigningKey::from_bytes(&[shard as u8 + 10 * round as u8 + 1; 32]);
                let registered = Entry::Identity(IdentityChange::DeviceRegistered {
                    org: org.clone(),
                    device: device.clone(),
                    public_key: key.verifying_key().to_bytes(),
                    at_ms: 0,
                    active_from_ms: 0,
                });
                node.append(&org, vec![registered]).await.unwrap();
                let mut client = DeviceClient::new(device.clone(), key);
                for _ in 0..3 {
                    let batch = Entry::Readings(client.sign(readings(5)));
                    node.append(&device, vec![batch]).await.unwrap();
                }
                if shard == 1 {
                    node.append(&device, vec![verdict(VerdictKind::Suspend, &device)])
                        .await
                        .unwrap();
                }
                let rotated = Entry::Identity(IdentityChange::KeyRotated {
                    org: org.clone(),
                    device: device.clone(),
                    public_key: SigningKey::from_bytes(&[99; 32]).verifying_key().to_bytes(),
                    at_ms: 1_700_000_100_000,
                });
                node.append(&org, vec![rotated]).await.unwrap();
            }
            let lot = format!("urn:epc:id:sgtin:4012345.011111.{round}");
            node.append(
                &lot,
                vec![event(&format!("urn:uuid:e{round}"), &lot, "first")],
            )
            .await
            .unwrap();
            // A correction: a second event under the same eventID.
            node.append(
                &lot,
                vec![event(&format!("urn:uuid:e{round}"), &lot, "second")],
            )
            .await
            .unwrap();
            node.append(&lot, vec![verdict(VerdictKind::Quarantine, &lot)])
                .await
                .unwrap();
            if round == 0 {
                halfway = node.shards().iter().map(|s| s.committed()).collect();
            }
        }
        halfway
    }

    fn whole(node: &Node) -> Derived {
        let mut d = Derived::new(node.shards().len());
        let all: Vec<u64> = node.shards().iter().map(|s| s.committed()).collect();
        d.catch_up(node, &all).unwrap();
        d
    }

    fn assert_same(a: &Derived, b: &Derived) {
        assert_eq!(a.identity, b.identity);
        assert_eq!(a.events, b.events);
        // The same entries; a checkpoint and its tail fold them in another
        // order than one pass over the shards, to the same state.
        let sorted = |d: &Derived| {
            let mut s = d.sources.clone();
            s.sort();
            s
        };
        assert_eq!(sorted(a), sorted(b));
        assert_eq!(a.positions, b.positions);
    }

    #[test]
    fn a_checkpoint_and_the_tail_give_the_state_the_whole_logs_give() {
        let dir = tempfile::tempdir().unwrap();
        let node = open(dir.path());
        let halfway = runtime().block_on(write_world(&node));
        let full = whole(&node);
        assert_eq!(full.identity.devices.len(), 2 * SHARDS as usize);
        assert!(full.identity.devices.values().all(|d| d.next_seq == 15));
        assert_eq!(full.events.len(), 2);
        assert!(full.events.values().all(|locs| locs.len() == 2));

        assert!(Derived::load(&node).is_none(), "no checkpoint yet");
        let mut first_half = Derived::new(node.shards().len());
        first_half.catch_up(&node, &halfway).unwrap();
        first_half.save(&node).unwrap();
        let mut loaded = Derived::load(&node).expect("the checkpoint matches the logs");
        assert_same(&loaded, &first_half);
        let tail = loaded.catch_up(&node, &full.positions).unwrap();
        assert_eq!(
            tail,
            full.positions.iter().sum::<u64>() - halfway.iter().sum::<u64>()
        );
        assert_same(&loaded, &full);

        // Ingest opens from it and reads only the tail.
        let ingest = Ingest::open(Arc::clone(&node), Limits::default()).unwrap();
        let opened = ingest.opened();
        assert!(opened.from_checkpoint);
        assert_eq!(opened.scanned, tail);
        assert_eq!(*ingest.identity.read().unwrap(), full.identity);
        drop(ingest);

        // A damaged checkpoint is not used.
        let path = checkpoint::path(node.data_dir(), NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Derived::load(&node).is_none());
        let ingest = Ingest::open(Arc::clone(&node), Limits::default()).unwrap();
        assert!(!ingest.opened().from_checkpoint);
        assert_eq!(ingest.opened().scanned, ingest.opened().entries);
        assert_eq!(*ingest.identity.read().unwrap(), full.identity);
    }

    #[test]
    fn a_device_homed_before_its_organisation_keeps_its_sequence_and_suspension_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let node = open(dir.path());
        let org = rt.block_on(org_on(&node, 3));
        let device = device_on(&node, 0, "early");
        let key = SigningKey::from_bytes(&[7; 32]);
        let who = Principal {
            org: org.clone(),
            role: Role::Partner,
        };
        let mut client = DeviceClient::new(device.clone(), key.clone());
        let sent = client.sign(readings(4));
        {
            let ingest = Ingest::open(Arc::clone(&node), Limits::default()).unwrap();
            rt.block_on(ingest.register_device(
                &who,
                &device,
                key.verifying_key(),
                Some(0),
                api::idempotency::Attempt::First,
            ))
            .unwrap();
            rt.block_on(ingest.submit_batches(&who, vec![sent.clone()]))
                .unwrap();
        }
        let replay = |ingest: &Ingest| rt.block_on(ingest.submit_batches(&who, vec![sent.clone()]));
        let ingest = Ingest::open(Arc::clone(&node), Limits::default()).unwrap();
        assert!(
            matches!(
                replay(&ingest),
                Err(crate::ApiError::ReplayedSequence { expected: 4, .. })
            ),
            "a replay after a restart is refused"
        );
        ingest.checkpoint().unwrap();
        rt.block_on(node.append(&device, vec![verdict(VerdictKind::Suspend, &device)]))
            .unwrap();
        drop(ingest);
        let ingest = Ingest::open(Arc::clone(&node), Limits::default()).unwrap();
        assert!(ingest.opened().from_checkpoint);
        let d = ingest.device(&device).unwrap();
        assert_eq!(d.next_seq, 4);
        assert!(d.suspended.is_some(), "the suspension after the checkpoint");
        assert!(matches!(
            replay(&ingest),
            Err(crate::ApiError::DeviceSuspended { .. })
        ));
    }
}
