//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;

use ed25519_dalek::SigningKey;
use ledger::store::format::{FrameHeader, SEGMENT_HEADER_LEN};
use ledger::store::{audit_log, AuditReport, EmbeddedStore, StoreConfig};

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// Small segments and blocks so that tests cross every boundary.
pub fn small_config() -> StoreConfig {
    StoreConfig {
        segment_bytes: 16 << 10,
        max_block_entries: 16,
        max_block_bytes: 4 << 10,
        ..StoreConfig::default()
    }
}

pub fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open_or_create(dir, key(), small_config()).expect("store opens")
}

pub fn audit(dir: &Path) -> AuditReport {
    audit_log(dir, &|_| {}).expect("log is readable")
}

/// A self-describing entry: its tag, then bytes derived from the tag, so a
/// reader can tell a whole entry from a damaged or partial one.
pub fn tagged_entry(tag: u64) -> Vec<u8> {
    let mut out = tag.to_le_bytes().to_vec();
    let len = (tag % 200) as usize;
    // xorshift: incompressible enough that small segments fill and roll.
    let mut x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    out.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    out
}

pub fn tag_of(entry: &[u8]) -> Option<u64> {
    let tag = u64::from_le_bytes(entry.get(..8)?.try_into().ok()?);
    (tagged_entry(tag) == entry).then_some(tag)
}

/// Byte ranges of the blocks in a segment file, up to any zeros after them.
pub fn blocks(seg: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    // An open log's active segment holds zeros after its last block.
    while pos < seg.len() && seg[pos..].iter().any(|&b| b != 0) {
        let h = FrameHeader::parse(&seg[pos..]).unwrap();
        let end = pos + h.frame_len() as usize;
        out.push((pos, end));
        pos = end;
    }
    out
}
