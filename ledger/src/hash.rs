//! BLAKE3 hashing with one domain per purpose.
//!
//! Every hash coldtrail computes names its purpose through a [`Domain`]: the
//! domain's context string is turned into a BLAKE3 key once (`derive_key`), and
//! the data is hashed under that key. Two purposes can therefore never produce
//! the same digest for the same bytes: a block checksum is never mistaken for a
//! Merkle node, nor a tree-head signature message for an entry id.

use std::fmt;
use std::sync::OnceLock;

/// A 32-byte digest (BLAKE3 or, in tests, SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub const LEN: usize = 32;

    /// Parses a digest from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        <[u8; 32]>::try_from(bytes).ok().map(Digest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, the form used in APIs and CLI output.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from_digit(u32::from(b >> 4), 16).expect("nibble < 16"));
            out.push(char::from_digit(u32::from(b & 0xf), 16).expect("nibble < 16"));
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Digest> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi << 4 | lo) as u8;
        }
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The purposes coldtrail hashes for. The context strings are part of the
/// on-disk and on-wire format: changing one changes every stored digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Merkle leaves and interior nodes (the RFC 9162 0x00 / 0x01 prefixes
    /// separate leaves from nodes inside this domain).
    Merkle,
    /// Checksum of a stored block frame.
    BlockChecksum,
    /// Checksum of one record of the store's block index.
    IndexRecord,
    /// The message an ed25519 log key signs for a tree head.
    TreeHead,
    /// The message a device key signs for a reading batch.
    DeviceBatch,
    /// Identifier of a log, derived from its public key.
    LogId,
    /// Hash of a bearer token, as stored.
    Token,
    /// A partition key's hash, which picks its home shard.
    Routing,
    /// A node's key set: what its operator key signs, and what the next set names.
    KeySet,
    /// Checksum of a checkpoint of state derived from the logs (sequencers,
    /// identity state, the lineage graph's sources).
    Checkpoint,
    /// Checksum of a log's `LOG` meta file.
    MetaChecksum,
    /// Checksum of one record of a log's `heads` file.
    HeadRecord,
    /// Checksum of a feed consumer's cursor file.
    FeedCursor,
    /// Fingerprint of a request under an `Idempotency-Key`.
    Idempotency,
    /// Fingerprint of a captured EPCIS event's content (and the name of an
    /// event that has no eventID).
    EventFingerprint,
    /// Identifier of an EPCIS capture job.
    CaptureJob,
    /// Checksum of a segment file's header.
    SegmentHeader,
    /// A version of a network document: what its members sign.
    Network,
}

impl Domain {
    const ALL: [Domain; 18] = [
        Domain::Merkle,
        Domain::BlockChecksum,
        Domain::IndexRecord,
        Domain::TreeHead,
        Domain::DeviceBatch,
        Domain::LogId,
        Domain::Token,
        Domain::Routing,
        Domain::KeySet,
        Domain::Checkpoint,
        Domain::MetaChecksum,
        Domain::HeadRecord,
        Domain::FeedCursor,
        Domain::Idempotency,
        Domain::EventFingerprint,
        Domain::CaptureJob,
        Domain::SegmentHeader,
        Domain::Network,
    ];

    /// BLAKE3 `derive_key` context: globally unique, hard-coded, application
    /// and version specific, as the BLAKE3 documentation asks.
    pub fn context(self) -> &'static str {
        match self {
            Domain::Merkle => "coldtrail 2026-11 merkle tree v1",
            Domain::BlockChecksum => "coldtrail 2026-11 store block checksum v1",
            Domain::IndexRecord => "coldtrail 2026-11 store index record v1",
            Domain::TreeHead => "coldtrail 2026-11 signed tree head v1",
            Domain::DeviceBatch => "coldtrail 2026-11 device batch signature v1",
            Domain::LogId => "coldtrail 2026-11 log id v1",
            Domain::Token => "coldtrail 2026-11 bearer token v1",
            Domain::Routing => "coldtrail 2026-11 shard routing v1",
            Domain::KeySet => "coldtrail 2026-11 node key set v1",
            Domain::Checkpoint => "coldtrail 2026-11 derived state checkpoint v1",
            Domain::MetaChecksum => "coldtrail 2026-11 store meta checksum v1",
            Domain::HeadRecord => "coldtrail 2026-11 store head record v1",
            Domain::FeedCursor => "coldtrail 2026-11 feed cursor v1",
            Domain::Idempotency => "coldtrail 2026-11 idempotency fingerprint v1",
            Domain::EventFingerprint => "coldtrail 2026-11 epcis event fingerprint v1",
            Domain::CaptureJob => "coldtrail 2026-11 capture job id v1",
            Domain::SegmentHeader => "coldtrail 2026-11 store segment header v1",
            Domain::Network => "coldtrail 2026-12 network document v1",
        }
    }

    fn key(self) -> &'static [u8; 32] {
        static KEYS: OnceLock<[[u8; 32]; Domain::ALL.len()]> = OnceLock::new();
        let keys = KEYS.get_or_init(|| Domain::ALL.map(|d| blake3::derive_key(d.context(), b"")));
        &keys[self as usize]
    }

    /// A hasher for this domain; feed it with `update` and `finalize`.
    pub fn hasher(self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(self.key())
    }

    /// Hashes `data` in this domain.
    pub fn hash(self, data: &[u8]) -> Digest {
        Digest(*blake3::keyed_hash(self.key(), data).as_bytes())
    }

    /// Hashes the concatenation of `parts` in this domain.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        let mut h = self.hasher();
        for p in parts {
            h.update(p);
        }
        Digest(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_identical_input() {
        let mut seen = std::collections::HashSet::new();
        for d in Domain::ALL {
            assert!(seen.insert(d.hash(b"same bytes")), "{d:?} collides");
        }
    }

    #[test]
    fn domain_order_matches_key_table() {
        for (i, d) in Domain::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let d = Domain::Merkle.hash(b"x");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
        assert_eq!(Digest::from_hex(&"g".repeat(64)), None);
        assert_eq!(Digest::from_slice(&[0; 31]), None);
    }
}
