//! Entries, their proofs and the signed heads they rest on: what every fact in the schema points to.

use super::*;

/// A ledger entry: where a fact is recorded. Its `proof` shows it is in the
/// shard's log under a head the shard's key signed.
#[derive(Debug, Clone, Copy)]
pub struct Entry(pub At);

impl Entry {
    /// The entry's proof, through the request's batching loader.
    pub async fn proof_of(&self, ctx: &Context<'_>) -> Answer<Proof> {
        let p = loader(ctx)
            .load_one(ProofKey::from(self.0))
            .await?
            .ok_or_else(|| refusal(api::ApiError::NotFound("no such entry".into())))?;
        Ok(Proof(p))
    }
}

#[Object]
impl Entry {
    /// The shard whose log holds the entry.
    pub(super) async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// Its position in that log, from 0.
    pub(super) async fn index(&self) -> u64 {
        self.0.index
    }
    /// The entry id: BLAKE3 (leaf domain) of its canonical bytes, hex.
    pub(super) async fn id(&self) -> String {
        ledger::Digest(self.0.id).to_hex()
    }
    /// Its inclusion proof under the shard's newest signed head.
    pub(super) async fn proof(&self, ctx: &Context<'_>) -> Answer<Proof> {
        self.proof_of(ctx).await
    }
}

/// An inclusion proof: the sibling hashes from the entry's leaf to the root
/// of a signed head. Check it as VERIFYING.md says.
pub struct Proof(pub Arc<ProofJson>);

#[Object]
impl Proof {
    /// The shard whose log holds the entry.
    pub(super) async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// The entry's position in that log, from 0.
    pub(super) async fn index(&self) -> u64 {
        self.0.index
    }
    /// The entry id, hex.
    pub(super) async fn id(&self) -> &str {
        &self.0.id
    }
    /// Sibling hashes, leaf side first, hex.
    pub(super) async fn path(&self) -> &[String] {
        &self.0.proof
    }
    /// The signed head the path leads to.
    pub(super) async fn head(&self) -> Head {
        Head(self.0.head.clone())
    }
    /// When the node's key set names a witness policy: the newest checkpoint
    /// a quorum of its witnesses cosigned that holds the entry, with the
    /// entry's path to its root. Null without a policy, or until a quorum
    /// cosigned a checkpoint this large (about once a second).
    pub(super) async fn witnessed(&self) -> Option<Witnessed> {
        self.0.witnessed.clone().map(Witnessed)
    }
}

/// An entry's inclusion in a checkpoint its log's witnesses cosigned.
/// Check it as VERIFYING.md §9 step 4 says: the log's signature, a quorum
/// of cosignatures by the policy's keys, the path to the checkpoint's root.
pub struct Witnessed(pub readstate::verifier::WitnessedJson);

#[Object]
impl Witnessed {
    /// The checkpoint as C2SP signed-note text: signed by the shard's log
    /// key, then one cosignature line per witness that vouched for it.
    pub(super) async fn checkpoint(&self) -> &str {
        &self.0.checkpoint
    }
    /// The checkpoint's tree size.
    pub(super) async fn size(&self) -> u64 {
        self.0.size
    }
    /// Sibling hashes from the entry's leaf to the checkpoint's root, leaf
    /// side first, hex.
    pub(super) async fn path(&self) -> &[String] {
        &self.0.proof
    }
    /// The names of the policy's witnesses whose cosignatures check (for
    /// reading: a client checks them itself).
    pub(super) async fn witnesses(&self) -> &[String] {
        &self.0.witnesses
    }
}

/// A signed tree head: a shard log's size and root, signed by its key.
pub struct Head(pub HeadJson);

#[Object]
impl Head {
    /// The shard whose log the head is of.
    pub(super) async fn shard(&self) -> u32 {
        self.0.shard
    }
    /// The log's ed25519 public key, hex: check it against the node's key
    /// document (`/.well-known/coldtrail/keys`), not against this answer.
    pub(super) async fn public_key(&self) -> &str {
        &self.0.public_key
    }
    /// The log id: BLAKE3 of the log's public key, hex.
    pub(super) async fn log_id(&self) -> &str {
        &self.0.log_id
    }
    /// Entries in the tree.
    pub(super) async fn size(&self) -> u64 {
        self.0.size
    }
    /// The Merkle root, hex.
    pub(super) async fn root(&self) -> &str {
        &self.0.root
    }
    /// When the head was signed.
    pub(super) async fn signed_at(&self) -> DateTime<Utc> {
        time(self.0.timestamp_ms)
    }
    /// The ed25519 signature over the encoded head, hex.
    pub(super) async fn signature(&self) -> &str {
        &self.0.signature
    }
}
