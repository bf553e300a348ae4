//! The full audit behind `coldtrail verify`: every checksum, every leaf hash,
//! the tree, every signed head, and every derived file, recomputed from the
//! segments and compared. Read-only; it repairs nothing.
//!
//! The audit stops at the first problem and names where it is: the file, and
//! where it applies the segment, the block (by offset and entry range) and
//! the entry. Memory stays bounded: the tree is folded as a compact range
//! (one hash per level), derived files are streamed, and segments are read
//! whole, the next while this one is checked (two at most in memory).
//!
//! Every core hashes: blocks are checksummed, decompressed and their entries
//! hashed in parallel, and handed to the checks, which run in log order, as
//! they are ready (see [`Pipeline`]).

use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::Thread;

use ed25519_dalek::VerifyingKey;

use super::embedded::{list_segments, read_meta};
use super::format::{
    self, BlockLoc, FrameHeader, SegmentHeader, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::StoreError;
use crate::entry::{kind_label, ENCODING_VERSION};
use crate::hash::Digest;
use crate::head::{log_id, SignedTreeHead};
use crate::merkle::{Blake3Merkle, Frontier};

/// Where and what the first problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub segment: Option<u64>,
    /// Offset of the block in its segment, and the entries it should hold.
    pub block: Option<(u64, u64, u64)>,
    pub entry: Option<u64>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(s) = self.segment {
            write!(f, ", segment {s}")?;
        }
        if let Some((off, from, to)) = self.block {
            write!(f, ", block at offset {off} (entries {from}..{to})")?;
        }
        if let Some(e) = self.entry {
            write!(f, ", entry {e}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// A state a crash leaves behind, which opening the log repairs from the
/// segments (the record): derived files behind the segments, a torn write at
/// the very end, entries not yet under a signed head. Not damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recoverable {
    pub file: String,
    /// What was found, and what opening the log does about it.
    pub what: String,
}

impl fmt::Display for Recoverable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

/// What the audit checked, the crash-consistent states it met, and the first
/// problem (damage) if there was one.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    pub log_id: Digest,
    pub segments: u64,
    pub blocks: u64,
    pub entries: u64,
    /// Bytes read and checked, all files together.
    pub bytes: u64,
    /// Entry bytes (uncompressed) hashed.
    pub entry_bytes: u64,
    pub heads: u64,
    pub latest_head: Option<SignedTreeHead>,
    /// Entries by kind (`readings`, `receipt-out`, …; `unknown` for others).
    pub kinds: std::collections::BTreeMap<&'static str, u64>,
    /// States opening repairs; the audit checked past each of them.
    pub recoverable: Vec<Recoverable>,
    pub problem: Option<Problem>,
}

/// Told how many bytes were checked since it was last told.
pub trait AuditProgress {
    fn advance(&self, bytes: u64);
}

impl<F: Fn(u64)> AuditProgress for F {
    fn advance(&self, bytes: u64) {
        self(bytes)
    }
}

/// Streams a fixed-record file, reporting where it ends early.
struct Records {
    reader: Option<BufReader<File>>,
    len: u64,
    read: u64,
    /// A record read ahead by `peek`, handed out by the next `next`.
    peeked: Option<Vec<u8>>,
}

impl Records {
    fn open(path: &Path) -> Records {
        match File::open(path) {
            Ok(f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                Records {
                    reader: Some(BufReader::with_capacity(1 << 20, f)),
                    len,
                    read: 0,
                    peeked: None,
                }
            }
            Err(_) => Records {
                reader: None,
                len: 0,
                read: 0,
                peeked: None,
            },
        }
    }

    /// The next `N` bytes, or `None` at (or near) the end.
    fn next<const N: usize>(&mut self) -> Option<[u8; N]> {
        if let Some(p) = self.peeked.take() {
            return p.try_into().ok();
        }
        let r = self.reader.as_mut()?;
        let mut b = [0u8; N];
        r.read_exact(&mut b).ok()?;
        self.read += N as u64;
        Some(b)
    }
}

impl Records {
    fn peek<const N: usize>(&mut self) -> Option<[u8; N]> {
        let rec = self.next::<N>()?;
        self.peeked = Some(rec.to_vec());
        Some(rec)
    }
}

/// Entry kinds counted per block: each known kind by its tag, then
/// "unknown" (slot `KINDS`).
const KIND_SLOTS: usize = crate::entry::KINDS as usize + 1;

/// What the parallel pass learnt about one block.
enum BlockWork {
    /// Not checked: its header did not parse or it runs past the end.
    NotRead,
    BadChecksum,
    Bad(&'static str),
    Good {
        leaves: Vec<Digest>,
        kinds: [u64; KIND_SLOTS],
    },
}

/// The frames of a segment, in order, up to the first header that does not
/// parse or the first frame that runs past the end.
fn frames(bytes: &[u8]) -> Vec<(usize, Result<FrameHeader, &'static str>)> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        let h = FrameHeader::parse(&bytes[pos..]);
        let next = h.as_ref().ok().map(|h| pos + h.frame_len() as usize);
        out.push((pos, h));
        match next {
            Some(end) if end <= bytes.len() => pos = end,
            _ => break,
        }
    }
    out
}

fn hash_block(
    bytes: &[u8],
    pos: usize,
    h: &Result<FrameHeader, &'static str>,
    raw: &mut Vec<u8>,
) -> BlockWork {
    let Ok(h) = h else { return BlockWork::NotRead };
    let end = pos + h.frame_len() as usize;
    if end > bytes.len() {
        return BlockWork::NotRead;
    }
    let payload = &bytes[pos + FRAME_HEADER_LEN..end];
    if !h.check(payload) {
        return BlockWork::BadChecksum;
    }
    if let Err(w) = format::decompress_block_into(h, payload, raw) {
        return BlockWork::Bad(w);
    }
    let spans = match format::entry_spans(h, raw) {
        Ok(s) => s,
        Err(w) => return BlockWork::Bad(w),
    };
    let mut kinds = [0u64; KIND_SLOTS];
    let mut leaves = Vec::with_capacity(spans.len());
    for span in spans {
        let slot = match raw[span.clone()] {
            [ENCODING_VERSION, k, ..] if kind_label(k).is_some() => k as usize,
            _ => crate::entry::KINDS as usize,
        };
        kinds[slot] += 1;
        // Every entry follows its length, so there is room for the prefix.
        match Blake3Merkle::hash_leaf_in_place(raw, span) {
            Some(leaf) => leaves.push(leaf),
            None => return BlockWork::Bad("an entry has no length in front of it"),
        }
    }
    BlockWork::Good { leaves, kinds }
}

/// A segment's blocks hashed on every core and handed to the auditor in
/// block order. The auditor's checks of block i (which must run in order)
/// overlap the hashing of the blocks after it, and when block i is not ready
/// the auditor hashes an unclaimed block itself rather than wait.
struct Pipeline<'s> {
    bytes: &'s [u8],
    frames: &'s [(usize, Result<FrameHeader, &'static str>)],
    work: Vec<Mutex<Option<BlockWork>>>,
    /// The next block nobody has started hashing.
    claimed: AtomicUsize,
    /// The block the auditor sleeps waiting for (`usize::MAX`: none).
    awaited: AtomicUsize,
    auditor: Thread,
    /// A hashing thread panicked (a bug): the auditor must not wait for it.
    failed: AtomicBool,
}

impl<'s> Pipeline<'s> {
    fn new(bytes: &'s [u8], frames: &'s [(usize, Result<FrameHeader, &'static str>)]) -> Self {
        Pipeline {
            bytes,
            frames,
            work: frames.iter().map(|_| Mutex::new(None)).collect(),
            claimed: AtomicUsize::new(0),
            awaited: AtomicUsize::new(usize::MAX),
            auditor: std::thread::current(),
            failed: AtomicBool::new(false),
        }
    }

    /// Hashes the next unclaimed block; false when every block is claimed.
    fn hash_next(&self, raw: &mut Vec<u8>) -> bool {
        let i = self.claimed.fetch_add(1, Ordering::SeqCst);
        let Some((pos, h)) = self.frames.get(i) else {
            return false;
        };
        let work = hash_block(self.bytes, *pos, h, raw);
        *self.work[i].lock().expect("no lock holder panics") = Some(work);
        if self.awaited.load(Ordering::SeqCst) == i {
            self.auditor.unpark();
        }
        true
    }

    /// A hashing thread's loop.
    fn hash_all(&self) {
        struct OnPanic<'a, 's>(&'a Pipeline<'s>);
        impl Drop for OnPanic<'_, '_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.failed.store(true, Ordering::SeqCst);
                    self.0.auditor.unpark();
                }
            }
        }
        let _wake_the_auditor = OnPanic(self);
        let mut raw = Vec::new();
        while self.hash_next(&mut raw) {}
    }

    /// Block `i`'s work, hashing other blocks meanwhile; called by the
    /// auditor's thread, for each block in order.
    fn take(&self, i: usize, raw: &mut Vec<u8>) -> BlockWork {
        let ready = || self.work[i].lock().expect("no lock holder panics").take();
        loop {
            if let Some(w) = ready() {
                return w;
            }
            if self.hash_next(raw) {
                continue;
            }
            // Every block is claimed and block i is being hashed elsewhere.
            // Announce the wait before looking again, so that the hasher
            // either sees it (and unparks) or finished before the look.
            self.awaited.store(i, Ordering::SeqCst);
            if let Some(w) = ready() {
                self.awaited.store(usize::MAX, Ordering::SeqCst);
                return w;
            }
            assert!(
                !self.failed.load(Ordering::SeqCst),
                "a hashing thread panicked"
            );
            std::thread::park();
            self.awaited.store(usize::MAX, Ordering::SeqCst);
        }
    }

    /// Stops the hashing threads after the blocks they are on (the audit
    /// found a problem, or the log's end).
    fn stop(&self) {
        self.claimed.store(self.frames.len(), Ordering::SeqCst);
    }
}

/// The first of `heads` whose signature does not verify under `key`, and
/// why; checked on every core, each head on its own (batch verification can
/// accept what single verification refuses, and every other verifier checks
/// heads one by one).
pub(crate) fn first_unverified(
    heads: &[SignedTreeHead],
    key: &VerifyingKey,
) -> Option<(usize, crate::head::HeadError)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = heads.len().div_ceil(threads).max(64);
    std::thread::scope(|s| {
        let handles: Vec<_> = heads
            .chunks(per)
            .enumerate()
            .map(|(c, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .find_map(|(i, h)| h.verify(key).err().map(|e| (c * per + i, e)))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("verifying threads do not panic"))
            .min_by_key(|(i, _)| *i)
    })
}

struct Auditor<'a> {
    dir: &'a Path,
    key: VerifyingKey,
    report: AuditReport,
    index: Records,
    leaves: Records,
    nodes: Records,
    heads: Vec<SignedTreeHead>,
    next_head: usize,
    frontier: Frontier,
    progress: &'a dyn AuditProgress,
    /// Derived files found to end early: not compared past that point.
    index_behind: bool,
    leaves_behind: bool,
    nodes_behind: bool,
    /// A torn, never-acknowledged write was found at the log's end.
    torn_tail: bool,
    /// The auditor's thread's buffer for decompressed blocks.
    raw: Vec<u8>,
}

type Check = Result<(), Problem>;

fn problem(file: &str, what: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        segment: None,
        block: None,
        entry: None,
        what: what.into(),
    }
}

/// What [`floor`] read and decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Floor {
    /// Segment bytes read, checksummed and decompressed.
    pub bytes: u64,
    /// Decompressed bytes hashed.
    pub raw_bytes: u64,
    pub blocks: u64,
}

/// The physical floor under [`audit_log`], for benchmarks: every segment of
/// the log in `dir` read, each block's checksum computed (BLAKE3 over its
/// stored bytes), decompressed (lz4) and its decompressed bytes hashed in
/// one BLAKE3 call, on every core. This is the hashing and decoding any
/// audit of the same bytes must do, without the per-entry framing, the tree,
/// the heads' signatures or any check; a block that fails its checksum or
/// decoding is an error (a floor is measured on sound logs).
pub fn floor(dir: &Path) -> Result<Floor, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut total = Floor::default();
    for n in list_segments(dir)? {
        let path = dir.join(format::segment_name(n));
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut frames = frames(&bytes);
        // Zeros made ready for appends end the active segment: not a block.
        if let Some(&(pos, Err(_))) = frames.last() {
            if bytes[pos..].iter().all(|&b| b == 0) {
                frames.pop();
            }
        }
        let next = AtomicUsize::new(0);
        let raw_bytes = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..threads.min(frames.len()) {
                s.spawn(|| {
                    let mut raw = Vec::new();
                    while let Some((pos, Ok(h))) = frames.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let end = pos + h.frame_len() as usize;
                        let Some(payload) = bytes.get(pos + FRAME_HEADER_LEN..end) else {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        };
                        if !h.check(payload)
                            || format::decompress_block_into(h, payload, &mut raw).is_err()
                        {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                        std::hint::black_box(blake3::hash(&raw));
                        raw_bytes.fetch_add(raw.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        if failed.into_inner() || frames.iter().any(|(_, h)| h.is_err()) {
            return Err(StoreError::Corrupt {
                path: path.display().to_string(),
                what: "a block does not check or decode; the floor is measured on sound logs (run `coldtrail verify`)".into(),
            });
        }
        total.bytes += bytes.len() as u64;
        total.raw_bytes += raw_bytes.into_inner() as u64;
        total.blocks += frames.len() as u64;
    }
    Ok(total)
}

/// Audits the log in `dir`. `Err` only when the directory cannot be read as a
/// log at all; damage is reported in [`AuditReport::problem`].
pub fn audit_log(dir: &Path, progress: &dyn AuditProgress) -> Result<AuditReport, StoreError> {
    let key = match read_meta(dir) {
        Ok(k) => k,
        Err(StoreError::Corrupt { what, .. }) => {
            return Ok(AuditReport {
                problem: Some(problem(format::META_FILE, what)),
                ..AuditReport::default()
            })
        }
        Err(e) => return Err(e),
    };
    let mut a = Auditor {
        dir,
        key,
        report: AuditReport {
            log_id: log_id(&key),
            ..AuditReport::default()
        },
        index: Records::open(&dir.join(format::INDEX_FILE)),
        leaves: Records::open(&dir.join(format::LEAVES_FILE)),
        nodes: Records::open(&dir.join(format::NODES_FILE)),
        heads: Vec::new(),
        next_head: 0,
        frontier: Frontier::default(),
        progress,
        index_behind: false,
        leaves_behind: false,
        nodes_behind: false,
        torn_tail: false,
        raw: Vec::new(),
    };
    if let Err(p) = a.run() {
        a.report.problem = Some(p);
    }
    Ok(a.report)
}

impl Auditor<'_> {
    fn recoverable(&mut self, file: &str, what: String) {
        self.report.recoverable.push(Recoverable {
            file: file.to_string(),
            what,
        });
    }

    /// The next index record, unless the index was found to end early.
    fn next_index_record(&mut self) -> Option<[u8; format::INDEX_RECORD_LEN]> {
        if self.index_behind {
            None
        } else {
            self.index.next()
        }
    }

    fn next_index_peek(&mut self) -> Option<[u8; format::INDEX_RECORD_LEN]> {
        if self.index_behind {
            None
        } else {
            self.index.peek()
        }
    }

    /// The offset of the next block the index lists, if it is in segment `n`.
    fn indexed_block(&mut self, n: u64) -> Option<u64> {
        if self.index_behind {
            return None;
        }
        self.index
            .peek::<{ format::INDEX_RECORD_LEN }>()
            .and_then(|r| BlockLoc::decode(&r))
            .filter(|loc| loc.segment == n)
            .map(|loc| loc.offset)
    }

    fn run(&mut self) -> Check {
        self.load_heads()?;
        self.check_heads_up_to(0)?;
        let segments = list_segments(self.dir).map_err(|e| problem(".", e.to_string()))?;
        // The next segment is read while this one is checked (reading is
        // most of a core's time at a segment's start, while the others wait);
        // at most two segments are in memory.
        let dir = self.dir;
        std::thread::scope(|s| {
            let (ready, read) = std::sync::mpsc::sync_channel(0);
            let numbers = segments.clone();
            s.spawn(move || {
                for n in numbers {
                    if ready
                        .send(fs::read(dir.join(format::segment_name(n))))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            for (i, &n) in segments.iter().enumerate() {
                if n != i as u64 {
                    return Err(problem(
                        &format::segment_name(i as u64),
                        "segment is missing",
                    ));
                }
                let first = self.frontier.size();
                let bytes = read.recv().expect("the reader sends every segment");
                self.segment(n, i + 1 == segments.len(), bytes)?;
                if i + 1 < segments.len() {
                    self.sealed_ids(n, first)?;
                }
                self.report.segments += 1;
            }
            Ok(())
        })?;
        let entries = self.frontier.size();
        self.report.entries = entries;
        if !self.index_behind && self.index.read != self.index.len {
            // The index lists blocks the segments no longer hold: name the
            // segment and block the index says are missing.
            return Err(match self.index.next::<{ format::INDEX_RECORD_LEN }>().and_then(|r| BlockLoc::decode(&r)) {
                Some(loc) => Problem {
                    segment: Some(loc.segment),
                    block: Some((loc.offset, loc.first_index, loc.end_index())),
                    ..problem(
                        &format::segment_name(loc.segment),
                        "block listed in the index is missing: the segment was cut short or removed",
                    )
                },
                None => problem(format::INDEX_FILE, "ends with a damaged or partial record"),
            });
        }
        let leaves_ok = match self.leaves.len.cmp(&(entries * 32)) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => self.leaves_behind,
            std::cmp::Ordering::Greater => self.torn_tail,
        };
        if self.leaves.len > entries * 32 && self.torn_tail {
            self.recoverable(
                format::LEAVES_FILE,
                "holds leaf hashes past the torn write: opening cuts them off".into(),
            );
        }
        if !leaves_ok {
            return Err(problem(
                format::LEAVES_FILE,
                format!(
                    "holds {} bytes; {entries} entries need {}",
                    self.leaves.len,
                    entries * 32
                ),
            ));
        }
        let want_nodes = (entries >> format::NODE_LEVEL) * 32;
        let nodes_ok = match self.nodes.len.cmp(&want_nodes) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => self.nodes_behind,
            std::cmp::Ordering::Greater => self.torn_tail,
        };
        if !nodes_ok {
            return Err(problem(
                format::NODES_FILE,
                format!(
                    "holds {} bytes; {entries} entries need {want_nodes}",
                    self.nodes.len
                ),
            ));
        }
        if let Some(h) = self.heads.get(self.next_head) {
            return Err(problem(
                format::HEADS_FILE,
                format!(
                    "a signed head commits to {} entries but the segments hold {entries}",
                    h.head.size
                ),
            ));
        }
        // An unsigned tail is not tamper-evident: a clean close or an open
        // signs a head over everything, so a closed log has none.
        let signed = self.report.latest_head.map_or(0, |h| h.head.size);
        if signed < entries {
            self.recoverable(
                format::HEADS_FILE,
                format!("entries {signed}..{entries} are not covered by any signed head (the log was not closed cleanly): opening signs one; until then they are not tamper-evident"),
            );
        }
        self.report.bytes += self.index.len + self.leaves.len + self.nodes.len;
        Ok(())
    }

    fn load_heads(&mut self) -> Check {
        let bytes = match fs::read(self.dir.join(format::HEADS_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(problem(format::HEADS_FILE, e.to_string())),
        };
        if bytes.len() % format::HEAD_RECORD_LEN != 0 {
            self.recoverable(
                format::HEADS_FILE,
                "ends with a torn record: opening cuts it off".into(),
            );
        }
        // Zeroed records after the last head (`format::HEADS_AHEAD`), and a
        // head torn while written over them: as recovery on open judges them.
        const REC: usize = format::HEAD_RECORD_LEN;
        let end = format::heads_end(&bytes[..bytes.len() - bytes.len() % REC]);
        if end.torn {
            self.recoverable(
                format::HEADS_FILE,
                format!("record {} is a torn write over the zeroed records after it (never handed out): opening cuts it off", end.heads),
            );
        }
        if end.zeroed > 0 {
            self.recoverable(
                format::HEADS_FILE,
                format!("{} zeroed records after the last head, made ready for heads (the log is open, or was not closed cleanly): opening cuts them off", end.zeroed),
            );
        }
        let bytes = &bytes[..end.heads * REC];
        // Records in order up to the first whose checksum fails; their
        // signatures are checked on every core (ed25519 is most of an audit
        // of a log with many heads), then problems are named in record order.
        let mut decoded = Vec::new();
        let mut bad_checksum_at = None;
        for (i, rec) in bytes.chunks_exact(format::HEAD_RECORD_LEN).enumerate() {
            match format::decode_head(rec) {
                Some(h) => decoded.push(h),
                None => {
                    bad_checksum_at = Some(i);
                    break;
                }
            }
        }
        let goes_back = decoded.windows(2).position(|w| {
            w[1].head.size < w[0].head.size || w[1].head.timestamp_ms < w[0].head.timestamp_ms
        });
        let unverified = first_unverified(&decoded, &self.key);
        // The first record with a problem is named; within one record, its
        // signature before its order.
        match (unverified, goes_back.map(|w| w + 1)) {
            (Some((i, e)), order) if order.is_none_or(|o| i <= o) => {
                return Err(problem(
                    format::HEADS_FILE,
                    format!("record {i} (size {}): {e}", decoded[i].head.size),
                ));
            }
            (_, Some(i)) => {
                return Err(problem(
                    format::HEADS_FILE,
                    format!(
                        "record {i} (size {}) goes back from size {}",
                        decoded[i].head.size,
                        decoded[i - 1].head.size
                    ),
                ));
            }
            _ => {}
        }
        let prev = decoded.last().copied();
        self.heads.extend(decoded);
        if let Some(i) = bad_checksum_at {
            return Err(problem(
                format::HEADS_FILE,
                format!("record {i}: checksum does not match"),
            ));
        }
        self.report.heads = self.heads.len() as u64;
        self.report.latest_head = prev;
        self.report.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Checks every head whose size the tree has now reached.
    fn check_heads_up_to(&mut self, size: u64) -> Check {
        while let Some(h) = self.heads.get(self.next_head) {
            if h.head.size != size {
                break;
            }
            let root = self.frontier.root();
            if root != h.head.root {
                return Err(Problem {
                    entry: size.checked_sub(1),
                    ..problem(
                        format::HEADS_FILE,
                        format!(
                            "record {}: signed root {} at size {size}, but the stored entries give {root}",
                            self.next_head, h.head.root
                        ),
                    )
                });
            }
            self.next_head += 1;
        }
        Ok(())
    }

    fn segment(&mut self, n: u64, last: bool, bytes: std::io::Result<Vec<u8>>) -> Check {
        let name = format::segment_name(n);
        let seg_problem = |what: String| Problem {
            segment: Some(n),
            ..problem(&name, what)
        };
        let bytes = bytes.map_err(|e| seg_problem(e.to_string()))?;
        if last && bytes.len() < SEGMENT_HEADER_LEN && self.indexed_block(n).is_none() {
            self.recoverable(
                &name,
                "a new segment torn before its header was written: opening writes the header"
                    .into(),
            );
            self.report.bytes += bytes.len() as u64;
            return Ok(());
        }
        let header = SegmentHeader::decode(&bytes).map_err(|w| seg_problem(w.to_string()))?;
        if header.log_id != self.report.log_id || header.number != n {
            return Err(seg_problem(
                "segment header names another log or number".into(),
            ));
        }
        if header.first_index != self.frontier.size() {
            return Err(seg_problem(format!(
                "segment starts at entry {}, expected {}",
                header.first_index,
                self.frontier.size()
            )));
        }
        self.progress.advance(SEGMENT_HEADER_LEN as u64);
        let frames = frames(&bytes);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pipe = Pipeline::new(&bytes, &frames);
        let stored_bytes = std::thread::scope(|s| {
            let pipe = &pipe;
            for _ in 1..threads.min(frames.len()) {
                s.spawn(move || pipe.hash_all());
            }
            let checked = self.blocks(n, last, &bytes, pipe);
            pipe.stop();
            checked
        })?;
        // A segment cut short at a block boundary: the index still lists
        // blocks in it.
        if let Some(loc) = self.next_index_peek().and_then(|r| BlockLoc::decode(&r)) {
            if loc.segment == n {
                return Err(Problem {
                    segment: Some(n),
                    block: Some((loc.offset, loc.first_index, loc.end_index())),
                    ..problem(
                        &name,
                        "block listed in the index is missing: the segment was cut short",
                    )
                });
            }
        }
        self.report.bytes += stored_bytes as u64;
        Ok(())
    }

    /// Checks a segment's blocks in order, as the pipeline hands them over;
    /// returns the segment's stored bytes (zeros made ready for appends not
    /// counted).
    fn blocks(
        &mut self,
        n: u64,
        last: bool,
        bytes: &[u8],
        pipe: &Pipeline<'_>,
    ) -> Result<usize, Problem> {
        let name = format::segment_name(n);
        let mut stored_bytes = bytes.len();
        for (b, &(pos, parsed)) in pipe.frames.iter().enumerate() {
            let work = pipe.take(b, &mut self.raw);
            let expect_first = self.frontier.size();
            // A write that failed at the log's very end was never
            // acknowledged (nothing lists it, nothing valid follows it):
            // opening truncates it, as recovery does.
            let torn = |a: &mut Self| {
                last && a.indexed_block(n) != Some(pos as u64)
                    && !super::embedded::valid_frame_follows(&bytes[pos + 1..])
            };
            let broken = match &parsed {
                Err(_) => true,
                Ok(h) => {
                    pos + h.frame_len() as usize > bytes.len()
                        || matches!(work, BlockWork::BadChecksum)
                }
            };
            if broken && torn(self) {
                if self.unacknowledged_tail(&name, bytes, pos) {
                    stored_bytes = pos;
                }
                break;
            }
            let at_block = |what: String, to: u64| Problem {
                segment: Some(n),
                block: Some((pos as u64, expect_first, to)),
                ..problem(&name, what)
            };
            let h = parsed.map_err(|w| {
                let tail = if last && bytes.len() - pos < FRAME_HEADER_LEN {
                    " (a torn write at the tail: opening the store truncates it)"
                } else {
                    ""
                };
                at_block(format!("{w}{tail}"), expect_first)
            })?;
            let to = expect_first + u64::from(h.count);
            let end = pos + h.frame_len() as usize;
            if end > bytes.len() {
                return Err(at_block(
                    "block runs past the end of the segment".into(),
                    to,
                ));
            }
            let (leaves, kinds) = match work {
                BlockWork::BadChecksum => {
                    return Err(at_block("block checksum does not match".into(), to))
                }
                BlockWork::Bad(w) if h.first_index == expect_first => {
                    return Err(at_block(w.to_string(), to))
                }
                BlockWork::Bad(_) | BlockWork::NotRead => (Vec::new(), [0; KIND_SLOTS]),
                BlockWork::Good { leaves, kinds } => (leaves, kinds),
            };
            if h.first_index != expect_first || h.count == 0 {
                return Err(at_block(
                    format!(
                        "block holds entries from {}, expected from {expect_first}",
                        h.first_index
                    ),
                    to,
                ));
            }
            let loc = BlockLoc {
                first_index: h.first_index,
                count: h.count,
                segment: n,
                offset: pos as u64,
                frame_len: h.frame_len() as u32,
            };
            let at = (pos as u64, expect_first, to);
            self.check_index_record(n, &name, loc, at)?;
            self.count_kinds(&kinds);
            self.check_leaves(n, at, leaves)?;
            self.report.blocks += 1;
            self.report.entry_bytes += u64::from(h.raw_len);
            self.progress.advance(end as u64 - pos as u64);
        }
        Ok(stored_bytes)
    }

    // The three per-block checks below are inlined into `blocks`, as they
    // were written before it was split: measured in BENCHMARKS.md (twelfth
    // session), the split without this read the realistic log 5–7 % slower.
    /// The index file's next record describes this block (at `(offset,
    /// first, end)` in segment `n`), or the index stops short (recoverable).
    #[inline(always)]
    fn check_index_record(
        &mut self,
        n: u64,
        name: &str,
        loc: BlockLoc,
        at: (u64, u64, u64),
    ) -> Check {
        match self.next_index_record() {
            _ if self.index_behind => {}
            Some(rec) if BlockLoc::decode(&rec) == Some(loc) => {}
            Some(rec) if BlockLoc::decode(&rec).is_none() && self.index.read == self.index.len => {
                self.index_behind = true;
                self.recoverable(
                    format::INDEX_FILE,
                    format!(
                        "its last record is torn: opening re-indexes from entry {}",
                        at.1
                    ),
                );
            }
            Some(_) => {
                return Err(Problem {
                    segment: Some(n),
                    block: Some(at),
                    ..problem(
                        format::INDEX_FILE,
                        format!("record {} does not describe this block", self.report.blocks),
                    )
                })
            }
            None => {
                self.index_behind = true;
                self.recoverable(
                    format::INDEX_FILE,
                    format!("ends before the block at {name} offset {} (entry {}): opening re-indexes the blocks from there", at.0, at.1),
                );
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn count_kinds(&mut self, kinds: &[u64; KIND_SLOTS]) {
        for (slot, k) in kinds.iter().enumerate() {
            if *k > 0 {
                let label = u8::try_from(slot)
                    .ok()
                    .and_then(kind_label)
                    .unwrap_or("unknown");
                *self.report.kinds.entry(label).or_insert(0) += k;
            }
        }
    }

    /// A block's leaves against the stored leaf hashes and subtree nodes,
    /// and every signed head they reach.
    #[inline(always)]
    fn check_leaves(&mut self, n: u64, at: (u64, u64, u64), leaves: Vec<Digest>) -> Check {
        for (i, leaf) in leaves.into_iter().enumerate() {
            let index = at.1 + i as u64;
            match self.leaves.next::<32>() {
                _ if self.leaves_behind => {}
                Some(b) if b == leaf.0 => {}
                Some(_) => {
                    return Err(Problem {
                        segment: Some(n),
                        block: Some(at),
                        entry: Some(index),
                        ..problem(
                            format::LEAVES_FILE,
                            "stored leaf hash differs from the entry's hash",
                        )
                    })
                }
                None => {
                    self.leaves_behind = true;
                    self.recoverable(
                        format::LEAVES_FILE,
                        format!("ends at entry {index}: opening rebuilds the leaf hashes after it from the segments"),
                    );
                }
            }
            if let Some(chunk) = self.frontier.push_completing(leaf, format::NODE_LEVEL) {
                let k = (index >> format::NODE_LEVEL) as usize;
                let stored = if self.nodes_behind {
                    None
                } else {
                    self.nodes.next::<32>()
                };
                if stored.is_none() && !self.nodes_behind {
                    self.nodes_behind = true;
                    self.recoverable(
                        format::NODES_FILE,
                        format!(
                            "ends at node {k}: opening rebuilds the nodes after it from the leaves"
                        ),
                    );
                }
                if stored.is_some_and(|b| b != chunk.0) {
                    return Err(Problem {
                        entry: Some(index),
                        ..problem(
                            format::NODES_FILE,
                            format!("node {k} differs from the stored leaves' subtree"),
                        )
                    });
                }
            }
            self.check_heads_up_to(index + 1)?;
        }
        Ok(())
    }

    /// A broken block at `pos` that no acknowledged write reaches: zeros made
    /// ready for appends, or a torn write. Both are recoverable; returns true
    /// for zeros (which do not count as stored bytes).
    fn unacknowledged_tail(&mut self, name: &str, bytes: &[u8], pos: usize) -> bool {
        let zeros = bytes[pos..].iter().all(|&b| b == 0);
        let what = if zeros {
            // Segments are zeroed ahead of need; a clean close cuts
            // the zeros off, a crash leaves them.
            format!(
                "{} bytes of zeros after the last block at offset {pos}, made ready for appends (the log is open, or was not closed cleanly): opening cuts them off",
                bytes.len() - pos
            )
        } else {
            // Derived files may run past a torn write, not past zeros.
            self.torn_tail = true;
            format!(
                "a torn write at offset {pos} ({} bytes, never acknowledged): opening truncates it",
                bytes.len() - pos
            )
        };
        self.recoverable(name, what);
        zeros
    }

    /// A sealed segment's ids file must hold exactly its entries' ids, sorted.
    fn sealed_ids(&mut self, n: u64, first: u64) -> Check {
        let name = format::ids_name(n);
        let count = self.frontier.size() - first;
        if self.leaves_behind {
            // Checked against the stored leaf hashes, which opening rebuilds first.
            return Ok(());
        }
        let stored = match fs::read(self.dir.join(&name)) {
            Ok(b) if b.len() as u64 == count * format::ID_RECORD_LEN as u64 => b,
            // Written once when the segment is sealed; a crash can leave it
            // missing or short, and opening rewrites it then.
            Ok(_) | Err(_) => {
                self.recoverable(
                    &name,
                    "missing or cut short: opening rebuilds it from the leaf hashes".into(),
                );
                return Ok(());
            }
        };
        let leaves = File::open(self.dir.join(format::LEAVES_FILE))
            .map_err(|e| problem(format::LEAVES_FILE, e.to_string()))?;
        let mut buf = vec![0u8; count as usize * 32];
        std::os::unix::fs::FileExt::read_exact_at(&leaves, &mut buf, first * 32)
            .map_err(|e| problem(format::LEAVES_FILE, e.to_string()))?;
        let pairs = buf
            .chunks_exact(32)
            .zip(first..)
            .map(|(c, i)| {
                (
                    format::id_prefix(&Digest(c.try_into().expect("32 bytes"))),
                    i,
                )
            })
            .collect();
        if format::encode_ids(pairs) != stored {
            return Err(Problem {
                segment: Some(n),
                ..problem(&name, "does not list the segment's entry ids")
            });
        }
        self.report.bytes += stored.len() as u64;
        Ok(())
    }
}
