//! On-disk formats of the embedded store. Every record that is read back
//! carries its own BLAKE3 checksum in a domain of its own; nothing is trusted
//! because of where it sits in a file.
//!
//! ```text
//! LOG             meta: magic, format version, public key, checksum      (fixed 72 B)
//! NNNNNNNN.seg    segment: header, then block frames back to back
//! index           one record per block: where it is, which entries        (fixed 48 B)
//! leaves          the Merkle leaf hash (= entry id) of every entry        (32 B each)
//! nodes           roots of the perfect 16-leaf subtrees, in order         (32 B each)
//! NNNNNNNN.ids    a sealed segment's ids, sorted, for lookup by id        (16 B each)
//! heads           signed tree heads, oldest first                         (fixed 160 B)
//! ```
//! `leaves`, `nodes`, `index` and `*.ids` are derived from the segments and
//! rebuilt from them when they are behind; the segments and `heads` are the
//! record.

use std::ops::Range;

use ed25519_dalek::VerifyingKey;

use crate::hash::{Digest, Domain};
use crate::head::{SignedTreeHead, TreeHead};

pub const META_FILE: &str = "LOG";
pub const INDEX_FILE: &str = "index";
pub const LEAVES_FILE: &str = "leaves";
pub const NODES_FILE: &str = "nodes";
pub const HEADS_FILE: &str = "heads";

pub const FORMAT_VERSION: u32 = 2;

/// Why a format-1 log is refused. Format 2 gave the meta file and the head
/// records their own checksum domains (format 1 shared the index records'),
/// so format-1 bytes do not check under this build.
pub const FORMAT_1: &str =
    "written in store format 1 by an earlier coldtrail; this build reads format 2 \
(its checksums use one BLAKE3 domain per purpose). Keep serving this directory with the build that \
wrote it, or load the data into a new directory";

/// Level of the tree whose nodes the `nodes` file persists: 2^4 = 16 leaves.
/// Proofs rebuild the four levels below from at most 16 leaf hashes; opening
/// rebuilds the levels above from `size / 16` stored nodes.
pub const NODE_LEVEL: u32 = 4;

pub fn segment_name(n: u64) -> String {
    format!("{n:08}.seg")
}

/// The next segment while it is being zeroed, before it is numbered (its
/// header written) and renamed to `segment_name(n)`. Opening removes any.
pub fn prepared_name(n: u64) -> String {
    format!("{n:08}{PREPARED_SUFFIX}")
}

/// Whether `name` is a next segment being zeroed (`prepared_name`).
pub fn is_prepared_name(name: &str) -> bool {
    name.ends_with(PREPARED_SUFFIX)
}

const PREPARED_SUFFIX: &str = ".seg.zero";

pub fn ids_name(n: u64) -> String {
    format!("{n:08}.ids")
}

/// Parses a segment file name back to its number.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() == 8 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

fn checksum16(domain: Domain, data: &[u8]) -> [u8; 16] {
    let d = domain.hash(data);
    d.0[..16].try_into().expect("32 > 16")
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("caller passes 4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("caller passes 8 bytes"))
}

// ---------------------------------------------------------------- meta

pub const META_LEN: usize = 72;
const META_MAGIC: &[u8; 4] = b"CTLG";

/// The `LOG` file: which key this log is. Written once, when the log is created.
pub fn encode_meta(key: &VerifyingKey) -> [u8; META_LEN] {
    let mut out = [0u8; META_LEN];
    out[..4].copy_from_slice(META_MAGIC);
    out[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[8..40].copy_from_slice(key.as_bytes());
    let sum = Domain::MetaChecksum.hash(&out[..40]);
    out[40..].copy_from_slice(&sum.0);
    out
}

pub fn decode_meta(b: &[u8]) -> Result<VerifyingKey, &'static str> {
    if b.len() != META_LEN || &b[..4] != META_MAGIC {
        return Err("not a coldtrail log meta file");
    }
    // The version first: an older format's checksum is in another domain.
    match le_u32(&b[4..8]) {
        FORMAT_VERSION => {}
        1 => return Err(FORMAT_1),
        _ => return Err("written in a store format newer than this build reads: use the coldtrail that wrote it"),
    }
    if Domain::MetaChecksum.hash(&b[..40]).0[..] != b[40..] {
        return Err("meta file checksum does not match");
    }
    let key: [u8; 32] = b[8..40].try_into().expect("32 bytes");
    VerifyingKey::from_bytes(&key).map_err(|_| "meta file holds an invalid public key")
}

// ---------------------------------------------------------------- segments

pub const SEGMENT_HEADER_LEN: usize = 64;
const SEGMENT_MAGIC: &[u8; 4] = b"CTSG";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub log_id: Digest,
    pub number: u64,
    pub first_index: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[..4].copy_from_slice(SEGMENT_MAGIC);
        out[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[8..40].copy_from_slice(&self.log_id.0);
        out[40..48].copy_from_slice(&self.number.to_le_bytes());
        out[48..56].copy_from_slice(&self.first_index.to_le_bytes());
        let sum = checksum16(Domain::SegmentHeader, &out[..56]);
        out[56..].copy_from_slice(&sum[..8]);
        out
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, &'static str> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err("segment is shorter than its header");
        }
        if &b[..4] != SEGMENT_MAGIC {
            return Err("segment header magic is wrong");
        }
        match le_u32(&b[4..8]) {
            FORMAT_VERSION => {}
            1 => return Err(FORMAT_1),
            _ => return Err("segment written in a store format newer than this build reads"),
        }
        if checksum16(Domain::SegmentHeader, &b[..56])[..8] != b[56..64] {
            return Err("segment header checksum does not match");
        }
        Ok(SegmentHeader {
            log_id: Digest(b[8..40].try_into().expect("32 bytes")),
            number: le_u64(&b[40..48]),
            first_index: le_u64(&b[48..56]),
        })
    }
}

// ---------------------------------------------------------------- blocks

pub const FRAME_HEADER_LEN: usize = 56;
const FRAME_MAGIC: &[u8; 4] = b"CTBK";
/// A block's compressed payload is at most this large; a larger length field
/// is damage, not a block.
pub const MAX_PAYLOAD_LEN: u32 = 64 << 20;

/// The fixed part in front of every block's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_len: u32,
    pub raw_len: u32,
    pub first_index: u64,
    pub count: u32,
    pub checksum: Digest,
}

impl FrameHeader {
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    fn fixed_fields(payload_len: u32, raw_len: u32, first_index: u64, count: u32) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..4].copy_from_slice(FRAME_MAGIC);
        out[4..8].copy_from_slice(&payload_len.to_le_bytes());
        out[8..12].copy_from_slice(&raw_len.to_le_bytes());
        out[12..20].copy_from_slice(&first_index.to_le_bytes());
        out[20..24].copy_from_slice(&count.to_le_bytes());
        out
    }

    /// Frames a compressed payload: header and payload, ready to append.
    pub fn frame(payload: &[u8], raw_len: u32, first_index: u64, count: u32) -> Vec<u8> {
        let payload_len = u32::try_from(payload.len()).expect("payload bounded by MAX_PAYLOAD_LEN");
        let fixed = Self::fixed_fields(payload_len, raw_len, first_index, count);
        let checksum = Domain::BlockChecksum.hash_parts(&[&fixed, payload]);
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        out.extend_from_slice(&fixed);
        out.extend_from_slice(&checksum.0);
        out.extend_from_slice(payload);
        out
    }

    /// Parses a header; `Err` when the bytes cannot be a frame header.
    pub fn parse(b: &[u8]) -> Result<FrameHeader, &'static str> {
        if b.len() < FRAME_HEADER_LEN {
            return Err("block header is cut short");
        }
        if &b[..4] != FRAME_MAGIC {
            return Err("block magic is wrong");
        }
        let h = FrameHeader {
            payload_len: le_u32(&b[4..8]),
            raw_len: le_u32(&b[8..12]),
            first_index: le_u64(&b[12..20]),
            count: le_u32(&b[20..24]),
            checksum: Digest(b[24..56].try_into().expect("32 bytes")),
        };
        if h.payload_len > MAX_PAYLOAD_LEN || h.raw_len > MAX_PAYLOAD_LEN.saturating_mul(4) {
            return Err("block length field is out of range");
        }
        Ok(h)
    }

    /// Checks the payload against the header's checksum.
    pub fn check(&self, payload: &[u8]) -> bool {
        let fixed =
            Self::fixed_fields(self.payload_len, self.raw_len, self.first_index, self.count);
        payload.len() == self.payload_len as usize
            && Domain::BlockChecksum.hash_parts(&[&fixed, payload]) == self.checksum
    }
}

/// Decompresses a checked payload into its raw entry stream.
pub fn decompress_block(h: &FrameHeader, payload: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut raw = Vec::new();
    decompress_block_into(h, payload, &mut raw)?;
    Ok(raw)
}

/// [`decompress_block`] into `raw`, which is reused: readers of many blocks
/// (the audit) keep one buffer rather than fault in and zero a fresh one per
/// block.
pub fn decompress_block_into(
    h: &FrameHeader,
    payload: &[u8],
    raw: &mut Vec<u8>,
) -> Result<(), &'static str> {
    raw.resize(h.raw_len as usize, 0);
    let n = lz4_flex::block::decompress_into(payload, raw)
        .map_err(|_| "block payload does not decompress")?;
    if n != raw.len() {
        return Err("block payload decompresses to another length than its header says");
    }
    Ok(())
}

/// Where each of the header's `count` entries lies in a raw entry stream.
/// Each starts after its length, so never at 0.
pub fn entry_spans(h: &FrameHeader, raw: &[u8]) -> Result<Vec<Range<usize>>, &'static str> {
    let mut r = crate::codec::Reader::new(raw);
    let mut out = Vec::with_capacity(h.count as usize);
    for _ in 0..h.count {
        let e = r
            .bytes("entry")
            .map_err(|_| "block payload holds fewer entries than its header says")?;
        let end = raw.len() - r.remaining();
        out.push(end - e.len()..end);
    }
    r.finish()
        .map_err(|_| "block payload has bytes after its last entry")?;
    Ok(out)
}

/// Splits a raw entry stream into the header's `count` entries, borrowed.
pub fn split_entries<'a>(h: &FrameHeader, raw: &'a [u8]) -> Result<Vec<&'a [u8]>, &'static str> {
    Ok(entry_spans(h, raw)?
        .into_iter()
        .map(|span| &raw[span])
        .collect())
}

/// Decompresses a checked payload and splits it into owned entries.
pub fn unpack_block(h: &FrameHeader, payload: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let raw = decompress_block(h, payload)?;
    Ok(split_entries(h, &raw)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

/// Packs entries into a raw payload and compresses it. Returns (compressed, raw length).
pub fn pack_block<E: AsRef<[u8]>>(entries: &[E]) -> (Vec<u8>, u32) {
    let mut w =
        crate::codec::Writer::with_capacity(entries.iter().map(|e| e.as_ref().len() + 3).sum());
    for e in entries {
        w.bytes(e.as_ref());
    }
    let raw_len = u32::try_from(w.buf.len()).expect("raw block bounded by the block byte limit");
    (lz4_flex::block::compress(&w.buf), raw_len)
}

// ---------------------------------------------------------------- index

pub const INDEX_RECORD_LEN: usize = 48;

/// Where one block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLoc {
    pub first_index: u64,
    pub count: u32,
    pub segment: u64,
    pub offset: u64,
    pub frame_len: u32,
}

impl BlockLoc {
    pub fn end_index(&self) -> u64 {
        self.first_index + u64::from(self.count)
    }

    pub fn encode(&self) -> [u8; INDEX_RECORD_LEN] {
        let mut out = [0u8; INDEX_RECORD_LEN];
        out[..8].copy_from_slice(&self.first_index.to_le_bytes());
        out[8..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.frame_len.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment.to_le_bytes());
        out[24..32].copy_from_slice(&self.offset.to_le_bytes());
        let sum = checksum16(Domain::IndexRecord, &out[..32]);
        out[32..].copy_from_slice(&sum);
        out
    }

    pub fn decode(b: &[u8]) -> Option<BlockLoc> {
        if b.len() != INDEX_RECORD_LEN || checksum16(Domain::IndexRecord, &b[..32]) != b[32..] {
            return None;
        }
        Some(BlockLoc {
            first_index: le_u64(&b[..8]),
            count: le_u32(&b[8..12]),
            frame_len: le_u32(&b[12..16]),
            segment: le_u64(&b[16..24]),
            offset: le_u64(&b[24..32]),
        })
    }
}

// ---------------------------------------------------------------- heads

pub const HEAD_RECORD_LEN: usize = 160;

/// While a log is open its heads file ends in all-zero records made ready
/// for heads: the writer zeroes this many records at a time, so that only one
/// head's fsync in so many commits a new file size. A clean close cuts them
/// off; at least one follows the last head until then.
pub const HEADS_AHEAD: usize = 256;

/// How many of the whole records in `records` come before the all-zero
/// records at its end.
pub fn heads_in_use(records: &[u8]) -> usize {
    records
        .chunks_exact(HEAD_RECORD_LEN)
        .rposition(|r| r.iter().any(|&b| b != 0))
        .map_or(0, |i| i + 1)
}

/// How whole head records end, as recovery and the audit both judge it:
/// `heads` records of heads, then (if `torn`) one record that fails its
/// checksum with zeroed records after it (a write a crash tore, never handed
/// out), then `zeroed` all-zero records. A bad last record with no zeroed
/// records after it is not `torn`: it is left among `heads`, as damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsEnd {
    pub heads: usize,
    pub torn: bool,
    pub zeroed: usize,
}

pub fn heads_end(records: &[u8]) -> HeadsEnd {
    let in_use = heads_in_use(records);
    let zeroed = records.len() / HEAD_RECORD_LEN - in_use;
    let torn = zeroed > 0
        && in_use > 0
        && decode_head(&records[(in_use - 1) * HEAD_RECORD_LEN..][..HEAD_RECORD_LEN]).is_none();
    HeadsEnd {
        heads: in_use - usize::from(torn),
        torn,
        zeroed,
    }
}

pub fn encode_head(h: &SignedTreeHead) -> [u8; HEAD_RECORD_LEN] {
    let mut out = [0u8; HEAD_RECORD_LEN];
    out[..32].copy_from_slice(&h.head.log_id.0);
    out[32..40].copy_from_slice(&h.head.size.to_le_bytes());
    out[40..72].copy_from_slice(&h.head.root.0);
    out[72..80].copy_from_slice(&h.head.timestamp_ms.to_le_bytes());
    out[80..144].copy_from_slice(&h.signature);
    let sum = checksum16(Domain::HeadRecord, &out[..144]);
    out[144..].copy_from_slice(&sum);
    out
}

pub fn decode_head(b: &[u8]) -> Option<SignedTreeHead> {
    if b.len() != HEAD_RECORD_LEN || checksum16(Domain::HeadRecord, &b[..144]) != b[144..] {
        return None;
    }
    Some(SignedTreeHead {
        head: TreeHead {
            log_id: Digest(b[..32].try_into().expect("32 bytes")),
            size: le_u64(&b[32..40]),
            root: Digest(b[40..72].try_into().expect("32 bytes")),
            timestamp_ms: i64::from_le_bytes(b[72..80].try_into().expect("8 bytes")),
        },
        signature: b[80..144].try_into().expect("64 bytes"),
    })
}

// ---------------------------------------------------------------- ids

pub const ID_RECORD_LEN: usize = 16;

/// The first 8 bytes of an id, as a sortable key.
pub fn id_prefix(id: &Digest) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"))
}

/// A sealed segment's `(id prefix, index)` pairs, sorted.
pub fn encode_ids(mut pairs: Vec<(u64, u64)>) -> Vec<u8> {
    pairs.sort_unstable();
    let mut out = Vec::with_capacity(pairs.len() * ID_RECORD_LEN);
    for (p, i) in pairs {
        out.extend_from_slice(&p.to_be_bytes());
        out.extend_from_slice(&i.to_le_bytes());
    }
    out
}

pub fn decode_id_record(b: &[u8]) -> (u64, u64) {
    (
        u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        le_u64(&b[8..16]),
    )
}
