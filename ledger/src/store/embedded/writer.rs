//! The writer thread: the one owner of every write handle. It drains the queue into groups, writes blocks, fsyncs once per group, rolls segments, signs heads, and only then answers.

use super::*;

impl Writer {
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        // After a crash the tail may be unsigned: cover it before anything else.
        if let Err(e) = self.sign_head(false) {
            self.shared.gate.stop(e.to_string());
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
            let gathered = Group::gather(
                first,
                || rx.try_recv().ok(),
                &self.shared.gate,
                &self.config,
                &mut soon,
            );
            let Some(mut group) = gathered else {
                continue;
            };
            if !group.appends.is_empty() {
                metrics::histogram!(GROUP_ENTRIES).record(group.entries as f64);
                match self.commit(&group) {
                    Ok(first_index) => group.committed(first_index),
                    Err(e) => {
                        let why = e.to_string();
                        self.shared.gate.stop(why.clone());
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
                    self.shared.gate.stop(e.to_string());
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
    pub(super) fn close_segments(&mut self) {
        if let Some(p) = self.prepared.take() {
            let _ = p.job.join();
            let _ = fs::remove_file(&p.path);
        }
        if self.shared.gate.is_stopped() {
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
    pub(super) fn prepare_next(&mut self) {
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

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.shared.dir.join(name)
    }

    /// Whether entries exist that no signed head covers yet.
    pub(super) fn tail_unsigned(&self) -> bool {
        let st = self.shared.state.read().expect("state lock");
        crate::store::front::tail_unsigned(
            &self.shared.gate,
            st.latest_head.as_ref(),
            st.tree.size(),
        )
    }

    /// Writes the group as blocks, fsyncs once, extends derived state.
    /// Returns the index of the group's first entry.
    pub(super) fn commit(&mut self, group: &Group) -> Result<u64, StoreError> {
        let first_index = self.shared.state.read().expect("state lock").tree.size();
        let entries: Vec<&Vec<u8>> = group.entries().collect();
        let ids: Vec<Digest> = group.ids().copied().collect();
        debug_assert_eq!(ids.len(), entries.len(), "every entry was hashed once");
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
        // Invariant: the group's blocks hold its entries in order, with no
        // gap and no overlap, numbered on from the committed tree.
        debug_assert_eq!(next_index, first_index + entries.len() as u64);
        debug_assert!(new_blocks
            .windows(2)
            .all(|w| w[0].first_index + u64::from(w[0].count) == w[1].first_index));
        debug_assert!(new_blocks
            .first()
            .is_none_or(|b| b.first_index == first_index));
        // The one fsync the whole group waits for.
        let seg_path = self.path(&format::segment_name(self.active_no));
        let fsync = Instant::now();
        self.active
            .sync_data()
            .map_err(|e| StoreError::io(&seg_path, e))?;
        metrics::histogram!(FSYNC_SECONDS).record(fsync.elapsed().as_secs_f64());

        self.extend_derived(first_index, &ids, new_blocks, unsealed)?;
        self.prepare_next();
        Ok(first_index)
    }

    /// After a group's fsync: appends its leaves and index records, grows
    /// the tree and the shared state (blocks, active ids), and appends the
    /// completed 16-leaf roots. The derived files are never fsync'd here:
    /// recovery rebuilds whatever of them a crash loses.
    fn extend_derived(
        &mut self,
        first_index: u64,
        ids: &[Digest],
        new_blocks: Vec<BlockLoc>,
        unsealed: Vec<(u64, u64)>,
    ) -> Result<(), StoreError> {
        let mut leaf_bytes = Vec::with_capacity(ids.len() * 32);
        for d in ids {
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
        // Invariant: only this writer grows the tree, and only after the
        // group's fsync: nothing was added since `first_index` was read.
        debug_assert_eq!(st.tree.size(), first_index, "one writer grows the tree");
        let nodes = st.tree.push_leaves(ids);
        debug_assert_eq!(st.tree.size(), first_index + ids.len() as u64);
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
        Ok(())
    }

    /// Seals the active segment (fsync'd, its sorted ids file written) and
    /// starts the next one at `first_index`. `unsealed` are ids of entries in
    /// the sealed segment that are not yet in the shared active set.
    pub(super) fn roll(
        &mut self,
        first_index: u64,
        unsealed: Vec<(u64, u64)>,
    ) -> Result<(), StoreError> {
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
        // Invariant: a sealed segment's ids file lists exactly the entries
        // written to it, from its first index up to where the next begins.
        debug_assert_eq!(
            n_ids,
            first_index - self.active_first,
            "segment {old}'s ids"
        );
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
    pub(super) fn sign_head(&mut self, force: bool) -> Result<Option<SignedTreeHead>, StoreError> {
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
        // Invariant: head sizes never go back (a head is signed over what
        // is committed, and the tree only grows).
        debug_assert!(prev.is_none_or(|p| p.head.size <= size));
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
