//! The writer task: drains the queue into groups, commits each in one transaction (retried whole across reconnections for `retry_for`), grows the tree, signs and inserts heads, and only then answers.

use super::*;

impl Writer {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        if let Err(e) = self.sign_head(false).await {
            self.stop(e.to_string());
        }
        // Readers' asks for a head, kept until the next one is signed.
        let mut soon = Vec::new();
        loop {
            let since = self.last_head_at.elapsed();
            let first = match head_wait(&self.config, since, self.tail_unsigned(), !soon.is_empty())
            {
                Some(wait) => match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(r)) => Some(r),
                    Ok(None) => break,
                    Err(_) => None,
                },
                None => match rx.recv().await {
                    Some(r) => Some(r),
                    None => break,
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
                match self.commit(&group).await {
                    Ok(first_index) => group.committed(first_index),
                    Err(e) => {
                        let why = e.to_string();
                        self.stop(why.clone());
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
                let res = self.sign_head(force).await;
                if let Err(e) = &res {
                    self.stop(e.to_string());
                }
                group.answer_heads(&mut soon, force, &res);
            }
        }
        if !self.shared.gate.is_stopped() {
            let _ = self.sign_head(false).await;
        }
        // Released before the store's drop returns: the next open, in this
        // process or another, finds the log free at once.
        if let Some(c) = &self.client {
            let _ = c
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&LOG_LOCK_CLASS, &self.shared.log],
                )
                .await;
        }
    }

    pub(super) fn stop(&self, why: String) {
        tracing::error!(log = %self.shared.name, why = %why, "PostgreSQL log stopped accepting writes");
        self.shared.gate.stop_first(why);
    }

    pub(super) fn tail_unsigned(&self) -> bool {
        let st = self.shared.state.read().expect("state lock");
        crate::store::front::tail_unsigned(
            &self.shared.gate,
            st.latest_head.as_ref(),
            st.tree.size(),
        )
    }

    /// The writer's connection, reconnected (and the log's lock retaken)
    /// if the last one failed.
    pub(super) async fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_none() {
            self.reconnect().await?;
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    pub(super) async fn reconnect(&mut self) -> Result<(), StoreError> {
        let client = connect(&self.shared.db.pg).await?;
        if !lock_log(
            &client,
            self.shared.log,
            self.shared.db.config.connect_timeout,
        )
        .await?
        {
            return Err(StoreError::Stopped(format!(
                "log {} was taken by another process while this one reconnected",
                self.shared.name
            )));
        }
        self.client = Some(client);
        Ok(())
    }

    /// Writes the group as one transaction; returns its first index.
    pub(super) async fn commit(&mut self, group: &Group) -> Result<u64, StoreError> {
        let (first, tail) = {
            let st = self.shared.state.read().expect("state lock");
            (st.tree.size(), st.tree.tail().to_vec())
        };
        let ids: Vec<Digest> = group.ids().copied().collect();
        let mut idx = Vec::with_capacity(ids.len());
        let mut id_bytes = Vec::with_capacity(ids.len());
        let mut codecs = Vec::with_capacity(ids.len());
        let mut bodies = Vec::with_capacity(ids.len());
        for (e, (i, id)) in group.entries().zip((first..).zip(&ids)) {
            let (codec, body) = encode_body(e);
            idx.push(i as i64);
            id_bytes.push(id.0.to_vec());
            codecs.push(codec);
            bodies.push(body);
        }
        // The runs this group completes, and their roots.
        let mut run = tail;
        let (mut runs, mut roots) = (Vec::new(), Vec::new());
        for (id, i) in ids.iter().zip(first..) {
            run.push(*id);
            if run.len() as u64 == RUN {
                runs.push((i / RUN) as i64);
                roots.push(chunk_root(&run).0.to_vec());
                run.clear();
            }
        }
        let log = self.shared.log;
        let name = self.shared.name.clone();
        let started = Instant::now();
        let group_rows = GroupRows {
            log,
            idx,
            ids: id_bytes,
            codecs,
            bodies,
            runs,
            roots,
        };
        let mut retry = Retry::new(self.shared.db.config.retry_for);
        loop {
            let res = match self.client().await {
                Ok(c) => insert_group(c, &name, &group_rows).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => break,
                Err(e) => {
                    self.client = None;
                    retry.pause("committing a group", e).await?;
                }
            }
        }
        metrics::histogram!(FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
        // Readers may hold the state lock across a database round trip on
        // this runtime: block outside the runtime's scheduling.
        let nodes = tokio::task::block_in_place(|| {
            self.shared
                .state
                .write()
                .expect("state lock")
                .tree
                .push_leaves(&ids)
        });
        debug_assert_eq!(nodes.len(), group_rows.roots.len());
        Ok(first)
    }

    pub(super) async fn sign_head(
        &mut self,
        force: bool,
    ) -> Result<Option<SignedTreeHead>, StoreError> {
        self.last_head_at = Instant::now();
        let (size, root, prev) = {
            let st = self.shared.state.read().expect("state lock");
            let size = st.tree.size();
            if !force && (size == 0 || st.latest_head.is_some_and(|h| h.head.size == size)) {
                return Ok(None);
            }
            // The root of the whole tree comes from memory (run roots and
            // the tail): no database reads under the lock.
            let root = st
                .tree
                .prover()
                .root(size)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            (size, root, st.latest_head)
        };
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
        let (log, seq, record) = (self.shared.log, self.head_seq, sth.to_bytes());
        let mut retry = Retry::new(self.shared.db.config.retry_for);
        loop {
            let res = match self.client().await {
                Ok(c) => insert_head(c, log, seq, size, &record).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => break,
                Err(e) => {
                    self.client = None;
                    retry.pause("recording a signed head", e).await?;
                }
            }
        }
        self.head_seq += 1;
        metrics::histogram!(crate::store::HEAD_SECONDS)
            .record(self.last_head_at.elapsed().as_secs_f64());
        tokio::task::block_in_place(|| {
            self.shared.state.write().expect("state lock").latest_head = Some(sth);
        });
        Ok(Some(sth))
    }
}
