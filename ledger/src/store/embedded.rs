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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::oneshot;

use super::format::{
    self, BlockLoc, FrameHeader, SegmentHeader, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::group::{head_due, head_wait, Group, Request};
use super::ids::{ActiveIds, SealedIds};
use super::tree::{chunk_root, LeafSource, StoredTree};
use super::{
    check_append, Pending, Store, StoreError, FSYNC_SECONDS, GROUP_ENTRIES, HEAD_SECONDS,
    ROLL_SECONDS,
};
use crate::entry::entry_id;
use crate::hash::Digest;
use crate::head::{log_id, SignedTreeHead, TreeHead};

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
    /// Set when a write failed: after a failed fsync the page cache cannot be
    /// trusted, so the store stops rather than guess (fail-stop).
    stopped: Mutex<Option<String>>,
    /// The last block read, decoded: sequential readers hit it.
    cache: Mutex<Option<CachedBlock>>,
    /// Requests sent to the writer and not yet taken by it.
    queued: std::sync::atomic::AtomicUsize,
    /// Holds an exclusive lock on the `LOG` file while the store is open:
    /// two processes appending to one log would interleave blocks.
    _lock: File,
}

/// An append-only log in a directory. Dropping it finishes queued appends and
/// stops the writer.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Request>>,
    writer: Option<JoinHandle<()>>,
    config: StoreConfig,
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

/// Opens (or creates) a file the writer writes at offsets, over the zeros it
/// made ready (segments, heads): not in append mode, where Linux would put
/// every positioned write at the end.
fn open_in_place(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::durable::sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}

fn read_all(path: &Path) -> Result<Vec<u8>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    cut(&f, len).map_err(|e| StoreError::io(path, e))
}

/// The offset just past the last non-zero byte of `file` in `from..len`, or
/// `from` if all of it is zero. Reads backwards: a segment zeroed ahead holds
/// its data first and up to `segment_bytes` of zeros after.
fn nonzero_end(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut end = len;
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// The bytes of a heads file of `len` bytes that hold heads: whole records
/// before the zeroed ones at its end, less the last if it is a torn write
/// over them (a record that fails its checksum with zeroed records after
/// it). A closed log has no zeroed records, so there its last record is
/// taken as it is and judged by the caller.
fn heads_in_use(file: &File, len: u64) -> io::Result<u64> {
    const REC: u64 = format::HEAD_RECORD_LEN as u64;
    let whole = len - len % REC;
    // The writer leaves fewer than `HEADS_AHEAD` zeroed records, so the
    // last head is in this window unless someone added zeros: then the
    // whole file is read, to judge it as `verify` does.
    let mut from = whole.saturating_sub(REC * (format::HEADS_AHEAD as u64 + 1));
    loop {
        let mut tail = vec![0u8; (whole - from) as usize];
        file.read_exact_at(&mut tail, from)?;
        let end = format::heads_end(&tail);
        if end.heads > 0 || end.torn || from == 0 {
            return Ok(from + REC * end.heads as u64);
        }
        from = 0;
    }
}

/// Cuts `file` to `len` bytes, durably: a torn tail, or the zeros made ready
/// after a file's last block or head.
fn cut(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len).and_then(|_| file.sync_all())
}

/// Removes next segments left half-zeroed by a crash (never numbered, never
/// written to): the writer prepares its own.
fn remove_prepared(dir: &Path) -> Result<(), StoreError> {
    for e in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let e = e.map_err(|e| StoreError::io(dir, e))?;
        if e.file_name().to_str().is_some_and(format::is_prepared_name) {
            fs::remove_file(e.path()).map_err(|err| StoreError::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// Writes a file of `len` zeros and makes it durable, in steps so that its
/// flushes do not hold the disk for long at a time.
fn zeroed_file(path: &Path, len: u64) -> io::Result<File> {
    const STEP: u64 = 4 << 20;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    let zeros = vec![0u8; STEP.min(len) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(STEP);
        f.write_all_at(&zeros[..n as usize], at)?;
        f.sync_data()?;
        at += n;
    }
    f.sync_all()?;
    Ok(f)
}

/// The next segment's file, being zeroed on a helper thread.
struct Prepared {
    number: u64,
    path: PathBuf,
    job: JoinHandle<io::Result<File>>,
}

impl Prepared {
    /// Waits for the file; `None` (the file removed) if it is not segment
    /// `n`'s or zeroing it failed: the writer then starts `n` as an empty,
    /// growing file, as it would without preparation.
    fn finish(self, n: u64) -> Option<File> {
        let made = self.job.join();
        match made {
            Ok(Ok(f)) if self.number == n => Some(f),
            other => {
                if let Ok(Err(e)) = other {
                    tracing::warn!(path = %self.path.display(), error = %e, "zeroing the next segment failed; it grows as written");
                }
                let _ = fs::remove_file(&self.path);
                None
            }
        }
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// Lists the segment numbers in `dir`, in order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let e = e.map_err(|e| StoreError::io(dir, e))?;
        if let Some(n) = e.file_name().to_str().and_then(format::parse_segment_name) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Whether another process holds the log open (a running server, say).
pub fn open_elsewhere(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(format::META_FILE)) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Takes the exclusive lock that says this process owns the log.
fn lock_log(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(format::META_FILE);
    let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Config(format!(
            "{} is in use by another process (a running server?); stop it first",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
    }
}

/// Reads the `LOG` meta file.
pub(crate) fn read_meta(dir: &Path) -> Result<VerifyingKey, StoreError> {
    let path = dir.join(format::META_FILE);
    let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
    format::decode_meta(&bytes).map_err(|what| corrupt(&path, what))
}

/// Reads one frame at `offset` of `file`: header and checked payload.
pub(crate) fn read_frame(file: &File, offset: u64) -> Result<(FrameHeader, Vec<u8>), &'static str> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut head, offset)
        .map_err(|_| "block header is cut short")?;
    let h = FrameHeader::parse(&head)?;
    let mut payload = vec![0u8; h.payload_len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN as u64)
        .map_err(|_| "block payload is cut short")?;
    if !h.check(&payload) {
        return Err("block checksum does not match");
    }
    Ok((h, payload))
}

/// Is there a valid frame anywhere in `bytes`? Used to tell a torn tail (only
/// garbage follows) from damage in the middle (valid blocks follow).
pub(super) fn valid_frame_follows(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i + FRAME_HEADER_LEN <= bytes.len() {
        if &bytes[i..i + 4] == b"CTBK" {
            if let Ok(h) = FrameHeader::parse(&bytes[i..]) {
                let end = i + h.frame_len() as usize;
                if end <= bytes.len() && h.check(&bytes[i + FRAME_HEADER_LEN..end]) {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

impl EmbeddedStore {
    /// Creates a new log in `dir` (which must not hold one) under `key`.
    pub fn create(
        dir: &Path,
        key: SigningKey,
        config: StoreConfig,
    ) -> Result<EmbeddedStore, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let meta = dir.join(format::META_FILE);
        if meta.exists() {
            return Err(StoreError::Config(format!(
                "{} already holds a log",
                dir.display()
            )));
        }
        write_file_synced(&meta, &format::encode_meta(&key.verifying_key()))?;
        Self::open(dir, key, config)
    }

    /// Opens the log in `dir`, creating it if the directory holds none.
    pub fn open_or_create(
        dir: &Path,
        key: SigningKey,
        config: StoreConfig,
    ) -> Result<EmbeddedStore, StoreError> {
        if dir.join(format::META_FILE).exists() {
            Self::open(dir, key, config)
        } else {
            Self::create(dir, key, config)
        }
    }

    /// Opens an existing log, recovering from a crash (see the module docs).
    pub fn open(
        dir: &Path,
        key: SigningKey,
        config: StoreConfig,
    ) -> Result<EmbeddedStore, StoreError> {
        if config.max_block_entries == 0 || config.queue_depth == 0 || config.max_block_bytes == 0 {
            return Err(StoreError::Config(
                "block limits and queue depth must be positive".into(),
            ));
        }
        let lock = lock_log(dir)?;
        let stored_key = read_meta(dir)?;
        if stored_key != key.verifying_key() {
            return Err(StoreError::Config(format!(
                "{} belongs to log {}, not to the key given (log {})",
                dir.display(),
                log_id(&stored_key),
                log_id(&key.verifying_key())
            )));
        }
        let id = log_id(&stored_key);
        let recovered = recover(dir, id)?;
        let Recovered {
            blocks,
            segments,
            active,
            active_len,
            leaves_len,
        } = recovered;

        // Derived files: cut back to, or rebuilt up to, what the segments hold.
        let size = blocks.last().map_or(0, BlockLoc::end_index);
        let leaves_path = dir.join(format::LEAVES_FILE);
        let leaves_w = open_append(&leaves_path)?;
        let leaves_r = File::open(&leaves_path).map_err(|e| StoreError::io(&leaves_path, e))?;
        let have_leaves = (leaves_len / 32).min(size);
        if leaves_len != have_leaves * 32 {
            truncate(&leaves_path, have_leaves * 32)?;
        }
        let seg_files: BTreeMap<u64, Arc<File>> = segments;
        if have_leaves < size {
            let mut missing = Vec::new();
            for loc in blocks.iter().filter(|b| b.end_index() > have_leaves) {
                let entries = read_block_entries(&seg_files, dir, loc)?;
                for (i, e) in entries.iter().enumerate() {
                    if loc.first_index + i as u64 >= have_leaves {
                        missing.extend_from_slice(&entry_id(e).0);
                    }
                }
            }
            (&leaves_w)
                .write_all(&missing)
                .and_then(|_| leaves_w.sync_data())
                .map_err(|e| StoreError::io(&leaves_path, e))?;
        }

        let nodes_path = dir.join(format::NODES_FILE);
        let mut nodes_bytes = read_all(&nodes_path)?;
        let want_nodes = size >> format::NODE_LEVEL;
        let have_nodes = (nodes_bytes.len() as u64 / 32).min(want_nodes);
        nodes_bytes.truncate(have_nodes as usize * 32);
        let mut level_nodes: Vec<Digest> = nodes_bytes
            .chunks_exact(32)
            .map(|c| Digest(c.try_into().expect("32-byte chunk")))
            .collect();
        let nodes_w = open_append(&nodes_path)?;
        nodes_w
            .set_len(have_nodes * 32)
            .map_err(|e| StoreError::io(&nodes_path, e))?;
        let chunk = 1u64 << format::NODE_LEVEL;
        if have_nodes < want_nodes {
            let mut add = Vec::new();
            for n in have_nodes..want_nodes {
                let leaves = read_leaf_range(&leaves_r, n * chunk, chunk)
                    .map_err(|e| StoreError::io(&leaves_path, e))?;
                let node = chunk_root(&leaves);
                level_nodes.push(node);
                add.extend_from_slice(&node.0);
            }
            (&nodes_w)
                .write_all(&add)
                .and_then(|_| nodes_w.sync_data())
                .map_err(|e| StoreError::io(&nodes_path, e))?;
        }
        let tail = read_leaf_range(&leaves_r, want_nodes * chunk, size - want_nodes * chunk)
            .map_err(|e| StoreError::io(&leaves_path, e))?;
        let tree = StoredTree::new(leaves_r, size, level_nodes, tail);

        // Heads: the last whole record wins; a torn record is cut off, and so
        // are the zeroed records after the last head (see `HEADS_AHEAD`).
        let heads_path = dir.join(format::HEADS_FILE);
        let heads_w = open_in_place(&heads_path)?;
        let heads_len = heads_w
            .metadata()
            .map_err(|e| StoreError::io(&heads_path, e))?
            .len();
        let whole =
            heads_in_use(&heads_w, heads_len).map_err(|e| StoreError::io(&heads_path, e))?;
        if whole != heads_len {
            truncate(&heads_path, whole)?;
        }
        let latest_head = if whole > 0 {
            let mut rec = [0u8; format::HEAD_RECORD_LEN];
            heads_w
                .read_exact_at(&mut rec, whole - format::HEAD_RECORD_LEN as u64)
                .map_err(|e| StoreError::io(&heads_path, e))?;
            let h = format::decode_head(&rec).ok_or_else(|| {
                corrupt(
                    &heads_path,
                    "the last signed head's checksum does not match",
                )
            })?;
            if h.head.size > size {
                return Err(corrupt(
                    &heads_path,
                    format!(
                        "a signed head commits to {} entries but the segments hold {size}: acknowledged data is missing",
                        h.head.size
                    ),
                ));
            }
            let root = tree
                .prover()
                .root(h.head.size)
                .map_err(|e| StoreError::io(&leaves_path, e))?;
            if root != h.head.root {
                return Err(corrupt(
                    dir,
                    format!("the tree rebuilt from the stored files does not match the signed head at size {}; run `coldtrail verify`", h.head.size),
                ));
            }
            Some(h)
        } else {
            None
        };

        // Ids: sealed segments have sorted files (rebuilt if missing); the
        // active segment's ids are held in memory.
        let mut sealed_ids = Vec::new();
        let mut active_ids = ActiveIds::default();
        for (i, &seg) in seg_files.keys().enumerate() {
            let seg_blocks: Vec<&BlockLoc> = blocks.iter().filter(|b| b.segment == seg).collect();
            let (Some(first), Some(last)) = (seg_blocks.first(), seg_blocks.last()) else {
                continue;
            };
            let (from, to) = (first.first_index, last.end_index());
            let pairs = || -> Result<Vec<(u64, u64)>, StoreError> {
                let ids = read_leaf_range(&tree, from, to - from)
                    .map_err(|e| StoreError::io(&leaves_path, e))?;
                Ok(ids
                    .iter()
                    .zip(from..)
                    .map(|(d, i)| (format::id_prefix(d), i))
                    .collect())
            };
            if i + 1 == seg_files.len() {
                active_ids.extend(pairs()?);
            } else {
                // Sealed: its ids file is only rebuilt when it is missing or cut short.
                let path = dir.join(format::ids_name(seg));
                let want = (to - from) * format::ID_RECORD_LEN as u64;
                if fs::metadata(&path).map(|m| m.len()).ok() != Some(want) {
                    write_file_synced(&path, &format::encode_ids(pairs()?))?;
                }
                let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
                sealed_ids.push(SealedIds::new(seg, f, to - from));
            }
        }

        let index_path = dir.join(format::INDEX_FILE);
        let index_w = open_append(&index_path)?;
        let (active_no, active_file) = active;
        let active_first = blocks
            .iter()
            .find(|b| b.segment == active_no)
            .map_or(size, |b| b.first_index);
        let heads_r = File::open(&heads_path).map_err(|e| StoreError::io(&heads_path, e))?;
        let state = State {
            blocks,
            tree,
            latest_head,
            heads: Arc::new(heads_r),
            head_count: whole / format::HEAD_RECORD_LEN as u64,
            segments: seg_files,
            active_ids,
            sealed_ids,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            key: stored_key,
            state: RwLock::new(state),
            stopped: Mutex::new(None),
            cache: Mutex::new(None),
            queued: std::sync::atomic::AtomicUsize::new(0),
            _lock: lock,
        });
        let (tx, rx) = mpsc::sync_channel(config.queue_depth);
        let writer = Writer {
            shared: Arc::clone(&shared),
            key,
            config: config.clone(),
            log_id: id,
            active_no,
            active_first,
            active: active_file,
            active_len,
            // Recovery cut off any zeros past the last block.
            active_file_len: active_len,
            prepared: None,
            index: index_w,
            leaves: leaves_w,
            nodes: nodes_w,
            heads: heads_w,
            heads_len: whole,
            heads_file_len: whole,
            last_head_at: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ledger-writer-{}", &id.to_hex()[..8]))
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(dir, e))?;
        Ok(EmbeddedStore {
            shared,
            tx: Some(tx),
            writer: Some(handle),
            config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn log_id(&self) -> Digest {
        log_id(&self.shared.key)
    }

    fn check_running(&self) -> Result<(), StoreError> {
        match &*self.shared.stopped.lock().expect("stopped lock") {
            Some(why) => Err(StoreError::Stopped(why.clone())),
            None => Ok(()),
        }
    }

    fn send(&self, req: Request) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().expect("sender lives until drop");
        // Counted before sending: the writer may take it at once.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        let sent = tx.try_send(req);
        if sent.is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::QueueFull(self.config.queue_depth)),
            Err(TrySendError::Disconnected(_)) => {
                Err(StoreError::Stopped("the writer has ended".into()))
            }
        }
    }

    /// Like [`Store::submit`], but waits for room in the queue instead of
    /// refusing: for tools and loaders that want backpressure, not errors.
    pub fn submit_blocking(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        let (req, pending) = self.prepare(entries)?;
        let tx = self.tx.as_ref().expect("sender lives until drop");
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        tx.send(req).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            StoreError::Stopped("the writer has ended".into())
        })?;
        Ok(pending)
    }

    fn prepare(&self, entries: Vec<Vec<u8>>) -> Result<(Request, Pending), StoreError> {
        self.check_running()?;
        let ids = check_append(&entries, self.config.max_entry_bytes)?;
        let (reply, rx) = oneshot::channel();
        Ok((
            Request::Append {
                entries,
                ids,
                reply,
                queued_at: Instant::now(),
            },
            Pending(rx),
        ))
    }

    fn read_block(&self, loc: &BlockLoc) -> Result<Arc<Vec<Vec<u8>>>, StoreError> {
        if let Some((first, block)) = &*self.shared.cache.lock().expect("cache lock") {
            if *first == loc.first_index {
                return Ok(Arc::clone(block));
            }
        }
        let file = {
            let st = self.shared.state.read().expect("state lock");
            Arc::clone(st.segments.get(&loc.segment).ok_or_else(|| {
                corrupt(
                    &self.shared.dir,
                    format!("segment {} is missing", loc.segment),
                )
            })?)
        };
        let entries = Arc::new(read_loc(&file, &self.shared.dir, loc)?);
        *self.shared.cache.lock().expect("cache lock") =
            Some((loc.first_index, Arc::clone(&entries)));
        Ok(entries)
    }

    fn block_of(&self, index: u64) -> Result<BlockLoc, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        let size = st.tree.size();
        if index >= size {
            return Err(StoreError::NoSuchEntry { index, size });
        }
        let i = st.blocks.partition_point(|b| b.end_index() <= index);
        Ok(st.blocks[i])
    }

    /// Number of segment files and total bytes on disk, for `inspect`.
    pub fn disk_usage(&self) -> Result<(usize, u64), StoreError> {
        let mut bytes = 0;
        for e in fs::read_dir(&self.shared.dir).map_err(|e| StoreError::io(&self.shared.dir, e))? {
            let e = e.map_err(|e| StoreError::io(&self.shared.dir, e))?;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let st = self.shared.state.read().expect("state lock");
        Ok((st.segments.len(), bytes))
    }
}

fn read_leaf_range(src: &impl LeafSource, start: u64, n: u64) -> io::Result<Vec<Digest>> {
    src.leaves(start, n)
}

impl LeafSource for StoredTree {
    fn leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>> {
        self.read_leaves(start, n)
    }
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::durable::replace(path, bytes, crate::durable::Mode::Shared)
        .map_err(|e| StoreError::io(path, e))
}

fn read_loc(file: &File, dir: &Path, loc: &BlockLoc) -> Result<Vec<Vec<u8>>, StoreError> {
    let seg = dir.join(format::segment_name(loc.segment));
    let (h, payload) = read_frame(file, loc.offset).map_err(|what| {
        corrupt(
            &seg,
            format!(
                "block at offset {} (entries {}..{}): {what}",
                loc.offset,
                loc.first_index,
                loc.end_index()
            ),
        )
    })?;
    if h.first_index != loc.first_index || h.count != loc.count {
        return Err(corrupt(
            &seg,
            format!(
                "block at offset {} holds entries {}..{}, the index expects {}..{}",
                loc.offset,
                h.first_index,
                h.first_index + u64::from(h.count),
                loc.first_index,
                loc.end_index()
            ),
        ));
    }
    format::unpack_block(&h, &payload)
        .map_err(|what| corrupt(&seg, format!("block at offset {}: {what}", loc.offset)))
}

fn read_block_entries(
    segments: &BTreeMap<u64, Arc<File>>,
    dir: &Path,
    loc: &BlockLoc,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let file = segments
        .get(&loc.segment)
        .ok_or_else(|| corrupt(dir, format!("segment {} is missing", loc.segment)))?;
    read_loc(file, dir, loc)
}

struct Recovered {
    blocks: Vec<BlockLoc>,
    segments: BTreeMap<u64, Arc<File>>,
    /// The active segment's number and append handle.
    active: (u64, File),
    active_len: u64,
    leaves_len: u64,
}

/// Reconciles the index with the segments; see the module docs.
fn recover(dir: &Path, id: Digest) -> Result<Recovered, StoreError> {
    remove_prepared(dir)?;
    let index_path = dir.join(format::INDEX_FILE);
    let index_bytes = read_all(&index_path)?;
    let mut blocks: Vec<BlockLoc> = Vec::new();
    for rec in index_bytes.chunks(format::INDEX_RECORD_LEN) {
        // The index is written after the data it describes: its tail may be
        // torn, and whatever it lost is re-read from the segments below.
        match BlockLoc::decode(rec) {
            Some(loc)
                if loc.first_index == blocks.last().map_or(0, BlockLoc::end_index)
                    && loc.count > 0 =>
            {
                blocks.push(loc)
            }
            _ => break,
        }
    }
    let mut seg_numbers = list_segments(dir)?;
    if seg_numbers.is_empty() {
        seg_numbers.push(0);
    }
    // Indexed blocks must point into existing segments and fit inside them.
    let mut segments = BTreeMap::new();
    let mut seg_lens = BTreeMap::new();
    for &n in &seg_numbers {
        let path = dir.join(format::segment_name(n));
        let f = open_in_place(&path)?;
        let len = f.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        seg_lens.insert(n, len);
        segments.insert(n, f);
    }
    if let Some(bad) = blocks.iter().position(|b| {
        seg_lens
            .get(&b.segment)
            .is_none_or(|&len| b.offset + u64::from(b.frame_len) > len)
    }) {
        let b = blocks[bad];
        return Err(corrupt(
            &dir.join(format::segment_name(b.segment)),
            format!("the index places entries {}..{} at offset {}, beyond the end of the segment: acknowledged data is missing", b.first_index, b.end_index(), b.offset),
        ));
    }
    let index_len = (blocks.len() * format::INDEX_RECORD_LEN) as u64;
    if index_bytes.len() as u64 != index_len {
        truncate(&index_path, index_len)?;
    }

    // Scan forward from the end of the last indexed block, across segments.
    let mut new_blocks = Vec::new();
    let start_seg = blocks.last().map_or(seg_numbers[0], |b| b.segment);
    let last_seg = *seg_numbers.last().expect("at least one segment");
    let mut next_index = blocks.last().map_or(0, BlockLoc::end_index);
    for &n in seg_numbers.iter().filter(|&&n| n >= start_seg) {
        let path = dir.join(format::segment_name(n));
        let f = &segments[&n];
        let len = seg_lens[&n];
        let mut pos = match blocks.last() {
            Some(b) if b.segment == n => b.offset + u64::from(b.frame_len),
            _ => SEGMENT_HEADER_LEN as u64,
        };
        if len < SEGMENT_HEADER_LEN as u64 {
            if n == last_seg {
                // A segment created but torn before its header was durable.
                let header = SegmentHeader {
                    log_id: id,
                    number: n,
                    first_index: next_index,
                }
                .encode();
                f.set_len(0).map_err(|e| StoreError::io(&path, e))?;
                f.write_all_at(&header, 0)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| StoreError::io(&path, e))?;
                sync_dir(dir)?;
                seg_lens.insert(n, SEGMENT_HEADER_LEN as u64);
                continue;
            }
            return Err(corrupt(&path, "segment is shorter than its header"));
        }
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        f.read_exact_at(&mut hb, 0)
            .map_err(|e| StoreError::io(&path, e))?;
        let header = SegmentHeader::decode(&hb).map_err(|what| corrupt(&path, what))?;
        if header.log_id != id || header.number != n {
            return Err(corrupt(&path, "segment header names another log or number"));
        }
        if pos == SEGMENT_HEADER_LEN as u64 && header.first_index != next_index {
            return Err(corrupt(
                &path,
                format!(
                    "segment starts at entry {}, expected {next_index}",
                    header.first_index
                ),
            ));
        }
        while pos < len {
            match read_frame(f, pos) {
                Ok((h, payload)) if h.first_index == next_index && h.count > 0 => {
                    format::unpack_block(&h, &payload)
                        .map_err(|what| corrupt(&path, format!("block at offset {pos}: {what}")))?;
                    let loc = BlockLoc {
                        first_index: h.first_index,
                        count: h.count,
                        segment: n,
                        offset: pos,
                        frame_len: h.frame_len() as u32,
                    };
                    next_index = loc.end_index();
                    pos += h.frame_len();
                    new_blocks.push(loc);
                }
                Ok((h, _)) => {
                    return Err(corrupt(
                        &path,
                        format!(
                            "block at offset {pos} holds entries from {}, expected {next_index}",
                            h.first_index
                        ),
                    ))
                }
                Err(what) => {
                    // Past the last whole block: zeros made ready for appends
                    // (only in the active segment), a torn write, or damage.
                    let end = nonzero_end(f, pos, len).map_err(|e| StoreError::io(&path, e))?;
                    let mut rest = vec![0u8; (end - pos) as usize];
                    f.read_exact_at(&mut rest, pos)
                        .map_err(|e| StoreError::io(&path, e))?;
                    if n != last_seg || rest.get(1..).is_some_and(valid_frame_follows) {
                        return Err(corrupt(&path, format!("block at offset {pos}: {what}")));
                    }
                    // A torn, never-acknowledged write, or zeros: cut them off.
                    truncate(&path, pos)?;
                    seg_lens.insert(n, pos);
                    break;
                }
            }
        }
    }
    if !new_blocks.is_empty() {
        let mut rec = Vec::with_capacity(new_blocks.len() * format::INDEX_RECORD_LEN);
        for b in &new_blocks {
            rec.extend_from_slice(&b.encode());
        }
        let f = open_append(&index_path)?;
        (&f).write_all(&rec)
            .and_then(|_| f.sync_data())
            .map_err(|e| StoreError::io(&index_path, e))?;
        blocks.extend(new_blocks);
    }
    let leaves_len = fs::metadata(dir.join(format::LEAVES_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let active_len = seg_lens[&last_seg];
    let mut read_handles = BTreeMap::new();
    let mut active = None;
    for (n, f) in segments {
        if n == last_seg {
            let r = f.try_clone().map_err(|e| StoreError::io(dir, e))?;
            read_handles.insert(n, Arc::new(r));
            active = Some((n, f));
        } else {
            read_handles.insert(n, Arc::new(f));
        }
    }
    Ok(Recovered {
        blocks,
        segments: read_handles,
        active: active.expect("the last segment is open"),
        active_len,
        leaves_len,
    })
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

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        // After a crash the tail may be unsigned: cover it before anything else.
        if let Err(e) = self.sign_head(false) {
            *self.shared.stopped.lock().expect("stopped lock") = Some(e.to_string());
        }
        // Readers' asks for a head, kept until the next one is signed.
        let mut soon = Vec::new();
        loop {
            // While the newest entries are unsigned, or readers wait for a
            // head, wait only until a head is due.
            let since = self.last_head_at.elapsed();
            let first = match head_wait(&self.config, since, self.tail_unsigned(), !soon.is_empty())
            {
                Some(wait) => match rx.recv_timeout(wait) {
                    Ok(r) => Some(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                },
            };
            // Drain what has queued, up to a few blocks' worth per fsync.
            let mut group = Group::default();
            let mut next = first;
            while let Some(req) = next.take() {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                if group.add(req, &self.config) {
                    break;
                }
                next = rx.try_recv().ok();
            }
            soon.append(&mut group.soon_waiters);
            let stopped = self.shared.stopped.lock().expect("stopped lock").clone();
            if let Some(why) = stopped {
                group.soon_waiters = std::mem::take(&mut soon);
                group.refuse(&why);
                continue;
            }
            if !group.appends.is_empty() {
                metrics::histogram!(GROUP_ENTRIES).record(group.entries as f64);
                match self.commit(&group) {
                    Ok(first_index) => group.committed(first_index),
                    Err(e) => {
                        let why = e.to_string();
                        *self.shared.stopped.lock().expect("stopped lock") = Some(why.clone());
                        group.refuse_appends(&why);
                    }
                }
            }
            let since = self.last_head_at.elapsed();
            if let Some(force) = head_due(
                &self.config,
                since,
                !group.head_waiters.is_empty(),
                !soon.is_empty(),
            ) {
                let res = self.sign_head(force);
                if let Err(e) = &res {
                    *self.shared.stopped.lock().expect("stopped lock") = Some(e.to_string());
                }
                group.answer_heads(&mut soon, force, &res);
            }
        }
        // Channel closed: leave a head over everything, for the next open.
        let _ = self.sign_head(false);
        self.close_segments();
    }

    /// Leaves the log as a clean close should: the active segment cut to its
    /// last block, the heads file to its last head, no half-prepared next
    /// segment. After a failed write the files are left as they are, for
    /// recovery to judge.
    fn close_segments(&mut self) {
        if let Some(p) = self.prepared.take() {
            let _ = p.job.join();
            let _ = fs::remove_file(&p.path);
        }
        if self.shared.stopped.lock().expect("stopped lock").is_some() {
            return;
        }
        if self.active_file_len > self.active_len {
            let path = self.path(&format::segment_name(self.active_no));
            if let Err(e) = cut(&self.active, self.active_len) {
                tracing::warn!(path = %path.display(), error = %e, "cutting the zeros off the active segment failed; opening does it");
            }
        }
        if self.heads_file_len > self.heads_len {
            let path = self.path(format::HEADS_FILE);
            if let Err(e) = cut(&self.heads, self.heads_len) {
                tracing::warn!(path = %path.display(), error = %e, "cutting the zeroed records off the heads file failed; opening does it");
            }
        }
    }

    /// Starts zeroing the next segment once the active one is half full.
    fn prepare_next(&mut self) {
        let capacity = segment_capacity(&self.config, self.active_no);
        if self.prepared.is_some() || self.active_len.saturating_mul(2) < capacity {
            return;
        }
        let number = self.active_no + 1;
        let path = self.path(&format::prepared_name(number));
        let len = segment_capacity(&self.config, number);
        let target = path.clone();
        match std::thread::Builder::new()
            .name(format!("ledger-zero-{number}"))
            .spawn(move || zeroed_file(&target, len))
        {
            Ok(job) => self.prepared = Some(Prepared { number, path, job }),
            Err(e) => {
                tracing::warn!(error = %e, "no thread to zero the next segment; it grows as written")
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.shared.dir.join(name)
    }

    /// Whether entries exist that no signed head covers yet.
    fn tail_unsigned(&self) -> bool {
        if self.shared.stopped.lock().expect("stopped lock").is_some() {
            return false;
        }
        let st = self.shared.state.read().expect("state lock");
        st.latest_head.map_or(0, |h| h.head.size) < st.tree.size()
    }

    /// Writes the group as blocks, fsyncs once, extends derived state.
    /// Returns the index of the group's first entry.
    fn commit(&mut self, group: &Group) -> Result<u64, StoreError> {
        let first_index = self.shared.state.read().expect("state lock").tree.size();
        let entries: Vec<&Vec<u8>> = group.entries().collect();
        let ids: Vec<Digest> = group.ids().copied().collect();
        let mut new_blocks = Vec::new();
        // Ids of this group's entries in the active segment: a roll must seal
        // them with the segment they were written to.
        let mut unsealed: Vec<(u64, u64)> = Vec::new();
        let mut next_index = first_index;
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < entries.len()
                && end - start < self.config.max_block_entries
                && (end == start || bytes + entries[end].len() <= self.config.max_block_bytes)
            {
                bytes += entries[end].len();
                end += 1;
            }
            let (payload, raw_len) = format::pack_block(&entries[start..end]);
            let count = (end - start) as u32;
            let frame = FrameHeader::frame(&payload, raw_len, next_index, count);
            if self.active_len > SEGMENT_HEADER_LEN as u64
                && (self.active_len + frame.len() as u64
                    > segment_capacity(&self.config, self.active_no)
                    || next_index + u64::from(count) - self.active_first
                        > self.config.segment_entries)
            {
                self.roll(next_index, std::mem::take(&mut unsealed))?;
            }
            let seg_path = self.path(&format::segment_name(self.active_no));
            self.active
                .write_all_at(&frame, self.active_len)
                .map_err(|e| StoreError::io(&seg_path, e))?;
            new_blocks.push(BlockLoc {
                first_index: next_index,
                count,
                segment: self.active_no,
                offset: self.active_len,
                frame_len: frame.len() as u32,
            });
            unsealed.extend(
                ids[start..end]
                    .iter()
                    .zip(next_index..)
                    .map(|(d, i)| (format::id_prefix(d), i)),
            );
            self.active_len += frame.len() as u64;
            self.active_file_len = self.active_file_len.max(self.active_len);
            next_index += u64::from(count);
            start = end;
        }
        // The one fsync the whole group waits for.
        let seg_path = self.path(&format::segment_name(self.active_no));
        let fsync = Instant::now();
        self.active
            .sync_data()
            .map_err(|e| StoreError::io(&seg_path, e))?;
        metrics::histogram!(FSYNC_SECONDS).record(fsync.elapsed().as_secs_f64());

        // Derived files: written after the data, never fsync'd here; recovery
        // rebuilds whatever of them a crash loses.
        let mut leaf_bytes = Vec::with_capacity(ids.len() * 32);
        for d in &ids {
            leaf_bytes.extend_from_slice(&d.0);
        }
        let p = self.path(format::LEAVES_FILE);
        (&self.leaves)
            .write_all(&leaf_bytes)
            .map_err(|e| StoreError::io(&p, e))?;
        let mut idx = Vec::with_capacity(new_blocks.len() * format::INDEX_RECORD_LEN);
        for b in &new_blocks {
            idx.extend_from_slice(&b.encode());
        }
        let p = self.path(format::INDEX_FILE);
        (&self.index)
            .write_all(&idx)
            .map_err(|e| StoreError::io(&p, e))?;

        let mut st = self.shared.state.write().expect("state lock");
        let nodes = st.tree.push_leaves(&ids);
        st.blocks.extend(new_blocks);
        st.active_ids.extend(unsealed);
        drop(st);
        if !nodes.is_empty() {
            let mut nb = Vec::with_capacity(nodes.len() * 32);
            for n in &nodes {
                nb.extend_from_slice(&n.0);
            }
            let p = self.path(format::NODES_FILE);
            (&self.nodes)
                .write_all(&nb)
                .map_err(|e| StoreError::io(&p, e))?;
        }
        self.prepare_next();
        Ok(first_index)
    }

    /// Seals the active segment (fsync'd, its sorted ids file written) and
    /// starts the next one at `first_index`. `unsealed` are ids of entries in
    /// the sealed segment that are not yet in the shared active set.
    fn roll(&mut self, first_index: u64, unsealed: Vec<(u64, u64)>) -> Result<(), StoreError> {
        let started = Instant::now();
        let old = self.active_no;
        let old_path = self.path(&format::segment_name(old));
        self.active
            .sync_data()
            .map_err(|e| StoreError::io(&old_path, e))?;
        // Sealed segments end at their last block.
        if self.active_file_len > self.active_len {
            cut(&self.active, self.active_len).map_err(|e| StoreError::io(&old_path, e))?;
        }
        let mut pairs: Vec<(u64, u64)> = self
            .shared
            .state
            .read()
            .expect("state lock")
            .active_ids
            .pairs();
        pairs.extend(unsealed);
        let n_ids = pairs.len() as u64;
        let ids_path = self.path(&format::ids_name(old));
        write_file_synced(&ids_path, &format::encode_ids(pairs))?;
        let ids_file = File::open(&ids_path).map_err(|e| StoreError::io(&ids_path, e))?;

        let n = old + 1;
        let path = self.path(&format::segment_name(n));
        let header = SegmentHeader {
            log_id: self.log_id,
            number: n,
            first_index,
        }
        .encode();
        // The zeroed file becomes segment `n` only once its header is durable.
        let (f, file_len) = match self.prepared.take().and_then(|p| p.finish(n)) {
            Some(f) => {
                let tmp = self.path(&format::prepared_name(n));
                f.write_all_at(&header, 0)
                    .and_then(|_| f.sync_data())
                    .map_err(|e| StoreError::io(&tmp, e))?;
                let len = f.metadata().map_err(|e| StoreError::io(&tmp, e))?.len();
                fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
                (f, len.max(SEGMENT_HEADER_LEN as u64))
            }
            None => {
                let f = OpenOptions::new()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .mode(0o644)
                    .open(&path)
                    .map_err(|e| StoreError::io(&path, e))?;
                f.write_all_at(&header, 0)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| StoreError::io(&path, e))?;
                (f, SEGMENT_HEADER_LEN as u64)
            }
        };
        sync_dir(&self.shared.dir)?;
        let reader = f.try_clone().map_err(|e| StoreError::io(&path, e))?;
        let mut st = self.shared.state.write().expect("state lock");
        st.segments.insert(n, Arc::new(reader));
        st.active_ids.clear();
        st.sealed_ids.push(SealedIds::new(old, ids_file, n_ids));
        drop(st);
        self.active = f;
        self.active_no = n;
        self.active_first = first_index;
        self.active_len = SEGMENT_HEADER_LEN as u64;
        self.active_file_len = file_len;
        metrics::histogram!(ROLL_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Signs a head over everything committed, unless nothing changed since
    /// the last one and `force` is false. The head is durable when returned.
    fn sign_head(&mut self, force: bool) -> Result<Option<SignedTreeHead>, StoreError> {
        self.last_head_at = Instant::now();
        let (size, root, prev) = {
            let st = self.shared.state.read().expect("state lock");
            let size = st.tree.size();
            if !force && st.latest_head.is_some_and(|h| h.head.size == size) {
                return Ok(None);
            }
            if !force && size == 0 {
                return Ok(None);
            }
            let root = st
                .tree
                .prover()
                .root(size)
                .map_err(|e| StoreError::io(self.path(format::LEAVES_FILE), e))?;
            (size, root, st.latest_head)
        };
        // Heads are ordered in time even if the clock steps back.
        let timestamp_ms = self
            .config
            .clock
            .now_ms()
            .max(prev.map_or(0, |h| h.head.timestamp_ms));
        let sth = TreeHead {
            log_id: self.log_id,
            size,
            root,
            timestamp_ms,
        }
        .sign(&self.key);
        let p = self.path(format::HEADS_FILE);
        let record = format::encode_head(&sth);
        const REC: u64 = format::HEAD_RECORD_LEN as u64;
        let at = self.heads_len;
        // At least one zeroed record stays after the last head (that is how
        // recovery tells a torn head from a damaged one); when the zeroed ones
        // run out, this head's write zeroes the next `HEADS_AHEAD` less one.
        let written = if at + 2 * REC > self.heads_file_len {
            let mut buf = vec![0u8; format::HEAD_RECORD_LEN * format::HEADS_AHEAD];
            buf[..record.len()].copy_from_slice(&record);
            self.heads.write_all_at(&buf, at).map(|_| buf.len() as u64)
        } else {
            self.heads.write_all_at(&record, at).map(|_| REC)
        };
        written
            .and_then(|n| {
                self.heads_file_len = self.heads_file_len.max(at + n);
                self.heads.sync_data()
            })
            .map_err(|e| StoreError::io(&p, e))?;
        self.heads_len += REC;
        metrics::histogram!(HEAD_SECONDS).record(self.last_head_at.elapsed().as_secs_f64());
        let mut st = self.shared.state.write().expect("state lock");
        st.latest_head = Some(sth);
        st.head_count += 1;
        Ok(Some(sth))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

impl Store for EmbeddedStore {
    fn public_key(&self) -> VerifyingKey {
        self.shared.key
    }

    fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        let (req, pending) = self.prepare(entries)?;
        self.send(req)?;
        Ok(pending)
    }

    fn len(&self) -> u64 {
        self.shared.state.read().expect("state lock").tree.size()
    }

    fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let loc = self.block_of(index)?;
        let block = self.read_block(&loc)?;
        Ok(block[(index - loc.first_index) as usize].clone())
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let size = self.len();
        if to > size || from > to {
            return Err(StoreError::NoSuchEntry {
                index: to.max(from),
                size,
            });
        }
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut i = from;
        while i < to {
            let loc = self.block_of(i)?;
            let block = self.read_block(&loc)?;
            let start = (i - loc.first_index) as usize;
            let end = (to.min(loc.end_index()) - loc.first_index) as usize;
            out.extend(block[start..end].iter().cloned());
            i = loc.first_index + end as u64;
        }
        Ok(out)
    }

    fn entry_id(&self, index: u64) -> Result<Digest, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        let size = st.tree.size();
        if index >= size {
            return Err(StoreError::NoSuchEntry { index, size });
        }
        let mut v = st
            .tree
            .read_leaves(index, 1)
            .map_err(|e| StoreError::io(self.shared.dir.join(format::LEAVES_FILE), e))?;
        Ok(v.remove(0))
    }

    fn find(&self, id: &Digest) -> Result<Option<u64>, StoreError> {
        let prefix = format::id_prefix(id);
        let candidates: Vec<u64> = {
            let st = self.shared.state.read().expect("state lock");
            let mut c = Vec::new();
            for sealed in &st.sealed_ids {
                let path = self.shared.dir.join(format::ids_name(sealed.segment));
                c.extend(
                    sealed
                        .candidates(prefix)
                        .map_err(|e| StoreError::io(&path, e))?,
                );
            }
            c.extend(st.active_ids.candidates(prefix));
            c
        };
        let size = self.len();
        let mut candidates = candidates;
        candidates.sort_unstable();
        for i in candidates.into_iter().filter(|&i| i < size) {
            if self.entry_id(i)? == *id {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn root(&self, size: u64) -> Result<Digest, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree.checked_root(size, |e| {
            StoreError::io(self.shared.dir.join(format::LEAVES_FILE), e)
        })
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree.checked_inclusion(index, size, |e| {
            StoreError::io(self.shared.dir.join(format::LEAVES_FILE), e)
        })
    }

    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree.checked_consistency(size1, size2, |e| {
            StoreError::io(self.shared.dir.join(format::LEAVES_FILE), e)
        })
    }

    fn request_head(&self) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.check_running()?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::SignHead { reply, soon: false })?;
        Ok(Pending(rx))
    }

    fn request_head_soon(&self) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.check_running()?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::SignHead { reply, soon: true })?;
        Ok(Pending(rx))
    }

    fn latest_head(&self) -> Option<SignedTreeHead> {
        self.shared.state.read().expect("state lock").latest_head
    }

    fn first_head_covering(&self, size: u64) -> Result<Option<SignedTreeHead>, StoreError> {
        let (file, count) = {
            let st = self.shared.state.read().expect("state lock");
            (Arc::clone(&st.heads), st.head_count)
        };
        let path = self.shared.dir.join(format::HEADS_FILE);
        let read = |i: u64| -> Result<SignedTreeHead, StoreError> {
            let mut rec = [0u8; format::HEAD_RECORD_LEN];
            file.read_exact_at(&mut rec, i * format::HEAD_RECORD_LEN as u64)
                .map_err(|e| StoreError::io(&path, e))?;
            format::decode_head(&rec).ok_or_else(|| {
                corrupt(
                    &path,
                    format!("signed head record {i}: the checksum does not match"),
                )
            })
        };
        // Head sizes never go back, so the records are sorted by size.
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if read(mid)?.head.size < size {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == count {
            Ok(None)
        } else {
            read(lo).map(Some)
        }
    }
}
