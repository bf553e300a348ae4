//! The `Store` trait over an embedded log, and its reads: every block located through the index and checked against its checksum on every read.

use super::*;

impl EmbeddedStore {
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn log_id(&self) -> Digest {
        log_id(&self.shared.key)
    }

    /// Like [`Store::submit`], but waits for room in the queue instead of
    /// refusing: for tools and loaders that want backpressure, not errors.
    pub fn submit_blocking(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        self.front.submit_waiting(entries)
    }

    pub(super) fn read_block(&self, loc: &BlockLoc) -> Result<Arc<Vec<Vec<u8>>>, StoreError> {
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

    pub(super) fn block_of(&self, index: u64) -> Result<BlockLoc, StoreError> {
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

impl Store for EmbeddedStore {
    fn public_key(&self) -> VerifyingKey {
        self.shared.key
    }

    fn queued(&self) -> usize {
        self.shared.gate.queued()
    }

    fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        self.front.submit(entries)
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
        self.front.request_head(false)
    }

    fn request_head_soon(&self) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.front.request_head(true)
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
