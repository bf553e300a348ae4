//! Signed tree heads: a log's commitment to its first `size` entries.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{Digest, Domain};
use crate::merkle::{self, Blake3Merkle, ProofError};

/// A log is named by the hash of its public key, so a head names the only key
/// that may sign it.
pub fn log_id(key: &VerifyingKey) -> Digest {
    Domain::LogId.hash(key.as_bytes())
}

/// What a log commits to: its size and root at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub log_id: Digest,
    pub size: u64,
    pub root: Digest,
    /// Unix epoch milliseconds when the head was signed.
    pub timestamp_ms: i64,
}

/// A tree head with the log key's ed25519 signature over its canonical bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTreeHead {
    pub head: TreeHead,
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("tree head names log {head} but the key belongs to log {key}")]
    WrongLog { head: Digest, key: Digest },
    #[error("tree head signature does not verify under the log's key")]
    BadSignature,
}

/// Why a proof against a signed head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("heads are from different logs")]
    DifferentLogs,
}

impl TreeHead {
    pub fn encode(&self, w: &mut Writer) {
        w.digest(&self.log_id);
        w.varint(self.size);
        w.digest(&self.root);
        w.svarint(self.timestamp_ms);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<TreeHead, DecodeError> {
        Ok(TreeHead {
            log_id: r.digest("tree head log id")?,
            size: r.varint("tree head size")?,
            root: r.digest("tree head root")?,
            timestamp_ms: r.svarint("tree head time")?,
        })
    }

    /// The 32 bytes the log key signs: the canonical head in its own domain.
    pub fn signing_message(&self) -> Digest {
        let mut w = Writer::with_capacity(96);
        self.encode(&mut w);
        Domain::TreeHead.hash(&w.buf)
    }

    pub fn sign(self, key: &SigningKey) -> SignedTreeHead {
        debug_assert_eq!(self.log_id, log_id(&key.verifying_key()));
        let signature = key.sign(&self.signing_message().0).to_bytes();
        SignedTreeHead {
            head: self,
            signature,
        }
    }
}

impl SignedTreeHead {
    /// Size of the canonical encoding bound (fixed parts plus varints).
    pub const MAX_ENCODED_LEN: usize = 32 + 10 + 32 + 10 + 64;

    pub fn encode(&self, w: &mut Writer) {
        self.head.encode(w);
        w.fixed(&self.signature);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<SignedTreeHead, DecodeError> {
        Ok(SignedTreeHead {
            head: TreeHead::decode(r)?,
            signature: r.fixed("tree head signature")?,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::MAX_ENCODED_LEN);
        self.encode(&mut w);
        w.into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTreeHead, DecodeError> {
        let mut r = Reader::new(bytes);
        let h = SignedTreeHead::decode(&mut r)?;
        r.finish()?;
        Ok(h)
    }

    /// Checks that `key` is this head's log key and that it signed the head.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), HeadError> {
        let key_log = log_id(key);
        if key_log != self.head.log_id {
            return Err(HeadError::WrongLog {
                head: self.head.log_id,
                key: key_log,
            });
        }
        let sig = Signature::from_bytes(&self.signature);
        key.verify(&self.head.signing_message().0, &sig)
            .map_err(|_| HeadError::BadSignature)
    }
}

impl SignedTreeHead {
    /// Checks the head's signature, then that `leaf` is entry `index` of the
    /// tree the head commits to. The head's signature binds size and root, so
    /// neither can be changed without this failing.
    pub fn verify_inclusion(
        &self,
        key: &VerifyingKey,
        index: u64,
        leaf: &Digest,
        proof: &[Digest],
    ) -> Result<(), VerifyError> {
        self.verify(key)?;
        merkle::verify_inclusion::<Blake3Merkle>(
            index,
            self.head.size,
            leaf,
            proof,
            &self.head.root,
        )?;
        Ok(())
    }

    /// Checks both heads' signatures, then that `newer` extends `self`.
    pub fn verify_consistency(
        &self,
        newer: &SignedTreeHead,
        key: &VerifyingKey,
        proof: &[Digest],
    ) -> Result<(), VerifyError> {
        if self.head.log_id != newer.head.log_id {
            return Err(VerifyError::DifferentLogs);
        }
        self.verify(key)?;
        newer.verify(key)?;
        merkle::verify_consistency::<Blake3Merkle>(
            self.head.size,
            newer.head.size,
            proof,
            &self.head.root,
            &newer.head.root,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_heads_verify_and_refuse_any_change() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let head = TreeHead {
            log_id: log_id(&key.verifying_key()),
            size: 42,
            root: Domain::Merkle.hash(b"root"),
            timestamp_ms: 1_700_000_000_000,
        };
        let sth = head.sign(&key);
        sth.verify(&key.verifying_key()).unwrap();
        let bytes = sth.to_bytes();
        assert_eq!(SignedTreeHead::from_bytes(&bytes).unwrap(), sth);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if let Ok(h) = SignedTreeHead::from_bytes(&b) {
                assert!(
                    h.verify(&key.verifying_key()).is_err(),
                    "flip at {i} accepted"
                );
            }
        }
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(
            sth.verify(&other.verifying_key()),
            Err(HeadError::WrongLog { .. })
        ));
    }
}
