//! The embedded store: one log in one directory of append-only files.
//!
//! One writer thread owns every file handle that writes. Appenders hash their
//! entries on their own threads and queue them on a bounded channel; the
//! writer drains whatever has queued, writes it as one or more blocks, fsyncs
//! once, updates the derived files and the in-memory tree, and only then
//! answers every waiter of the group (group commit). Readers share the state
//! behind a lock and read blocks with positioned reads, checking each block's
//! checksum every time.
//!
//! Recovery on open: the segments are the record. The derived files (`index`,
//! `leaves`, `nodes`, `*.ids`) are cut back to what the segments hold, and
//! blocks after the last indexed one are re-read and re-indexed. A block that
//! fails its checksum at the very end of the last segment is a write that was
//! never acknowledged and is truncated; a failing block anywhere else, or one
//! followed by a valid block, is damage and the store refuses to open.
//!
//! Segments are zeroed ahead of need: while one fills, a helper thread writes
//! the next one's file as zeros to its full capacity and fsyncs it, and the
//! writer overwrites it in place. An `fdatasync` of a file that does not grow
//! writes data only; one that grows must also commit the new size through the
//! filesystem's journal, which waits on every other file's pending writes (the
//! slow tail of an acknowledgement). Zeros past the last block are therefore
//! normal in the active segment after a crash; recovery cuts them off as it
//! cuts a torn write, and a segment is cut to its last block when it is sealed
//! and when the log closes, so a closed log holds no zeros.
//!
//! By job: `open.rs` (create, open, recovery), `writer.rs` (the writer
//! thread: groups, blocks, the fsync, rolls, heads), `store_impl.rs` (the
//! `Store` trait and block reads), `files.rs` (file helpers); this file
//! holds the types they share. The audit (`../audit.rs`) reads the same
//! files without opening the log.
//!
//! ## Data flow of an append (embedded store)
//!
//! 1. A caller hands encoded entries to `Store::submit`; their ids (Merkle leaf hashes) are
//!    computed on the caller's thread; the request joins a bounded queue (full: `QueueFull`).
//! 2. The store's one writer thread drains whatever is queued, packs it into lz4 blocks
//!    (`format::pack_block`, framed with length, first index, count and a BLAKE3 checksum),
//!    writes them in place into the active segment and calls `fdatasync` once for the whole
//!    group. Segments after the first are zeroed ahead of need: once the active one is half
//!    full, a helper thread writes the next one's file (`NNNNNNNN.seg.zero`) as zeros to its
//!    capacity (1 MiB for segment 0, doubling up to `segment_bytes`) and fsyncs it; at the roll
//!    the writer writes its header and renames it into place. An `fdatasync` of a file that
//!    does not grow writes data only; one that grows also commits the new size through the
//!    ext4 journal, which waits on other files' writes: that was the slow tail of an ack.
//!    Head records are written the same way, over records the writer zeroes 256 at a time
//!    (`format::HEADS_AHEAD`), at least one of them after the last head.
//! 3. Only then: leaf hashes go to `leaves`, block locations to `index`, completed 16-leaf
//!    subtree roots to `nodes`; the in-memory tree and id lookup are extended; every waiter
//!    of the group is answered with its first index and ids.
//! 4. At least every `head_interval` (250 ms) while appends arrive, within one `head_interval`
//!    of the log going idle, at once when asked (`request_head`, `sign_head`), at open and at
//!    close, the writer signs a tree head and fsyncs it to `heads` before handing it out.
//!    Readers that only need a head covering what is committed (proofs, the receipt relay) ask
//!    with `request_head_soon`: asks share the next head, signed at most once per `head_gap`
//!    (10 ms) (`store/group.rs`: `head_wait`, `head_due`, for both stores). Every head is kept
//!    and every audit verifies each one, so a head per ask would cost a signature, an fsync
//!    and an audit-time verification per proof or relay run. Only one process may open a log
//!    (a lock on `LOG`).
//!
//! Reads (`entry`, `entries`) locate the block through the index and check the block's
//! checksum on every read. Proofs come from `store/tree.rs`: levels at and above 16 leaves are
//! in memory (`size/16 × 64` bytes), the lowest four levels are rebuilt from at most 16 leaf
//! hashes read from `leaves`, checked against their run's root in memory.
//!
//! ## On disk (one log = one directory)
//!
//! A node's directory also holds `checkpoints/` (derived; see "Checkpoints") beside the analytics
//! tables. Each log: `LOG` (public key), `NNNNNNNN.seg` (segment header, then block frames), `index`, `leaves`,
//! `nodes`, `NNNNNNNN.ids` (a sealed segment's ids, sorted), `heads`. While the log is open the
//! active segment may hold zeros after its last block, and `NNNNNNNN.seg.zero` may be the next
//! segment being zeroed, and `heads` ends in zeroed records; sealing a segment and closing the
//! log cut segments to their last block and `heads` to its last head, and opening removes a
//! `.seg.zero`, so a closed log holds none of them. A head record that fails its checksum with
//! zeroed records after it is a write torn by a crash (never handed out) and is cut off; at the
//! end of a file without zeroed records (a closed log's) it is damage. Formats and checksums are
//! in `ledger/src/store/format.rs`. Segments and `heads` are the record; everything else is
//! derived and rebuilt from the segments when it is behind.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::format::{
    self, BlockLoc, FrameHeader, SegmentHeader, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::front::{Front, Gate};
use super::group::{head_due, head_wait, Group, Request};
use super::ids::{ActiveIds, SealedIds};
use super::tree::{chunk_root, LeafSource, StoredTree};
use super::{Pending, Store, StoreError, FSYNC_SECONDS, GROUP_ENTRIES, HEAD_SECONDS, ROLL_SECONDS};
use crate::entry::entry_id;
use crate::hash::Digest;
use crate::head::{log_id, SignedTreeHead, TreeHead};

mod files;
mod open;
mod store_impl;
mod writer;

pub use files::open_elsewhere;
use files::*;
pub(crate) use files::{list_segments, read_meta, valid_frame_follows};

/// Limits and timings of an embedded store. Every bound is explicit.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A segment is sealed and a new one started once it reaches this size…
    /// (the first ones are smaller, see `segment_capacity`)
    pub segment_bytes: u64,
    /// …or holds this many entries (which bounds the ids held in memory and
    /// re-read at open).
    pub segment_entries: u64,
    /// At most this many entries in one block.
    pub max_block_entries: usize,
    /// At most this many raw (uncompressed) bytes in one block.
    pub max_block_bytes: usize,
    /// At most this many bytes in one entry.
    pub max_entry_bytes: usize,
    /// Append requests that may wait for the writer; more are refused.
    pub queue_depth: usize,
    /// While appends arrive, a head is signed at least this often (and
    /// within this long of the log going idle).
    pub head_interval: Duration,
    /// Heads readers ask for with `request_head_soon` (proofs, the receipt
    /// relay) are signed at most this often; asks in between share one.
    pub head_gap: Duration,
    /// Where heads' timestamps come from.
    pub clock: crate::clock::SharedClock,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            segment_bytes: 256 << 20,
            segment_entries: 1 << 18,
            max_block_entries: 4096,
            max_block_bytes: 4 << 20,
            max_entry_bytes: 4 << 20,
            queue_depth: 1024,
            head_interval: Duration::from_millis(250),
            head_gap: Duration::from_millis(10),
            clock: crate::clock::system(),
        }
    }
}

/// Segment 0's capacity; each next segment's doubles, up to `segment_bytes`.
/// A small log thus zeroes little ahead of its data, a busy one reaches full
/// segments after a few rolls.
const FIRST_SEGMENT_CAPACITY: u64 = 1 << 20;

/// The bytes segment `n` holds before it is sealed, and to which its file is
/// zeroed ahead of need (one block more when a single block is larger).
pub(crate) fn segment_capacity(config: &StoreConfig, n: u64) -> u64 {
    config
        .segment_bytes
        .min(FIRST_SEGMENT_CAPACITY << n.min(40))
}

/// A decoded block: its first entry index and its entries.
type CachedBlock = (u64, Arc<Vec<Vec<u8>>>);

/// What readers share with the writer.
struct State {
    blocks: Vec<BlockLoc>,
    tree: StoredTree,
    latest_head: Option<SignedTreeHead>,
    /// A read handle on `heads`, and how many whole records it holds: the
    /// writer counts a record only once it is durable.
    heads: Arc<File>,
    head_count: u64,
    /// Read handles, by segment number.
    segments: BTreeMap<u64, Arc<File>>,
    /// `(id prefix, index)` of the entries in the active segment.
    active_ids: ActiveIds,
    /// Sealed segments' sorted id files: (segment, file, record count).
    sealed_ids: Vec<SealedIds>,
}

struct Shared {
    dir: PathBuf,
    key: VerifyingKey,
    state: RwLock<State>,
    /// Whether the store still runs, and what its queue holds.
    gate: Arc<Gate>,
    /// The last block read, decoded: sequential readers hit it.
    cache: Mutex<Option<CachedBlock>>,
    /// Holds an exclusive lock on the `LOG` file while the store is open:
    /// two processes appending to one log would interleave blocks.
    _lock: File,
}

/// An append-only log in a directory. Dropping it finishes queued appends and
/// stops the writer.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    front: Front<SyncSender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.front.close();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// The thread that owns every write handle.
struct Writer {
    shared: Arc<Shared>,
    key: SigningKey,
    config: StoreConfig,
    log_id: Digest,
    active_no: u64,
    /// Index of the first entry in the active segment.
    active_first: u64,
    active: File,
    /// Bytes of the active segment in blocks (and its header).
    active_len: u64,
    /// The active segment file's length: past `active_len` it holds zeros.
    active_file_len: u64,
    /// The next segment, zeroed ahead once the active one is half full.
    prepared: Option<Prepared>,
    index: File,
    leaves: File,
    nodes: File,
    heads: File,
    /// Bytes of `heads` in records, and the file's length: zeros after.
    heads_len: u64,
    heads_file_len: u64,
    last_head_at: Instant,
}
