//! Reading the ledger as a verifier does: an entry's bytes by its place or its
//! id, the signed heads by size, and the proofs between them. Content -> id ->
//! inclusion proof -> signed head -> the key document: every step is here.

use std::sync::Arc;

use analytics::lineage::At;

use base64::Engine;
use ledger::entry::Entry;
use ledger::{Digest, SignedTreeHead};
use serde::{Deserialize, Serialize};
use shards::Node;
use utoipa::ToSchema;

pub use api::answer::EntryRefJson;
use api::problem::ApiError;

/// Sizes at which a shard's log signed heads, in order (each one's head is
/// at `/v1/shards/{shard}/heads/{size}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedSizesJson {
    pub shard: u32,
    pub sizes: Vec<u64>,
    /// The next signed size after `sizes`: ask again with `from` set to it.
    /// None when `sizes` reaches the newest head.
    pub next: Option<u64>,
}

/// A signed tree head.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeadJson {
    pub shard: u32,
    /// The shard log's ed25519 public key, hex. Check it against the node's key
    /// document (`/.well-known/coldtrail/keys`), not against this answer.
    pub public_key: String,
    pub log_id: String,
    pub size: u64,
    pub root: String,
    pub timestamp_ms: i64,
    pub signature: String,
}

impl HeadJson {
    pub fn new(shard: u32, key: &ed25519_dalek::VerifyingKey, h: &SignedTreeHead) -> HeadJson {
        HeadJson {
            shard,
            public_key: hex::encode(key.as_bytes()),
            log_id: h.head.log_id.to_hex(),
            size: h.head.size,
            root: h.head.root.to_hex(),
            timestamp_ms: h.head.timestamp_ms,
            signature: hex::encode(h.signature),
        }
    }
}

/// An entry's inclusion proof under a signed head.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProofJson {
    pub shard: u32,
    pub index: u64,
    pub id: String,
    /// Sibling hashes, leaf side first, hex.
    pub proof: Vec<String>,
    pub head: HeadJson,
    /// When the node publishes a witness policy: the newest checkpoint
    /// holding the entry that a quorum of its witnesses cosigned, and the
    /// entry's proof under it (absent until one does; cosigning runs about
    /// once a second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<WitnessedJson>,
}

/// An entry's inclusion in a checkpoint its log's witnesses cosigned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WitnessedJson {
    /// The checkpoint (C2SP `tlog-checkpoint` text): signed by the shard's
    /// log key, then one cosignature line per witness that vouched for it.
    pub checkpoint: String,
    /// Its tree size.
    pub size: u64,
    /// Sibling hashes of the entry's audit path up to the checkpoint's root,
    /// leaf side first, hex.
    pub proof: Vec<String>,
    /// The names of the policy's witnesses whose cosignatures are on the
    /// checkpoint and check (for reading; a client checks them itself).
    pub witnesses: Vec<String>,
}

/// A consistency proof between two sizes of a shard's log, with the heads
/// the log signed at those sizes (absent where it signed none at exactly that size).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyJson {
    pub shard: u32,
    pub first: u64,
    pub second: u64,
    pub first_root: String,
    pub second_root: String,
    pub proof: Vec<String>,
    pub first_head: Option<HeadJson>,
    pub second_head: Option<HeadJson>,
}

/// The other network members whose logs this node mirrors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembersJson {
    /// By name; empty on a node that is not a member of a network.
    pub members: Vec<MemberJson>,
}

/// One member's logs as this node's mirrors hold them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberJson {
    pub member: String,
    pub shards: Vec<MirroredJson>,
}

/// One shard log of a member, as this node's mirror holds it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MirroredJson {
    pub shard: u32,
    /// Entries held, each checked under a head the member's log key signed.
    pub entries: u64,
    /// The newest head of it verified (under the member's log key).
    pub head: Option<HeadJson>,
    /// Set once the member's log key signed two histories of this log:
    /// the mirror follows it no further.
    pub fork: Option<ForkJson>,
}

/// Two heads one log key signed that cannot both be true.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ForkJson {
    /// The head the mirror held.
    pub held: HeadJson,
    /// The head that contradicts it.
    pub conflicting: HeadJson,
}

/// One ledger entry: its canonical bytes (what its id hashes), and a decoded view.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryJson {
    pub shard: u32,
    pub index: u64,
    /// The entry's id: its Merkle leaf hash, hex. Recompute it from `bytes`.
    pub id: String,
    /// `readings`, `custody`, `identity`, `receipt-out`, `receipt-in`, `verdict`, `checkpoint`.
    pub kind: String,
    /// The canonical bytes, standard base64 with padding.
    pub bytes: String,
    /// The entry decoded, for reading; it proves nothing the bytes do not.
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
    /// The path (on this node) where its inclusion proof is served; the
    /// proof itself is the `proof` list of that answer.
    pub proof_url: String,
}

/// One shard's log key, as a key set names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShardKeyJson {
    pub shard: u32,
    pub public_key: String,
    /// BLAKE3 (log id domain) of the key: what each of its heads names.
    pub log_id: String,
}

/// One key set of the chain: the decoded fields, and the signed bytes they
/// come from (verify those; the fields are for reading).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeySetJson {
    pub sequence: u64,
    /// The digest of the set this one replaces, hex.
    pub previous: Option<String>,
    pub issued_at_ms: i64,
    pub operator_key: String,
    pub shards: Vec<ShardKeyJson>,
    /// Standard base64 of the signed set: the set's canonical bytes
    /// (length-prefixed), the operator's signature, the optional endorsement.
    pub signed: String,
    pub signature: String,
    /// The previous operator key's signature, when this set rotated it.
    pub endorsement: Option<String>,
    /// The node's witnesses and how many must cosign a checkpoint, when it
    /// has any (key set version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<WitnessPolicyJson>,
}

/// A key set's witness policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WitnessPolicyJson {
    pub quorum: u32,
    pub witnesses: Vec<WitnessKeyJson>,
}

/// A witness a key set names: its key name and Ed25519 public key, hex.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WitnessKeyJson {
    pub name: String,
    pub public_key: String,
}

/// The node's published log keys: every key set its operator key signed,
/// oldest first. Pin `operator_key` once; the newest set names every shard's key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeysDocument {
    /// The operator key of the newest set, hex.
    pub operator_key: String,
    pub key_sets: Vec<KeySetJson>,
}

impl From<&ledger::keyset::SignedKeySet> for KeySetJson {
    fn from(s: &ledger::keyset::SignedKeySet) -> KeySetJson {
        KeySetJson {
            sequence: s.set.sequence,
            previous: s.set.previous.map(|d| d.to_hex()),
            issued_at_ms: s.set.issued_at_ms,
            operator_key: hex::encode(s.set.operator_key),
            shards: s
                .set
                .shards
                .iter()
                .map(|k| ShardKeyJson {
                    shard: k.shard,
                    public_key: hex::encode(k.public_key),
                    log_id: k.log_id().map(|d| d.to_hex()).unwrap_or_default(),
                })
                .collect(),
            signed: base64::engine::general_purpose::STANDARD.encode(s.to_bytes()),
            signature: hex::encode(s.signature),
            endorsement: s.endorsement.map(hex::encode),
            witnesses: s.set.witnesses.as_ref().map(|p| WitnessPolicyJson {
                quorum: p.quorum,
                witnesses: p
                    .witnesses
                    .iter()
                    .map(|w| WitnessKeyJson {
                        name: w.name.clone(),
                        public_key: hex::encode(w.public_key),
                    })
                    .collect(),
            }),
        }
    }
}

impl KeysDocument {
    pub fn new(chain: &[ledger::keyset::SignedKeySet]) -> KeysDocument {
        KeysDocument {
            operator_key: chain
                .last()
                .map(|s| hex::encode(s.set.operator_key))
                .unwrap_or_default(),
            key_sets: chain.iter().map(KeySetJson::from).collect(),
        }
    }
}

/// The verifier's reads of a node's logs: entries by place and by id, heads
/// by size, inclusion and consistency proofs, the key document, and a
/// captured event as its document. Reads only; each failure a refusal.
pub struct Reads {
    node: Arc<Node>,
    /// The witnesses' cosignatures the node collected, served with its
    /// checkpoints (none when no witness is configured).
    cosigned: Option<Arc<witness::cosigned::Cosigned>>,
    /// Per log, the newest checkpoint found quorate, so the proofs of a
    /// page's facts do not sign and verify it again each (see `witnessed`).
    quorate: std::sync::Mutex<std::collections::HashMap<ledger::Digest, Quorate>>,
    /// The node's verified mirrors of other members' logs (none for a node
    /// on its own).
    mirrors: shards::mirror::Mirrors,
}

/// A checkpoint checked against a policy: valid while its size's lines and
/// the policy are the ones it was checked with.
#[derive(Clone)]
struct Quorate {
    size: u64,
    lines: usize,
    policy: ledger::keyset::WitnessPolicy,
    text: String,
    vouched: Vec<String>,
}

impl Reads {
    pub fn new(node: Arc<Node>) -> Reads {
        Reads {
            node,
            cosigned: None,
            quorate: Default::default(),
            mirrors: Default::default(),
        }
    }

    /// The same reads, answering for other members' logs from `mirrors`.
    pub fn with_mirrors(mut self, mirrors: shards::mirror::Mirrors) -> Reads {
        self.mirrors = mirrors;
        self
    }

    /// Every member this node mirrors, each shard's copy: its size, the
    /// newest head verified, any fork.
    pub fn members(&self) -> MembersJson {
        MembersJson {
            members: self
                .mirrors
                .members()
                .into_iter()
                .map(|(member, mirrors)| MemberJson {
                    member,
                    shards: mirrors
                        .iter()
                        .zip(0u32..)
                        .map(|(m, shard)| {
                            let key = m.key();
                            MirroredJson {
                                shard,
                                entries: m.len(),
                                head: m.head().map(|h| HeadJson::new(shard, &key, &h)),
                                fork: m.fork().map(|f| ForkJson {
                                    held: HeadJson::new(shard, &key, &f.held),
                                    conflicting: HeadJson::new(shard, &key, &f.conflicting),
                                }),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The node's mirror of `member`'s log `shard`.
    fn mirror(&self, member: &str, shard: u32) -> Result<Arc<shards::mirror::Mirror>, ApiError> {
        self.mirrors.get(member, shard).ok_or_else(|| {
            ApiError::NotFound(format!(
                "this node keeps no mirror of member {member:?}'s shard {shard}"
            ))
        })
    }

    /// The newest head of `member`'s log `shard` that this node's mirror
    /// verified: signed by that member's log key (named in the member's key
    /// sets, whose operator key the network document names), not by this node.
    pub fn member_head(&self, member: &str, shard: u32) -> Result<HeadJson, ApiError> {
        let m = self.mirror(member, shard)?;
        let head = m.head().ok_or_else(|| {
            ApiError::NotFound(format!(
                "no head of member {member:?}'s shard {shard} verified yet"
            ))
        })?;
        Ok(HeadJson::new(shard, &m.key(), &head))
    }

    /// Entry `index` of `member`'s log `shard`, from this node's mirror of
    /// it, decoded, and its canonical bytes.
    pub fn member_entry_with_bytes(
        &self,
        member: &str,
        shard: u32,
        index: u64,
    ) -> Result<(Entry, Vec<u8>), ApiError> {
        let m = self.mirror(member, shard)?;
        let held = m.len();
        if index >= held {
            return Err(ApiError::NotFound(format!(
                "this node's mirror of member {member:?}'s shard {shard} holds {held} entries, not entry {index}"
            )));
        }
        let bytes = m.entry(index)?;
        let entry = Entry::from_bytes(&bytes).map_err(|e| {
            ApiError::Unavailable(format!(
                "entry {index} of the mirror of member {member:?}'s shard {shard} does not decode ({e}); run `coldtrail verify` on it"
            ))
        })?;
        Ok((entry, bytes))
    }

    /// [`Reads::entry_json`] for an entry of `member`'s log `shard`.
    pub fn member_entry_json(
        &self,
        member: &str,
        shard: u32,
        index: u64,
        entry: &Entry,
        bytes: &[u8],
    ) -> EntryJson {
        EntryJson {
            proof_url: format!("/v1/members/{member}/shards/{shard}/entries/{index}/proof"),
            ..self.entry_json(shard, index, entry, bytes)
        }
    }

    /// Inclusion proof of entry `index` of `member`'s log `shard` under the
    /// newest head of it this node's mirror verified: provable here while
    /// that member's node is down.
    pub fn member_proof(
        &self,
        member: &str,
        shard: u32,
        index: u64,
    ) -> Result<ProofJson, ApiError> {
        let m = self.mirror(member, shard)?;
        let head = m.head().filter(|h| h.head.size > index).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no verified head of member {member:?}'s shard {shard} holds entry {index} yet"
            ))
        })?;
        let proof = m.inclusion_proof(index, head.head.size)?;
        Ok(ProofJson {
            shard,
            index,
            id: ledger::entry_id(&m.entry(index)?).to_hex(),
            proof: proof.iter().map(|d| d.to_hex()).collect(),
            head: HeadJson::new(shard, &m.key(), &head),
            witnessed: None,
        })
    }

    /// The same reads, serving checkpoints with the cosignatures in `c`.
    pub fn with_cosigned(mut self, c: Arc<witness::cosigned::Cosigned>) -> Reads {
        self.cosigned = Some(c);
        self
    }

    /// The node's key document.
    pub fn keys_document(&self) -> KeysDocument {
        KeysDocument::new(&self.node.key_sets())
    }

    fn shard_by_id(&self, shard: u32) -> Result<Arc<shards::Shard>, ApiError> {
        Ok(Arc::clone(
            self.node.shard(shard).map_err(crate::shard_refusal)?,
        ))
    }

    /// The shard's newest signed head, signed now if the log grew since.
    pub async fn latest_head(&self, shard: u32) -> Result<HeadJson, ApiError> {
        let s = self.shard_by_id(shard)?;
        let head = s
            .head_covering(s.committed())
            .await
            .map_err(crate::shard_refusal)?;
        Ok(HeadJson::new(shard, &s.public_key(), &head))
    }

    /// The sizes at which the shard's log signed heads, from `from` on, at
    /// most `limit` of them, and the next signed size after them (where a
    /// listing continues), so a verifier can fetch any head it needs.
    pub fn signed_sizes(
        &self,
        shard: u32,
        from: u64,
        limit: usize,
    ) -> Result<SignedSizesJson, ApiError> {
        let s = self.shard_by_id(shard)?;
        let mut sizes = Vec::new();
        let mut at = from;
        let mut next = None;
        while let Some(h) = s.store().first_head_covering(at)? {
            if sizes.len() == limit {
                next = Some(h.head.size);
                break;
            }
            sizes.push(h.head.size);
            at = h.head.size + 1;
        }
        Ok(SignedSizesJson { shard, sizes, next })
    }

    /// The shard's head as a C2SP checkpoint (`ledger::note`) signed by its
    /// log key, with the witnesses' cosignatures collected for it: the one
    /// signed at exactly `size` entries, the newest with at least
    /// `cosigned` cosignatures, or the newest (signed now if the log grew).
    pub async fn checkpoint(
        &self,
        shard: u32,
        size: Option<u64>,
        cosigned: Option<usize>,
    ) -> Result<String, ApiError> {
        let s = self.shard_by_id(shard)?;
        let log_id = ledger::head::log_id(&s.public_key());
        let size = match (size, cosigned) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidParameter {
                    name: "cosigned".into(),
                    message: "give either size or cosigned".into(),
                })
            }
            (None, Some(k)) => Some(
                self.cosigned
                    .as_ref()
                    .and_then(|c| c.newest(&log_id, k))
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "no checkpoint of shard {shard} holds {k} witness cosignatures yet"
                        ))
                    })?,
            ),
            (size, None) => size,
        };
        let head = match size {
            Some(size) => signed_at(&s, size)?,
            None => s
                .head_covering(s.committed())
                .await
                .map_err(crate::shard_refusal)?,
        };
        let mut text = s.signed_checkpoint(&head).map_err(crate::shard_refusal)?;
        if let Some(c) = &self.cosigned {
            for line in c.lines(&head.head.log_id, head.head.size) {
                text.push_str(&line);
            }
        }
        Ok(text)
    }

    /// The first head the shard's log signed at exactly `size` entries.
    pub fn head_at(&self, shard: u32, size: u64) -> Result<HeadJson, ApiError> {
        let s = self.shard_by_id(shard)?;
        let head = signed_at(&s, size)?;
        Ok(HeadJson::new(shard, &s.public_key(), &head))
    }

    /// Inclusion proof of entry `index`: under the head signed at `size`, or
    /// under a current head.
    pub async fn proof(
        &self,
        shard: u32,
        index: u64,
        size: Option<u64>,
    ) -> Result<ProofJson, ApiError> {
        let s = self.shard_by_id(shard)?;
        let committed = s.committed();
        if index >= committed {
            return Err(ApiError::NotFound(format!(
                "shard {shard} has no entry {index} (it has {committed})"
            )));
        }
        let head = match size {
            Some(size) if size <= index => {
                return Err(ApiError::InvalidParameter {
                    name: "size".into(),
                    message: format!(
                        "a tree of {size} entries does not hold entry {index}; give a size above {index}"
                    ),
                })
            }
            Some(size) => signed_at(&s, size)?,
            None => s.head_covering(index + 1).await.map_err(crate::shard_refusal)?,
        };
        let store = s.store();
        let proof = store.inclusion_proof(index, head.head.size)?;
        Ok(ProofJson {
            shard,
            index,
            id: store.entry_id(index)?.to_hex(),
            proof: proof.iter().map(|d| d.to_hex()).collect(),
            head: HeadJson::new(shard, &s.public_key(), &head),
            witnessed: self.witnessed(&s, index)?,
        })
    }

    /// Entry `index` under the newest checkpoint of its shard that a quorum
    /// of the published policy's witnesses cosigned, if one holds it. Only
    /// the few newest sizes with enough lines are tried: lines of witnesses
    /// no longer in the policy can make a size look cosigned when it is not.
    fn witnessed(&self, s: &shards::Shard, index: u64) -> Result<Option<WitnessedJson>, ApiError> {
        let (Some(cosigned), Some(policy)) = (&self.cosigned, self.node.witness_policy()) else {
            return Ok(None);
        };
        let key = s.public_key();
        let witnesses = policy.keys();
        let log_id = ledger::head::log_id(&key);
        for (size, lines) in cosigned.newest_first(&log_id, policy.quorum as usize, 8) {
            if size <= index {
                break;
            }
            let held = self
                .quorate
                .lock()
                .expect("quorate lock")
                .get(&log_id)
                .cloned();
            let q = match held {
                Some(q) if q.size == size && q.lines == lines.len() && q.policy == policy => q,
                _ => {
                    let head = signed_at(s, size)?;
                    let mut text = s.signed_checkpoint(&head).map_err(crate::shard_refusal)?;
                    lines.iter().for_each(|l| text.push_str(l));
                    let Ok((_, vouched)) = ledger::note::check_cosigned(&text, &key, &witnesses)
                    else {
                        continue;
                    };
                    if vouched.len() < policy.quorum as usize {
                        continue;
                    }
                    let q = Quorate {
                        size,
                        lines: lines.len(),
                        policy: policy.clone(),
                        text,
                        vouched,
                    };
                    self.quorate
                        .lock()
                        .expect("quorate lock")
                        .insert(log_id, q.clone());
                    q
                }
            };
            let proof = s.store().inclusion_proof(index, size)?;
            return Ok(Some(WitnessedJson {
                checkpoint: q.text,
                size,
                proof: proof.iter().map(|d| d.to_hex()).collect(),
                witnesses: q.vouched,
            }));
        }
        Ok(None)
    }

    /// Consistency proof between the trees of `first` and `second` entries.
    pub fn consistency(
        &self,
        shard: u32,
        first: u64,
        second: u64,
    ) -> Result<ConsistencyJson, ApiError> {
        let s = self.shard_by_id(shard)?;
        let committed = s.committed();
        if first == 0 {
            return Err(ApiError::InvalidParameter {
                name: "first".into(),
                message: "the empty tree is consistent with every tree; give a size of at least 1"
                    .into(),
            });
        }
        if first > second {
            return Err(ApiError::InvalidParameter {
                name: "first".into(),
                message: format!("{first} is larger than second ({second}); a log only grows"),
            });
        }
        if second > committed {
            return Err(ApiError::NotFound(format!(
                "shard {shard} has {committed} entries, not {second}"
            )));
        }
        let store = s.store();
        let key = s.public_key();
        let signed = |size: u64| -> Result<Option<HeadJson>, ApiError> {
            Ok(store
                .first_head_covering(size)?
                .filter(|h| h.head.size == size)
                .map(|h| HeadJson::new(shard, &key, &h)))
        };
        let root = |size: u64| -> Result<String, ApiError> { Ok(store.root(size)?.to_hex()) };
        Ok(ConsistencyJson {
            shard,
            first,
            second,
            first_root: root(first)?,
            second_root: root(second)?,
            proof: store
                .consistency_proof(first, second)?
                .iter()
                .map(|d| d.to_hex())
                .collect(),
            first_head: signed(first)?,
            second_head: signed(second)?,
        })
    }

    /// Entry `index` of `shard`: its canonical bytes.
    pub fn entry_bytes(&self, shard: u32, index: u64) -> Result<Vec<u8>, ApiError> {
        let s = self.shard_by_id(shard)?;
        let committed = s.committed();
        if index >= committed {
            return Err(ApiError::NotFound(format!(
                "shard {shard} has no entry {index} (it has {committed})"
            )));
        }
        Ok(s.store().entry(index)?)
    }

    /// Entry `index` of `shard`, decoded, and its canonical bytes.
    pub fn entry_with_bytes(&self, shard: u32, index: u64) -> Result<(Entry, Vec<u8>), ApiError> {
        let bytes = self.entry_bytes(shard, index)?;
        let entry = Entry::from_bytes(&bytes).map_err(|e| {
            ApiError::Unavailable(format!(
                "entry {index} of shard {shard} does not decode ({e}); run `coldtrail verify`"
            ))
        })?;
        Ok((entry, bytes))
    }

    /// Entry `index` of `shard` (`entry`, decoded from `bytes`): bytes, id
    /// and decoded view.
    pub fn entry_json(&self, shard: u32, index: u64, entry: &Entry, bytes: &[u8]) -> EntryJson {
        EntryJson {
            shard,
            index,
            id: ledger::entry_id(bytes).to_hex(),
            kind: entry.kind_name().to_string(),
            bytes: base64::engine::general_purpose::STANDARD.encode(bytes),
            entry: crate::view::entry_view(entry),
            proof_url: format!("/v1/shards/{shard}/entries/{index}/proof"),
        }
    }

    /// Where the entry with this id is: its lowest index on the lowest shard
    /// holding it. Ids are public: anyone may ask.
    pub fn locate(&self, id: &str) -> Result<(u32, u64), ApiError> {
        let digest = Digest::from_hex(id).ok_or_else(|| ApiError::InvalidParameter {
            name: "id".into(),
            message: format!("{id:?} is not an entry id; give its 64 hex digits"),
        })?;
        for s in self.node.shards() {
            if let Some(index) = s.store().find(&digest)? {
                if index < s.committed() {
                    return Ok((s.id(), index));
                }
            }
        }
        Err(ApiError::NotFound(format!(
            "no shard of this node holds an entry with id {id}"
        )))
    }

    /// When entry `index` of `shard` was recorded: the time of the first
    /// head its log signed that covers it (the log's signed statement that
    /// it holds the entry, made within a head interval of its commit, and
    /// provable with that head). `None` while no head covers it yet.
    pub fn record_time(&self, shard: u32, index: u64) -> Result<Option<i64>, ApiError> {
        let s = self.shard_by_id(shard)?;
        Ok(s.store()
            .first_head_covering(index + 1)?
            .map(|h| h.head.timestamp_ms))
    }

    /// Per shard, the size a head must cover so that each of `entries`
    /// (shard, index) has a record time, where the newest head does not.
    fn uncovered(&self, entries: &[At]) -> Result<Vec<(Arc<shards::Shard>, u64)>, ApiError> {
        let mut need = std::collections::BTreeMap::new();
        for at in entries {
            let size = need.entry(at.shard).or_insert(0);
            *size = (*size).max(at.index + 1);
        }
        let mut out = Vec::new();
        for (shard, size) in need {
            let s = self.shard_by_id(shard)?;
            if s.store().latest_head().is_none_or(|h| h.head.size < size) {
                out.push((s, size));
            }
        }
        Ok(out)
    }

    /// Waits until signed heads cover `entries` (each within the log's head
    /// gap: the heads asked for are shared), so every one has its record
    /// time: an answer never shows an event without one.
    pub async fn cover(&self, entries: &[At]) -> Result<(), ApiError> {
        for (s, size) in self.uncovered(entries)? {
            s.head_covering(size).await.map_err(crate::shard_refusal)?;
        }
        Ok(())
    }

    /// [`Reads::cover`] for a thread outside the async runtime.
    pub fn cover_blocking(&self, entries: &[At]) -> Result<(), ApiError> {
        for (s, _) in self.uncovered(entries)? {
            // Asked after the entries were committed: the head covers them.
            s.store().request_head_soon()?.wait()?;
        }
        Ok(())
    }

    /// The entries recorded at or after `from_ms` and before `to_ms`, per
    /// shard: record times never go back along a log (head times do not),
    /// so each bound is one index, found by bisection. An entry no head
    /// covers yet counts as recorded after every bound.
    pub fn record_window(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<analytics::lineage::query::RecordWindow, ApiError> {
        let mut w = analytics::lineage::query::RecordWindow::default();
        for s in self.node.shards() {
            // The first index recorded at or after `t`.
            let first_at = |t: i64| -> Result<u64, ApiError> {
                let (mut lo, mut hi) = (0, s.committed());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let at = s.store().first_head_covering(mid + 1)?;
                    if at.is_some_and(|h| h.head.timestamp_ms < t) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                Ok(lo)
            };
            w.from.push(from_ms.map(first_at).transpose()?.unwrap_or(0));
            w.to.push(to_ms.map(first_at).transpose()?);
        }
        Ok(w)
    }

    /// The captured events at `entries`, each as [`Reads::event_document`]
    /// gives it (cover them first for their record times).
    pub fn event_documents(&self, entries: &[At]) -> Result<Vec<serde_json::Value>, ApiError> {
        entries
            .iter()
            .map(|a| self.event_document(a.shard, a.index))
            .collect()
    }

    /// The captured event stored as entry `index` of `shard`, as received,
    /// with the entry it rests on (`coldtrail:entry`) so a reader can go on
    /// to its proof, and its `recordTime` (see [`Reads::record_time`]) once
    /// a head covers it.
    pub fn event_document(&self, shard: u32, index: u64) -> Result<serde_json::Value, ApiError> {
        let bytes = self.entry_bytes(shard, index)?;
        let Ok(Entry::Custody(c)) = Entry::from_bytes(&bytes) else {
            return Err(ApiError::Unavailable(format!(
                "entry {shard}/{index} is not an event"
            )));
        };
        let mut event: serde_json::Value = serde_json::from_slice(&c.document)
            .map_err(|e| ApiError::Unavailable(format!("stored event {}: {e}", c.event_id)))?;
        let recorded = self.record_time(shard, index)?;
        if let Some(fields) = event.as_object_mut() {
            // The repository's to set (EPCIS 2.0 §7.4.1): whatever the
            // capturing client wrote there is not the ledger's record time.
            match recorded.and_then(analytics::lineage::query::rfc3339) {
                Some(t) => fields.insert("recordTime".into(), t.into()),
                None => fields.remove("recordTime"),
            };
            fields.insert(
                crate::view::ENTRY_EXTENSION.into(),
                crate::view::entry_ref(&ledger::entry::EntryRef {
                    shard,
                    index,
                    id: ledger::entry_id(&bytes),
                }),
            );
        }
        Ok(event)
    }
}

/// The first head `shard` signed at exactly `size` entries.
fn signed_at(s: &shards::Shard, size: u64) -> Result<SignedTreeHead, ApiError> {
    match s.store().first_head_covering(size)? {
        Some(h) if h.head.size == size => Ok(h),
        other => Err(ApiError::NoSignedHead {
            shard: s.id(),
            size,
            next: other.map(|h| h.head.size),
        }),
    }
}
