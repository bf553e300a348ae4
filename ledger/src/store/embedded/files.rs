//! File helpers of the embedded store: opening, cutting, zeroing ahead, locking, reading frames and blocks, and the derived files written whole.

use super::*;

pub(super) fn open_append(path: &Path) -> Result<File, StoreError> {
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
pub(super) fn open_in_place(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::durable::sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}

pub(super) fn read_all(path: &Path) -> Result<Vec<u8>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

pub(super) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    cut(&f, len).map_err(|e| StoreError::io(path, e))
}

/// The offset just past the last non-zero byte of `file` in `from..len`, or
/// `from` if all of it is zero. Reads backwards: a segment zeroed ahead holds
/// its data first and up to `segment_bytes` of zeros after.
pub(super) fn nonzero_end(file: &File, from: u64, len: u64) -> io::Result<u64> {
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
pub(super) fn heads_in_use(file: &File, len: u64) -> io::Result<u64> {
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
pub(super) fn cut(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len).and_then(|_| file.sync_all())
}

/// Removes next segments left half-zeroed by a crash (never numbered, never
/// written to): the writer prepares its own.
pub(super) fn remove_prepared(dir: &Path) -> Result<(), StoreError> {
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
pub(super) fn zeroed_file(path: &Path, len: u64) -> io::Result<File> {
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
pub(super) struct Prepared {
    pub(super) number: u64,
    pub(super) path: PathBuf,
    pub(super) job: JoinHandle<io::Result<File>>,
}

impl Prepared {
    /// Waits for the file; `None` (the file removed) if it is not segment
    /// `n`'s or zeroing it failed: the writer then starts `n` as an empty,
    /// growing file, as it would without preparation.
    pub(super) fn finish(self, n: u64) -> Option<File> {
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

pub(super) fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
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
pub(super) fn lock_log(dir: &Path) -> Result<File, StoreError> {
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
pub(crate) fn valid_frame_follows(bytes: &[u8]) -> bool {
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

pub(super) fn read_leaf_range(
    src: &impl LeafSource,
    start: u64,
    n: u64,
) -> io::Result<Vec<Digest>> {
    src.leaves(start, n)
}

impl LeafSource for StoredTree {
    fn leaves(&self, start: u64, n: u64) -> io::Result<Vec<Digest>> {
        self.read_leaves(start, n)
    }
}

pub(super) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::durable::replace(path, bytes, crate::durable::Mode::Shared)
        .map_err(|e| StoreError::io(path, e))
}

pub(super) fn read_loc(
    file: &File,
    dir: &Path,
    loc: &BlockLoc,
) -> Result<Vec<Vec<u8>>, StoreError> {
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

pub(super) fn read_block_entries(
    segments: &BTreeMap<u64, Arc<File>>,
    dir: &Path,
    loc: &BlockLoc,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let file = segments
        .get(&loc.segment)
        .ok_or_else(|| corrupt(dir, format!("segment {} is missing", loc.segment)))?;
    read_loc(file, dir, loc)
}
