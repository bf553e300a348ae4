//! The `Store` trait over a PostgreSQL log, and its reads: every body checked against its id and every run of ids against the run root in memory.

use super::*;

impl PgStore {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Entries `[from, to)` with every byte checked against the tree.
    pub(super) fn read(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let size = self.len();
        if to > size || from > to {
            return Err(StoreError::NoSuchEntry {
                index: to.max(from),
                size,
            });
        }
        if from == to {
            return Ok(Vec::new());
        }
        // Whole runs: every id of a complete run is needed to check its root.
        let lo = from - from % RUN;
        let hi = (to.div_ceil(RUN) * RUN).min(size);
        let (name, max) = (&self.shared.name, self.shared.max_entry_bytes);
        let found = self.shared.db.query(
            "reading entries",
            "SELECT idx, id, codec, CASE WHEN idx >= $4 AND idx < $5 THEN body END
             FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            vec![
                Box::new(self.shared.log),
                Box::new(lo as i64),
                Box::new(hi as i64),
                Box::new(from as i64),
                Box::new(to as i64),
            ],
        )?;
        let mut rows: Vec<(Digest, Option<Vec<u8>>)> = Vec::with_capacity(found.len());
        for (r, want) in found.iter().zip(lo..) {
            if r.get::<_, i64>(0) as u64 != want {
                return Err(missing(name, want));
            }
            let id = digest(r.get(1), || entry_place(name, want))?;
            let body = match r.get::<_, Option<&[u8]>>(3) {
                None => None,
                Some(b) => {
                    Some(
                        decode_body(r.get(2), b, max).map_err(|what| StoreError::Corrupt {
                            path: entry_place(name, want),
                            what: what.into(),
                        })?,
                    )
                }
            };
            rows.push((id, body));
        }
        if rows.len() as u64 != hi - lo {
            return Err(missing(name, lo + rows.len() as u64));
        }
        let changed = |i: u64, what: &str| StoreError::Corrupt {
            path: entry_place(&self.shared.name, i),
            what: format!(
                "{what}; the row was changed outside coldtrail: run `coldtrail verify --store …`"
            ),
        };
        // The leaf of an entry read is the hash of its bytes, not its
        // stored id; the rest of its run contributes stored ids.
        let mut leaves = Vec::with_capacity(rows.len());
        for ((id, body), i) in rows.iter().zip(lo..) {
            match body {
                Some(b) => {
                    let leaf = entry_id(b);
                    if leaf != *id {
                        return Err(changed(i, "its bytes do not hash to its id"));
                    }
                    leaves.push(leaf);
                }
                None => leaves.push(*id),
            }
        }
        // The tree may have grown since `size` was read: a run read in part
        // may be complete now, so runs are told apart by what was read.
        let st = self.shared.state.read().expect("state lock");
        let tail_start = st.tree.size() - st.tree.tail().len() as u64;
        for (run, i) in leaves
            .chunks(RUN as usize)
            .zip((lo..).step_by(RUN as usize))
        {
            if run.len() as u64 == RUN {
                if Some(chunk_root(run)) != st.tree.run_root(i / RUN) {
                    return Err(changed(
                        i,
                        &format!("entries {i}..{} do not match their subtree root", i + RUN),
                    ));
                }
                continue;
            }
            let known = if i >= tail_start {
                st.tree.tail()[(i - tail_start) as usize..][..run.len()].to_vec()
            } else {
                st.tree
                    .read_leaves(i, run.len() as u64)
                    .map_err(|e| StoreError::Database(e.to_string()))?
            };
            if let Some(k) = run.iter().zip(&known).position(|(a, b)| a != b) {
                return Err(changed(
                    i + k as u64,
                    "its id does not match the log's tree",
                ));
            }
        }
        drop(st);
        Ok(rows.into_iter().filter_map(|(_, body)| body).collect())
    }
}

impl Store for PgStore {
    fn public_key(&self) -> VerifyingKey {
        self.shared.key
    }

    fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        self.front.submit(entries)
    }

    fn len(&self) -> u64 {
        self.shared.state.read().expect("state lock").tree.size()
    }

    fn queued(&self) -> usize {
        self.shared.gate.queued()
    }

    fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.len();
        if index >= size {
            return Err(StoreError::NoSuchEntry { index, size });
        }
        Ok(self.read(index, index + 1)?.remove(0))
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(from, to)
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
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(v.remove(0))
    }

    fn find(&self, id: &Digest) -> Result<Option<u64>, StoreError> {
        let size = self.len() as i64;
        let candidates: Vec<i64> = self
            .shared
            .db
            .query(
                "finding an entry by id",
                "SELECT idx FROM coldtrail_entries WHERE id = $2 AND log = $1 AND idx < $3 ORDER BY idx",
                vec![Box::new(self.shared.log), Box::new(id.0.to_vec()), Box::new(size)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for i in candidates {
            if self.entry_id(i as u64)? == *id {
                return Ok(Some(i as u64));
            }
        }
        Ok(None)
    }

    fn root(&self, size: u64) -> Result<Digest, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_root(size, |e| StoreError::Database(e.to_string()))
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_inclusion(index, size, |e| StoreError::Database(e.to_string()))
    }

    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, StoreError> {
        let st = self.shared.state.read().expect("state lock");
        st.tree
            .checked_consistency(size1, size2, |e| StoreError::Database(e.to_string()))
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
        // Head sizes never go back: the first by sequence is the smallest.
        let rows = self.shared.db.query(
            "finding a signed head",
            "SELECT seq, size, record FROM coldtrail_heads WHERE log = $1 AND size >= $2 ORDER BY seq LIMIT 1",
            vec![Box::new(self.shared.log), Box::new(size as i64)],
        )?;
        rows.first()
            .map(|r| {
                decode_head_row(
                    &self.shared.name,
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    &self.shared.key,
                )
            })
            .transpose()
    }
}
