//! The committed-entry feed.
//!
//! A consumer (analytics, lineage, search) subscribes under a name; its cursor
//! (the next index to read on each shard) lives in a file of its own. The feed
//! hands out only committed entries, in shard order, read from the store: it
//! keeps no per-consumer buffer, so a slow consumer neither blocks ingest nor
//! grows memory; it simply reads further behind.
//!
//! Delivery is exactly once for a consumer that commits each batch together
//! with the state the batch produced ([`Subscription::commit`] writes cursor
//! and state in one atomic file replace). A consumer that dies before it
//! commits is handed the same batch again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::write_atomic;
use crate::{Node, ShardError};

/// A run of consecutive committed entries of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedBatch {
    pub shard: u32,
    pub first_index: u64,
    pub entries: Vec<Vec<u8>>,
}

impl FeedBatch {
    /// The index after the batch's last entry.
    pub fn end(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }
}

/// A consumer's position in the feed.
pub struct Subscription {
    node: Arc<Node>,
    /// Where the cursor is committed; `None` for a follower that keeps none.
    path: Option<PathBuf>,
    /// Committed: where a restarted consumer resumes.
    cursors: Vec<u64>,
    /// Handed out: the next index to read, at or past the cursor.
    read: Vec<u64>,
    state: Vec<u8>,
    /// Round-robin start, so no shard starves the others.
    next_shard: usize,
    max_batch: usize,
}

/// Version 2: checksummed in its own domain (version 1 shared the store's
/// index-record domain).
const CURSOR_TAG: &[u8; 8] = b"CTCURS02";

fn encode(cursors: &[u64], state: &[u8]) -> Vec<u8> {
    let mut out = CURSOR_TAG.to_vec();
    out.extend_from_slice(&(cursors.len() as u32).to_le_bytes());
    for c in cursors {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(state);
    let sum = ledger::Domain::FeedCursor.hash(&out);
    out.extend_from_slice(&sum.0[..16]);
    out
}

fn decode(bytes: &[u8], shards: usize) -> Option<(Vec<u64>, Vec<u8>)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(16)?)?;
    if ledger::Domain::FeedCursor.hash(body).0[..16] != *sum || body.get(..8)? != CURSOR_TAG {
        return None;
    }
    let n = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?) as usize;
    if n != shards {
        return None;
    }
    let cursors = (0..n)
        .map(|i| {
            Some(u64::from_le_bytes(
                body.get(12 + 8 * i..20 + 8 * i)?.try_into().ok()?,
            ))
        })
        .collect::<Option<Vec<u64>>>()?;
    Some((cursors, body.get(12 + 8 * n..)?.to_vec()))
}

impl Subscription {
    /// Subscribes `name` (a file name) from its saved cursor, or from the
    /// start of every shard the first time.
    pub fn open(node: Arc<Node>, name: &str, max_batch: usize) -> Result<Subscription, ShardError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ShardError::Config(format!(
                "feed consumer name {name:?}: use letters, digits, - and _"
            )));
        }
        let dir = node.data_dir().join("cursors");
        std::fs::create_dir_all(&dir).map_err(|e| ShardError::io(&dir, e))?;
        let path = dir.join(name);
        let shards = node.shards().len();
        let (cursors, state) = match std::fs::read(&path) {
            Ok(b) => decode(&b, shards).ok_or_else(|| ShardError::Corrupt {
                shard: 0,
                what: if b.starts_with(b"CTCURS01") {
                    format!(
                        "cursor file {} was written by an earlier coldtrail (cursor format 1): remove it and this consumer's derived state to rebuild them from the logs",
                        path.display()
                    )
                } else {
                    format!("cursor file {} is damaged or from another node", path.display())
                },
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (vec![0; shards], Vec::new()),
            Err(e) => return Err(ShardError::io(&path, e)),
        };
        Ok(Subscription {
            node,
            path: Some(path),
            read: cursors.clone(),
            cursors,
            state,
            next_shard: 0,
            max_batch: max_batch.max(1),
        })
    }

    /// Follows the feed from `from` (per shard) without a cursor file: for
    /// state that is rebuilt at start anyway and only needs what commits
    /// after (ingest following the policies analytics records).
    pub fn follow(
        node: Arc<Node>,
        from: Vec<u64>,
        max_batch: usize,
    ) -> Result<Subscription, ShardError> {
        if from.len() != node.shards().len() {
            return Err(ShardError::Config(format!(
                "a follower needs a position on each of the {} shards, not {}",
                node.shards().len(),
                from.len()
            )));
        }
        Ok(Subscription {
            node,
            path: None,
            read: from.clone(),
            cursors: from,
            state: Vec::new(),
            next_shard: 0,
            max_batch: max_batch.max(1),
        })
    }

    /// The next index to be handed out, per shard.
    pub fn cursors(&self) -> &[u64] {
        &self.cursors
    }

    /// The state last committed with the cursor.
    pub fn state(&self) -> &[u8] {
        &self.state
    }

    /// The next index to be handed out, per shard: the cursor plus whatever
    /// was handed out since the last commit.
    pub fn read_position(&self) -> &[u64] {
        &self.read
    }

    /// The next batch after the read position of some shard (taking shards
    /// in turn), or `None` if every shard is read up to its committed end.
    pub fn try_next(&mut self) -> Result<Option<FeedBatch>, ShardError> {
        let n = self.node.shards().len();
        for k in 0..n {
            let s = (self.next_shard + k) % n;
            if let Some(b) = self.try_next_from(s as u32)? {
                self.next_shard = (s + 1) % n;
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// The next batch of shard `shard` after its read position, or `None` if
    /// it is read up to its committed end.
    pub fn try_next_from(&mut self, shard: u32) -> Result<Option<FeedBatch>, ShardError> {
        let s = shard as usize;
        let sh = self.node.shard(shard)?;
        let from = self.read[s];
        let committed = sh.committed();
        if from >= committed {
            return Ok(None);
        }
        let to = committed.min(from + self.max_batch as u64);
        let entries = sh.store().entries(from, to)?;
        self.read[s] = to;
        Ok(Some(FeedBatch {
            shard,
            first_index: from,
            entries,
        }))
    }

    /// Whether every shard is read up to its committed end.
    pub fn caught_up(&self) -> bool {
        self.node
            .shards()
            .iter()
            .zip(&self.read)
            .all(|(s, r)| *r >= s.committed())
    }

    /// Waits for the next batch.
    pub async fn next(&mut self) -> Result<FeedBatch, ShardError> {
        loop {
            if let Some(b) = self.try_next()? {
                return Ok(b);
            }
            self.wait().await;
        }
    }

    /// Waits until some shard has committed entries past the read position
    /// (without handing them out).
    pub async fn wait(&self) {
        loop {
            let notify = Arc::clone(self.node.notify());
            let woken = notify.notified();
            tokio::pin!(woken);
            // Registered before looking, so a commit in between is not missed.
            woken.as_mut().enable();
            if !self.caught_up() {
                return;
            }
            woken.await;
        }
    }

    /// Records that `batch` was consumed, together with the consumer's
    /// `state` after it, in one atomic, durable file replace. Batches must be
    /// committed in the order they were handed out for their shard.
    pub fn commit(&mut self, batch: &FeedBatch, state: &[u8]) -> Result<(), ShardError> {
        let s = batch.shard as usize;
        if self.cursors.get(s) != Some(&batch.first_index) {
            return Err(ShardError::Config(format!(
                "batch of shard {} starts at {}, the cursor is at {:?}",
                batch.shard,
                batch.first_index,
                self.cursors.get(s)
            )));
        }
        let mut cursors = self.cursors.clone();
        cursors[s] = batch.end();
        write_atomic(self.cursor_path()?, &encode(&cursors, state))?;
        self.read[s] = self.read[s].max(cursors[s]);
        self.cursors = cursors;
        self.state = state.to_vec();
        Ok(())
    }

    /// Records that everything handed out so far was consumed, together with
    /// the consumer's `state` after it, in one atomic, durable file replace:
    /// for consumers that read many batches between commits.
    pub fn commit_read(&mut self, state: &[u8]) -> Result<(), ShardError> {
        let read = self.read.clone();
        self.commit_to(&read, state)
    }

    /// Records that each shard was consumed up to (not including) `cursors`,
    /// which lie between the committed cursor and the read position: for
    /// consumers that commit partway through a batch.
    pub fn commit_to(&mut self, cursors: &[u64], state: &[u8]) -> Result<(), ShardError> {
        let ok = cursors.len() == self.read.len()
            && cursors
                .iter()
                .zip(&self.read)
                .zip(&self.cursors)
                .all(|((c, r), old)| old <= c && c <= r);
        if !ok {
            return Err(ShardError::Config(format!(
                "cannot commit cursors {cursors:?}: they must lie between the committed {:?} and the read {:?}",
                self.cursors, self.read
            )));
        }
        write_atomic(self.cursor_path()?, &encode(cursors, state))?;
        self.cursors = cursors.to_vec();
        self.state = state.to_vec();
        Ok(())
    }
}

impl Subscription {
    fn cursor_path(&self) -> Result<&Path, ShardError> {
        self.path
            .as_deref()
            .ok_or_else(|| ShardError::Config("a follower keeps no cursor to commit".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_files_round_trip_and_refuse_damage() {
        let bytes = encode(&[3, 0, 9], b"state");
        assert_eq!(decode(&bytes, 3), Some((vec![3, 0, 9], b"state".to_vec())));
        assert_eq!(decode(&bytes, 2), None);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(decode(&b, 3), None, "flip at {i}");
        }
        assert_eq!(decode(&bytes[..10], 3), None);
    }
}
