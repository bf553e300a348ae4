//! A node's published log keys: one document, signed by the node's operator
//! key, naming each shard's log key. A verifier pins the operator key once and
//! learns every shard's key from here, instead of trusting the key each head
//! arrives with.
//!
//! Key sets form a chain. Each names the digest of the one before it and
//! counts up from 0; a set whose operator key differs from its predecessor's
//! also carries the predecessor key's endorsement (its signature over the new
//! set), so a verifier that pinned an old operator key can follow a rotation
//! without trusting anything new on first sight.
//!
//! A set may also name the node's witnesses and how many of them must
//! cosign a checkpoint before a client trusts it (its witness policy): a
//! client that pinned the operator key learns whom to ask from the same
//! signed document, and a change of witnesses shows in the chain.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{Digest, Domain};
use crate::head::log_id;

/// The key-set encoding version of a set without a witness policy.
pub const KEYSET_VERSION: u8 = 1;
/// The version of a set with a witness policy: version 1's fields, then the
/// policy. A set without one is always written as version 1, so each set
/// has one encoding.
pub const KEYSET_VERSION_WITNESSED: u8 = 2;

/// One shard's log key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardKey {
    pub shard: u32,
    pub public_key: [u8; 32],
}

impl ShardKey {
    /// The id of the shard's log, which every head it signs names.
    pub fn log_id(&self) -> Option<Digest> {
        VerifyingKey::from_bytes(&self.public_key)
            .ok()
            .map(|k| log_id(&k))
    }
}

/// A witness a key set names: the key name its cosignature lines carry and
/// its Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub public_key: [u8; 32],
}

/// Whom a client asks to vouch for a checkpoint: `quorum` of `witnesses`
/// must have cosigned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPolicy {
    pub quorum: u32,
    /// Sorted by name, names and keys each distinct.
    pub witnesses: Vec<WitnessKey>,
}

impl WitnessPolicy {
    /// A policy, its witnesses sorted by name; refused with what to fix if
    /// it could not be published (see [`WitnessPolicy::check`]).
    pub fn new(quorum: u32, mut witnesses: Vec<WitnessKey>) -> Result<WitnessPolicy, String> {
        witnesses.sort_by(|a, b| a.name.cmp(&b.name));
        let p = WitnessPolicy { quorum, witnesses };
        p.check()?;
        Ok(p)
    }

    /// The witnesses' names and keys (the keys are checked by
    /// [`WitnessPolicy::check`]; one that is not a key is left out).
    pub fn keys(&self) -> Vec<(String, VerifyingKey)> {
        self.witnesses
            .iter()
            .filter_map(|w| {
                Some((
                    w.name.clone(),
                    VerifyingKey::from_bytes(&w.public_key).ok()?,
                ))
            })
            .collect()
    }

    /// At least one witness, a quorum from 1 to their number, names that a
    /// signature line can carry (C2SP `signed-note`: printable, no spaces or
    /// plus signs, at most 255 bytes) sorted and distinct, distinct valid
    /// Ed25519 keys.
    pub fn check(&self) -> Result<(), String> {
        let n = self.witnesses.len();
        if n == 0 {
            return Err("a witness policy names at least one witness".into());
        }
        if self.quorum == 0 || self.quorum as usize > n {
            return Err(format!(
                "a quorum of {} is not between 1 and the {n} witnesses named",
                self.quorum
            ));
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            if w.name.is_empty()
                || w.name.len() > 255
                || !w.name.chars().all(|c| c.is_ascii_graphic() && c != '+')
            {
                return Err(format!(
                    "witness name {:?} must be 1 to 255 printable ASCII characters without spaces or plus signs",
                    w.name
                ));
            }
            if VerifyingKey::from_bytes(&w.public_key).is_err() {
                return Err(format!(
                    "witness {}'s key is not an ed25519 public key",
                    w.name
                ));
            }
            if i > 0 && self.witnesses[i - 1].name >= w.name {
                return Err(format!(
                    "witnesses must be sorted by name, each named once ({} after {})",
                    w.name,
                    self.witnesses[i - 1].name
                ));
            }
            if self.witnesses[..i]
                .iter()
                .any(|o| o.public_key == w.public_key)
            {
                return Err(format!("witness {} has another witness's key", w.name));
            }
        }
        Ok(())
    }
}

/// What the operator key vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// 0 for a node's first set, then one more per change.
    pub sequence: u64,
    /// The digest of the set this one replaces (`None` only at sequence 0).
    pub previous: Option<Digest>,
    /// Unix epoch milliseconds when the set was issued.
    pub issued_at_ms: i64,
    pub operator_key: [u8; 32],
    /// One per shard, numbered from 0 without gaps.
    pub shards: Vec<ShardKey>,
    /// The node's witnesses, if it has any.
    pub witnesses: Option<WitnessPolicy>,
}

/// A key set with its operator's signature and, when the operator key
/// changed, the previous operator key's endorsement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedKeySet {
    pub set: KeySet,
    pub signature: [u8; 64],
    pub endorsement: Option<[u8; 64]>,
}

/// Why a key set or chain of them was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("key set {sequence}: {what}")]
    Invalid { sequence: u64, what: String },
    #[error("key set {sequence}: the operator signature does not verify")]
    BadSignature { sequence: u64 },
    #[error("key set {sequence}: the operator key changed but the previous operator key did not endorse the new set")]
    NotEndorsed { sequence: u64 },
    #[error("key set {sequence} does not follow the one before it: {what}")]
    BrokenChain { sequence: u64, what: String },
    #[error("the pinned operator key {pinned} signs no key set of this chain")]
    PinNotFound { pinned: String },
    #[error("no key sets")]
    Empty,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl KeySet {
    pub fn encode(&self, w: &mut Writer) {
        w.u8(match self.witnesses {
            None => KEYSET_VERSION,
            Some(_) => KEYSET_VERSION_WITNESSED,
        });
        w.varint(self.sequence);
        w.option(self.previous.as_ref(), |w, d| w.digest(d));
        w.svarint(self.issued_at_ms);
        w.fixed(&self.operator_key);
        w.seq(&self.shards, |w, s| {
            w.varint(u64::from(s.shard));
            w.fixed(&s.public_key);
        });
        if let Some(p) = &self.witnesses {
            w.varint(u64::from(p.quorum));
            w.seq(&p.witnesses, |w, k| {
                w.str(&k.name);
                w.fixed(&k.public_key);
            });
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<KeySet, DecodeError> {
        let version = r.u8("key set version")?;
        if version != KEYSET_VERSION && version != KEYSET_VERSION_WITNESSED {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: KEYSET_VERSION_WITNESSED,
            });
        }
        let mut set = KeySet {
            sequence: r.varint("key set sequence")?,
            previous: r.option("key set previous", |r| r.digest("key set previous"))?,
            issued_at_ms: r.svarint("key set time")?,
            operator_key: r.fixed("operator key")?,
            shards: r.seq("shard keys", 33, |r| {
                Ok(ShardKey {
                    shard: r.varint_as("shard number")?,
                    public_key: r.fixed("shard key")?,
                })
            })?,
            witnesses: None,
        };
        if version == KEYSET_VERSION_WITNESSED {
            let quorum = r.varint_as("witness quorum")?;
            // A name's length prefix and at least one byte, and its key.
            let witnesses = r.seq("witnesses", 34, |r| {
                Ok(WitnessKey {
                    name: r.string("witness name")?,
                    public_key: r.fixed("witness key")?,
                })
            })?;
            if witnesses.is_empty() {
                // Version 1 is the one encoding of a set without witnesses.
                return Err(DecodeError::Invalid {
                    what: "witness policy",
                    reason: "a version 2 key set names at least one witness",
                });
            }
            set.witnesses = Some(WitnessPolicy { quorum, witnesses });
        }
        Ok(set)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(80 + 40 * self.shards.len());
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes exactly one key set (canonical bytes only).
    pub fn from_bytes(bytes: &[u8]) -> Result<KeySet, DecodeError> {
        let mut r = Reader::new(bytes);
        let s = KeySet::decode(&mut r)?;
        r.finish()?;
        Ok(s)
    }

    /// The 32 bytes the operator key signs, and the next set's `previous`.
    pub fn digest(&self) -> Digest {
        Domain::KeySet.hash(&self.to_bytes())
    }

    /// Signs as `operator` (whose public key must be `operator_key`),
    /// endorsed by `previous_operator` when given.
    pub fn sign(
        self,
        operator: &SigningKey,
        previous_operator: Option<&SigningKey>,
    ) -> SignedKeySet {
        debug_assert_eq!(operator.verifying_key().to_bytes(), self.operator_key);
        let msg = self.digest();
        SignedKeySet {
            signature: operator.sign(&msg.0).to_bytes(),
            endorsement: previous_operator.map(|k| k.sign(&msg.0).to_bytes()),
            set: self,
        }
    }

    /// The key of shard `shard`, if the set names it.
    pub fn shard_key(&self, shard: u32) -> Option<VerifyingKey> {
        self.shards
            .get(shard as usize)
            .filter(|s| s.shard == shard)
            .and_then(|s| VerifyingKey::from_bytes(&s.public_key).ok())
    }
}

fn check_sig(key: &[u8; 32], msg: &Digest, sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key)
        .is_ok_and(|k| k.verify(&msg.0, &Signature::from_bytes(sig)).is_ok())
}

impl SignedKeySet {
    /// The signed set's encoding: the set's bytes (length-prefixed), the
    /// signature, then the optional endorsement.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&self.set.to_bytes());
        w.fixed(&self.signature);
        w.option(self.endorsement.as_ref(), |w, e| w.fixed(e));
        w.into_bytes()
    }

    /// Decodes exactly one signed set (canonical bytes only).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedKeySet, DecodeError> {
        let mut r = Reader::new(bytes);
        let set = KeySet::from_bytes(r.bytes("key set")?)?;
        let signature = r.fixed("key set signature")?;
        let endorsement = r.option("key set endorsement", |r| r.fixed("key set endorsement"))?;
        r.finish()?;
        Ok(SignedKeySet {
            set,
            signature,
            endorsement,
        })
    }

    /// Checks the set on its own: shards numbered from 0 without gaps, every
    /// key a valid ed25519 point, and the operator's signature.
    pub fn verify(&self) -> Result<(), KeySetError> {
        let s = &self.set;
        let invalid = |what: String| KeySetError::Invalid {
            sequence: s.sequence,
            what,
        };
        for (i, k) in s.shards.iter().enumerate() {
            if k.shard as usize != i {
                return Err(invalid(format!(
                    "shard keys must be numbered 0, 1, …; position {i} names shard {}",
                    k.shard
                )));
            }
            if k.log_id().is_none() {
                return Err(invalid(format!(
                    "shard {} key is not an ed25519 public key",
                    k.shard
                )));
            }
        }
        if let Some(p) = &s.witnesses {
            p.check().map_err(invalid)?;
        }
        if (s.sequence == 0) != s.previous.is_none() {
            return Err(invalid(
                "only the first set (sequence 0) has no previous set".into(),
            ));
        }
        if !check_sig(&s.operator_key, &s.digest(), &self.signature) {
            return Err(KeySetError::BadSignature {
                sequence: s.sequence,
            });
        }
        Ok(())
    }

    /// Checks that `self` directly follows `prev`: the next sequence number,
    /// `prev`'s digest, and the previous operator's endorsement if the
    /// operator key changed (and none if it did not).
    pub fn verify_follows(&self, prev: &SignedKeySet) -> Result<(), KeySetError> {
        self.verify()?;
        let s = &self.set;
        let broken = |what: String| KeySetError::BrokenChain {
            sequence: s.sequence,
            what,
        };
        if s.sequence != prev.set.sequence + 1 {
            return Err(broken(format!(
                "its sequence should be {}",
                prev.set.sequence + 1
            )));
        }
        if s.previous != Some(prev.set.digest()) {
            return Err(broken("it names another previous set".into()));
        }
        // A log's key is its identity (its log id, every head it signed):
        // a later set keeps every shard's key and may only add shards.
        if let Some(i) =
            (0..prev.set.shards.len()).find(|&i| s.shards.get(i) != Some(&prev.set.shards[i]))
        {
            return Err(broken(format!(
                "it changes or drops shard {i}'s log key (a later set keeps every shard's key and may only add shards)"
            )));
        }
        let rotated = s.operator_key != prev.set.operator_key;
        match (&self.endorsement, rotated) {
            (None, false) => Ok(()),
            (Some(e), true) if check_sig(&prev.set.operator_key, &s.digest(), e) => Ok(()),
            (Some(_), false) => Err(broken(
                "it carries an endorsement but the operator key did not change".into(),
            )),
            _ => Err(KeySetError::NotEndorsed {
                sequence: s.sequence,
            }),
        }
    }
}

/// Checks a whole chain, oldest first, and returns its newest set. With
/// `pinned`, trust starts at the first set that key signed (a verifier that
/// pinned an older operator key follows the endorsed rotations from there);
/// without, at the first set (trust on first use).
pub fn verify_chain<'a>(
    chain: &'a [SignedKeySet],
    pinned: Option<&[u8; 32]>,
) -> Result<&'a SignedKeySet, KeySetError> {
    let first = chain.first().ok_or(KeySetError::Empty)?;
    if first.set.sequence != 0 {
        return Err(KeySetError::BrokenChain {
            sequence: first.set.sequence,
            what: "the chain must start at sequence 0".into(),
        });
    }
    first.verify()?;
    for pair in chain.windows(2) {
        pair[1].verify_follows(&pair[0])?;
    }
    if let Some(pin) = pinned {
        if !chain.iter().any(|s| &s.set.operator_key == pin) {
            return Err(KeySetError::PinNotFound {
                pinned: Digest(*pin).to_hex(),
            });
        }
    }
    Ok(chain.last().expect("not empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(seq: u64, prev: Option<&SignedKeySet>, op: &SigningKey) -> KeySet {
        KeySet {
            sequence: seq,
            previous: prev.map(|p| p.set.digest()),
            issued_at_ms: 1_700_000_000_000 + seq as i64,
            operator_key: op.verifying_key().to_bytes(),
            shards: (0..3)
                .map(|i| ShardKey {
                    shard: i,
                    public_key: SigningKey::from_bytes(&[10 + i as u8; 32])
                        .verifying_key()
                        .to_bytes(),
                })
                .collect(),
            witnesses: None,
        }
    }

    #[test]
    fn a_rotated_chain_verifies_from_either_pin_and_refuses_changes() {
        let (a, b) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let s0 = set(0, None, &a).sign(&a, None);
        let s1 = set(1, Some(&s0), &b).sign(&b, Some(&a));
        let chain = vec![s0.clone(), s1.clone()];
        assert_eq!(
            verify_chain(&chain, Some(&a.verifying_key().to_bytes())).unwrap(),
            &s1
        );
        assert_eq!(
            verify_chain(&chain, Some(&b.verifying_key().to_bytes())).unwrap(),
            &s1
        );
        assert!(matches!(
            verify_chain(&chain, Some(&[9; 32])),
            Err(KeySetError::PinNotFound { .. })
        ));
        // A rotation nobody endorsed.
        let rogue = set(1, Some(&s0), &b).sign(&b, None);
        assert!(matches!(
            verify_chain(&[s0.clone(), rogue], None),
            Err(KeySetError::NotEndorsed { sequence: 1 })
        ));
        // A changed shard key breaks the signature.
        let mut forged = s1.clone();
        forged.set.shards[2].public_key =
            SigningKey::from_bytes(&[99; 32]).verifying_key().to_bytes();
        assert!(verify_chain(&[s0.clone(), forged], None).is_err());
        // A set the operator did sign that replaces a shard's log key, or
        // drops a shard, is refused; one that adds a shard follows.
        let mut replaced = set(1, Some(&s0), &a);
        replaced.shards[1].public_key =
            SigningKey::from_bytes(&[98; 32]).verifying_key().to_bytes();
        let err = verify_chain(&[s0.clone(), replaced.sign(&a, None)], None).unwrap_err();
        assert!(err.to_string().contains("shard 1's log key"), "{err}");
        let mut dropped = set(1, Some(&s0), &a);
        dropped.shards.pop();
        assert!(verify_chain(&[s0.clone(), dropped.sign(&a, None)], None).is_err());
        let mut grown = set(1, Some(&s0), &a);
        grown.shards.push(ShardKey {
            shard: 3,
            public_key: SigningKey::from_bytes(&[13; 32]).verifying_key().to_bytes(),
        });
        verify_chain(&[s0.clone(), grown.sign(&a, None)], None).unwrap();
        // Bytes round-trip canonically; any flipped bit is refused somewhere.
        assert_eq!(KeySet::from_bytes(&s1.set.to_bytes()).unwrap(), s1.set);
        every_flip_refused(&s1, &s0);
    }

    /// Every single-bit change of `signed`'s set bytes is refused, by the
    /// decoder or by the check that it follows `prev`.
    fn every_flip_refused(signed: &SignedKeySet, prev: &SignedKeySet) {
        let bytes = signed.set.to_bytes();
        for i in 0..bytes.len() * 8 {
            let mut b2 = bytes.clone();
            b2[i / 8] ^= 1 << (i % 8);
            if let Ok(set) = KeySet::from_bytes(&b2) {
                let tampered = SignedKeySet {
                    set,
                    ..signed.clone()
                };
                assert!(
                    tampered.verify_follows(prev).is_err(),
                    "flip of bit {i} accepted"
                );
            }
        }
    }

    fn witness(seed: u8, name: &str) -> WitnessKey {
        WitnessKey {
            name: name.into(),
            public_key: SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        }
    }

    #[test]
    fn a_witness_policy_is_version_2_checked_and_canonical() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let s0 = set(0, None, &a).sign(&a, None);
        assert_eq!(s0.set.to_bytes()[0], KEYSET_VERSION);
        let policy = WitnessPolicy::new(2, vec![witness(7, "w/b"), witness(8, "w/a")]).unwrap();
        assert_eq!(policy.witnesses[0].name, "w/a", "sorted by name");
        let mut next = set(1, Some(&s0), &a);
        next.witnesses = Some(policy.clone());
        let s1 = next.clone().sign(&a, None);
        let bytes = next.to_bytes();
        assert_eq!(bytes[0], KEYSET_VERSION_WITNESSED);
        assert_eq!(KeySet::from_bytes(&bytes).unwrap(), next);
        assert_eq!(SignedKeySet::from_bytes(&s1.to_bytes()).unwrap(), s1);
        verify_chain(&[s0.clone(), s1.clone()], None).unwrap();
        // Dropping the policy again is a change like any other.
        let mut off = set(2, Some(&s1), &a);
        off.witnesses = None;
        verify_chain(&[s0.clone(), s1.clone(), off.sign(&a, None)], None).unwrap();

        // Version 2 without witnesses has a version 1 encoding: refused.
        let mut empty = set(1, Some(&s0), &a);
        empty.witnesses = Some(WitnessPolicy {
            quorum: 0,
            witnesses: vec![],
        });
        assert!(KeySet::from_bytes(&empty.to_bytes()).is_err());
        // Policies no client could meet or match, signed all the same.
        for (quorum, witnesses, why) in [
            (3, vec![witness(7, "w/a"), witness(8, "w/b")], "quorum of 3"),
            (0, vec![witness(7, "w/a")], "quorum of 0"),
            (1, vec![witness(7, "w/b"), witness(8, "w/a")], "sorted"),
            (
                1,
                vec![witness(7, "w/a"), witness(7, "w/b")],
                "another witness's key",
            ),
            (1, vec![witness(7, "w a")], "without spaces"),
            (1, vec![witness(7, "w+a")], "plus signs"),
        ] {
            let mut bad = set(1, Some(&s0), &a);
            bad.witnesses = Some(WitnessPolicy { quorum, witnesses });
            let signed = bad.clone().sign(&a, None);
            let decoded = KeySet::from_bytes(&bad.to_bytes()).unwrap();
            assert_eq!(decoded, bad);
            let err = signed.verify().unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        // Any flipped bit of the witnessed set is refused somewhere.
        every_flip_refused(&s1, &s0);
    }
}
