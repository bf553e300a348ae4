//! Opening an embedded log: creating it, recovering what a crash left (the segments are the record; derived files are cut back or rebuilt), and starting its writer.

use super::*;

impl EmbeddedStore {
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
        let Derived {
            tree,
            leaves: leaves_w,
            nodes: nodes_w,
        } = rebuild_tree(dir, &blocks, &segments, leaves_len, size)?;
        let (heads_w, whole, latest_head) = open_heads(dir, &tree, size)?;
        let (sealed_ids, active_ids) = open_ids(dir, &segments, &blocks, &tree)?;
        let index_path = dir.join(format::INDEX_FILE);
        let index_w = open_append(&index_path)?;
        let (active_no, active_file) = active;
        let active_first = blocks
            .iter()
            .find(|b| b.segment == active_no)
            .map_or(size, |b| b.first_index);
        let heads_path = dir.join(format::HEADS_FILE);
        let heads_r = File::open(&heads_path).map_err(|e| StoreError::io(&heads_path, e))?;
        let state = State {
            blocks,
            tree,
            latest_head,
            heads: Arc::new(heads_r),
            head_count: whole / format::HEAD_RECORD_LEN as u64,
            segments,
            active_ids,
            sealed_ids,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            key: stored_key,
            state: RwLock::new(state),
            gate: Arc::default(),
            cache: Mutex::new(None),
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
            front: Front::new(Arc::clone(&shared.gate), tx, &config),
            shared,
            writer: Some(handle),
        })
    }
}

pub(super) struct Recovered {
    blocks: Vec<BlockLoc>,
    segments: BTreeMap<u64, Arc<File>>,
    /// The active segment's number and append handle.
    active: (u64, File),
    active_len: u64,
    leaves_len: u64,
}

/// Reconciles the index with the segments; see the module docs.
pub(super) fn recover(dir: &Path, id: Digest) -> Result<Recovered, StoreError> {
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
        let pos = match blocks.last() {
            Some(b) if b.segment == n => b.offset + u64::from(b.frame_len),
            _ => SEGMENT_HEADER_LEN as u64,
        };
        let scanned = scan_segment(
            dir,
            id,
            n,
            &segments[&n],
            seg_lens[&n],
            pos,
            next_index,
            n == last_seg,
        )?;
        next_index = scanned.next_index;
        seg_lens.insert(n, scanned.len);
        new_blocks.extend(scanned.blocks);
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

/// What scanning one segment past the index found: its whole blocks, the
/// next entry index after them, and the segment's length once recovery is
/// done with it (a torn write or zeros at the end of the last segment cut
/// off).
struct Scanned {
    blocks: Vec<BlockLoc>,
    next_index: u64,
    len: u64,
}

/// Reads segment `n` (`len` bytes, `last` if it is the active one) from
/// `pos` on, block by block, expecting entries from `next_index`. Only the
/// last segment may end in a torn write or zeros; anything else that does
/// not read as the next block is damage.
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    dir: &Path,
    id: Digest,
    n: u64,
    f: &File,
    len: u64,
    mut pos: u64,
    mut next_index: u64,
    last: bool,
) -> Result<Scanned, StoreError> {
    let mut found = Vec::new();
    let path = dir.join(format::segment_name(n));
    if len < SEGMENT_HEADER_LEN as u64 {
        if last {
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
            return Ok(Scanned {
                blocks: Vec::new(),
                next_index,
                len: SEGMENT_HEADER_LEN as u64,
            });
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
                found.push(loc);
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
                if !last || rest.get(1..).is_some_and(valid_frame_follows) {
                    return Err(corrupt(&path, format!("block at offset {pos}: {what}")));
                }
                // A torn, never-acknowledged write, or zeros: cut them off.
                truncate(&path, pos)?;
                return Ok(Scanned {
                    blocks: found,
                    next_index,
                    len: pos,
                });
            }
        }
    }
    Ok(Scanned {
        blocks: found,
        next_index,
        len,
    })
}

/// The tree's derived files after recovery, open for the writer.
struct Derived {
    tree: StoredTree,
    leaves: File,
    nodes: File,
}

/// Cuts `leaves` and `nodes` back to what the segments hold (`size`
/// entries) or rebuilds what they lack from the segments, and builds the
/// in-memory tree over them.
fn rebuild_tree(
    dir: &Path,
    blocks: &[BlockLoc],
    segments: &BTreeMap<u64, Arc<File>>,
    leaves_len: u64,
    size: u64,
) -> Result<Derived, StoreError> {
    let leaves_path = dir.join(format::LEAVES_FILE);
    let leaves_w = open_append(&leaves_path)?;
    let leaves_r = File::open(&leaves_path).map_err(|e| StoreError::io(&leaves_path, e))?;
    let have_leaves = (leaves_len / 32).min(size);
    if leaves_len != have_leaves * 32 {
        truncate(&leaves_path, have_leaves * 32)?;
    }
    if have_leaves < size {
        let mut missing = Vec::new();
        for loc in blocks.iter().filter(|b| b.end_index() > have_leaves) {
            let entries = read_block_entries(segments, dir, loc)?;
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
    Ok(Derived {
        tree: StoredTree::new(leaves_r, size, level_nodes, tail),
        leaves: leaves_w,
        nodes: nodes_w,
    })
}

/// Opens `heads`: the last whole record wins; a torn record is cut off, and
/// so are the zeroed records after the last head. The latest head must
/// commit to no more than the segments hold, and to the rebuilt tree's
/// root. Returns the file, the bytes of whole records, and the latest head.
fn open_heads(
    dir: &Path,
    tree: &StoredTree,
    size: u64,
) -> Result<(File, u64, Option<SignedTreeHead>), StoreError> {
    // Heads: the last whole record wins; a torn record is cut off, and so
    // are the zeroed records after the last head (see `HEADS_AHEAD`).
    let heads_path = dir.join(format::HEADS_FILE);
    let heads_w = open_in_place(&heads_path)?;
    let heads_len = heads_w
        .metadata()
        .map_err(|e| StoreError::io(&heads_path, e))?
        .len();
    let whole = heads_in_use(&heads_w, heads_len).map_err(|e| StoreError::io(&heads_path, e))?;
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
            .map_err(|e| StoreError::io(dir.join(format::LEAVES_FILE), e))?;
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
    Ok((heads_w, whole, latest_head))
}

/// The ids of each segment's entries: sealed segments have sorted files
/// (rebuilt when missing or cut short); the active segment's are held in
/// memory.
fn open_ids(
    dir: &Path,
    segments: &BTreeMap<u64, Arc<File>>,
    blocks: &[BlockLoc],
    tree: &StoredTree,
) -> Result<(Vec<SealedIds>, ActiveIds), StoreError> {
    // Ids: sealed segments have sorted files (rebuilt if missing); the
    // active segment's ids are held in memory.
    let mut sealed_ids = Vec::new();
    let mut active_ids = ActiveIds::default();
    for (i, &seg) in segments.keys().enumerate() {
        let seg_blocks: Vec<&BlockLoc> = blocks.iter().filter(|b| b.segment == seg).collect();
        let (Some(first), Some(last)) = (seg_blocks.first(), seg_blocks.last()) else {
            continue;
        };
        let (from, to) = (first.first_index, last.end_index());
        let pairs = || -> Result<Vec<(u64, u64)>, StoreError> {
            let ids = read_leaf_range(tree, from, to - from)
                .map_err(|e| StoreError::io(dir.join(format::LEAVES_FILE), e))?;
            Ok(ids
                .iter()
                .zip(from..)
                .map(|(d, i)| (format::id_prefix(d), i))
                .collect())
        };
        if i + 1 == segments.len() {
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
    Ok((sealed_ids, active_ids))
}
