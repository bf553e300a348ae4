//! One shard: a log, and the sequencer state derived from it.
//!
//! The sequencer is the shard's append path: under one short lock it assigns
//! indices, adds a receipt to the outbox for every subject homed on another
//! shard, and queues the whole group on the store, whose writer commits it in
//! one block group with one fsync. The state it keeps (outbox positions, the
//! next expected receipt from each shard, the subject index) is derived from
//! the log alone and rebuilt from it when the shard opens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use ed25519_dalek::VerifyingKey;
use ledger::entry::{Encoded, Entry, Receipt, ReceiptDelivery};
use ledger::merkle::{verify_inclusion, Blake3Merkle};
use ledger::store::{Pending, Store};
use ledger::{entry_id, Digest, SignedTreeHead};

use crate::checkpoint::Checkpoint;
use crate::{Router, ShardError};

/// What a sequencer checkpoint holds: the postcard encoding of [`Sequencer`].
const SEQUENCER: &[u8; 8] = b"CTSEQv01";

/// How a shard's sequencer state was rebuilt at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Entries in the log.
    pub entries: u64,
    /// Entries read to rebuild the state: all of them, or those after the
    /// checkpoint.
    pub scanned: u64,
}

/// What the sequencer knows: a function of the entries recorded so far (the
/// log's, and those queued on it), rebuilt from the log at open.
#[derive(Default, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Sequencer {
    /// Index the next entry will get (committed or queued entries before it).
    next_index: u64,
    /// `outbox[b]`: indices of this shard's receipts to shard `b`, by channel sequence.
    outbox: HashMap<u32, Vec<u64>>,
    /// `inbox[a]`: the channel sequence expected next from shard `a`.
    inbox: HashMap<u32, u64>,
    /// Subject -> indices of the entries about it on this shard.
    subjects: HashMap<String, Vec<u64>>,
}

impl Sequencer {
    /// Records an entry about to be appended at `self.next_index`.
    fn record(&mut self, entry: &Entry) {
        let index = self.next_index;
        match entry {
            Entry::ReceiptOut(r) => {
                let out = self.outbox.entry(r.to_shard).or_default();
                debug_assert_eq!(out.len() as u64, r.channel_seq);
                out.push(index);
            }
            Entry::ReceiptIn(d) => {
                self.inbox
                    .insert(d.receipt.from_shard, d.receipt.channel_seq + 1);
            }
            _ => {}
        }
        self.record_subjects(&entry.subjects());
    }

    /// Records an entry, known only by its subjects, at `self.next_index`.
    fn record_subjects(&mut self, subjects: &[&str]) {
        let index = self.next_index;
        for s in subjects {
            self.subjects
                .entry((*s).to_string())
                .or_default()
                .push(index);
        }
        self.next_index += 1;
    }
}

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub shard: u32,
    /// Index and id of each appended entry, in order.
    pub entries: Vec<(u64, Digest)>,
    /// Receipts put in the outbox for subjects homed elsewhere.
    pub receipts: Vec<Receipt>,
}

/// Whether delivery `d` is what the sender whose log key is `key`
/// committed: its head signed by that key (unless `head_checked`), and the
/// receipt included in the log under that head.
pub fn verify_delivery(
    d: &ReceiptDelivery,
    key: &VerifyingKey,
    head_checked: bool,
) -> Result<(), ReceiptError> {
    if !head_checked {
        d.head
            .verify(key)
            .map_err(|e| ReceiptError::BadHead(e.to_string()))?;
    }
    let leaf = entry_id(&Entry::ReceiptOut(d.receipt.clone()).to_bytes());
    verify_inclusion::<Blake3Merkle>(
        d.receipt_index,
        d.head.head.size,
        &leaf,
        &d.proof,
        &d.head.head.root,
    )
    .map_err(|e| ReceiptError::BadProof {
        index: d.receipt_index,
        reason: e.to_string(),
    })
}

/// Why a delivered receipt was refused. Nothing refused is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt is addressed to shard {to}, not to shard {at}")]
    Misrouted { to: u32, at: u32 },
    #[error("receipt claims to come from shard {from}, which this node does not have")]
    UnknownSender { from: u32 },
    #[error("the sender's signed head does not verify: {0}")]
    BadHead(String),
    #[error("the inclusion proof does not place this receipt at index {index} of the sender's log: {reason}")]
    BadProof { index: u64, reason: String },
    #[error(
        "receipt {got} on channel {from}->{to} was already committed (next expected is {expected})"
    )]
    Replayed {
        from: u32,
        to: u32,
        got: u64,
        expected: u64,
    },
    #[error(
        "receipt {got} on channel {from}->{to} skips ahead; receipt {expected} must come first"
    )]
    Skipped {
        from: u32,
        to: u32,
        got: u64,
        expected: u64,
    },
}

/// What a run of deliveries committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub committed: Committed,
    /// Deliveries skipped because they were already committed.
    pub replayed: u64,
}

/// A shard of a node.
pub struct Shard {
    id: u32,
    router: Router,
    /// The log, behind the `Store` trait: nothing here or above depends on
    /// which store keeps it.
    store: Box<dyn Store>,
    /// Where the log lives (for the embedded store, its directory).
    dir: PathBuf,
    /// Where the sequencer's checkpoint is written.
    checkpoint: PathBuf,
    opened: Opened,
    seq: Mutex<Sequencer>,
    /// `inbox_committed[a]`: the channel sequence expected next from shard
    /// `a` counting only durable receipts (the sequencer's `inbox` also counts
    /// those queued). Not checkpointed: at open everything is durable.
    inbox_committed: Mutex<HashMap<u32, u64>>,
    /// Entries known durable: the feed's high-water mark.
    committed: AtomicU64,
    /// Woken whenever `committed` grows (the node's feed listens).
    notify: Arc<Notify>,
    /// The log's key, kept to sign checkpoints of the heads the store
    /// signed. Ed25519 is deterministic, so a head's checkpoint is the same
    /// text every time it is asked for: none is stored.
    checkpoint_key: ed25519_dalek::SigningKey,
}

impl Shard {
    /// Takes the shard's log and rebuilds its sequencer state: from the
    /// checkpoint at `checkpoint` when one matches the log, reading only the
    /// entries after it; else from every entry.
    pub fn open(
        id: u32,
        router: Router,
        (store, checkpoint_key): (Box<dyn Store>, ed25519_dalek::SigningKey),
        dir: &Path,
        checkpoint: PathBuf,
        notify: Arc<Notify>,
    ) -> Result<Shard, ShardError> {
        if checkpoint_key.verifying_key() != store.public_key() {
            return Err(ShardError::Config(format!(
                "shard {id}: the key given for checkpoints is not the log's key"
            )));
        }
        let len = store.len();
        let loaded = Checkpoint::load_or_scan(&checkpoint, SEQUENCER, &(id, store.as_ref()))
            .and_then(|c| match postcard::from_bytes::<Sequencer>(&c.payload) {
                Ok(seq) if seq.next_index == c.size(id) => Some(seq),
                _ => {
                    tracing::warn!(
                        shard = id,
                        "the sequencer checkpoint does not decode; reading the whole log instead"
                    );
                    None
                }
            });
        let from_checkpoint = loaded.is_some();
        let mut seq = loaded.unwrap_or_default();
        let mut from = seq.next_index;
        let scanned = len - from;
        // Scan in chunks: memory stays bounded by one chunk of entries.
        while from < len {
            let to = (from + 4096).min(len);
            for bytes in store.entries(from, to)? {
                // Readings are the bulk of a log and their subject is in the
                // header: skip decoding the readings themselves.
                if let Some((device, _, _)) = ledger::entry::peek_readings(&bytes) {
                    seq.record_subjects(&[device.as_str()]);
                    continue;
                }
                let entry = Entry::from_bytes(&bytes).map_err(|e| ShardError::Corrupt {
                    shard: id,
                    what: format!("entry {} does not decode: {e}", seq.next_index),
                })?;
                seq.record(&entry);
            }
            from = to;
        }
        tracing::info!(
            shard = id,
            entries = len,
            scanned,
            from_checkpoint,
            "sequencer state rebuilt"
        );
        Ok(Shard {
            id,
            router,
            store,
            dir: dir.to_path_buf(),
            checkpoint,
            opened: Opened {
                entries: len,
                scanned,
            },
            inbox_committed: Mutex::new(seq.inbox.clone()),
            seq: Mutex::new(seq),
            committed: AtomicU64::new(len),
            notify,
            checkpoint_key,
        })
    }

    /// How the sequencer state was rebuilt at open.
    pub fn opened(&self) -> Opened {
        self.opened
    }

    /// Writes the sequencer's checkpoint: its state as of the index the next
    /// entry gets, once every entry before that index is durable (entries
    /// queued when the state was taken are waited for, up to `wait`).
    /// Returns the size it covers, or `None` when the log did not get there
    /// in time (nothing is written then: a checkpoint never claims entries
    /// that are not durable).
    pub async fn checkpoint(&self, wait: Duration) -> Result<Option<u64>, ShardError> {
        let (size, payload) = {
            let seq = self.seq.lock().expect("sequencer lock");
            let payload = postcard::to_allocvec(&*seq).expect("the sequencer state encodes");
            (seq.next_index, payload)
        };
        let deadline = tokio::time::Instant::now() + wait;
        while self.store.len() < size {
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Checkpoint::new(&(self.id, self.store.as_ref()), &[(self.id, size)], payload)?
            .save(&self.checkpoint, SEQUENCER)?;
        Ok(Some(size))
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The shard's log, as any `Store`.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Where the shard's log lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.store.public_key()
    }

    /// `head` as a C2SP checkpoint (`ledger::note`) signed by the log's key,
    /// if the log signed `head`: only heads the store itself signed get a
    /// checkpoint, so the log never signs two inconsistent ones.
    pub fn signed_checkpoint(&self, head: &ledger::SignedTreeHead) -> Result<String, ShardError> {
        head.verify(&self.public_key())
            .map_err(|e| ShardError::Corrupt {
                shard: self.id,
                what: format!("a head to checkpoint is not this log's: {e}"),
            })?;
        Ok(ledger::note::sign_checkpoint(
            &head.head,
            &self.checkpoint_key,
        ))
    }

    /// Entries known to be durable.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    fn mark_committed(&self) {
        self.committed.fetch_max(self.store.len(), Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Appends `entries`; for each subject of each entry that is homed on
    /// another shard, a receipt follows the entry in the same commit.
    /// Resolves once everything is durable.
    pub async fn append(&self, entries: Vec<Entry>) -> Result<Committed, ShardError> {
        self.append_encoded(entries.into_iter().map(Encoded::new).collect())
            .await
    }

    /// [`Shard::append`] for entries already encoded (a device batch's
    /// bytes as received, say), so they are not encoded again.
    pub async fn append_encoded(&self, entries: Vec<Encoded>) -> Result<Committed, ShardError> {
        let (pending, committed) = self.queue(entries)?;
        pending.await?;
        self.mark_committed();
        Ok(committed)
    }

    /// The sequencer step: indices, receipts and the queued store append,
    /// under the lock so that indices follow queue order.
    fn queue(&self, entries: Vec<Encoded>) -> Result<(Pending, Committed), ShardError> {
        // Ids depend on the bytes alone: hashed before the lock, so appends
        // to one shard wait on each other only for their numbering.
        let entries: Vec<(Entry, Vec<u8>, Digest)> = entries
            .into_iter()
            .map(|e| {
                let (entry, bytes) = e.into_parts();
                let id = entry_id(&bytes);
                (entry, bytes, id)
            })
            .collect();
        let mut seq = self.seq.lock().expect("sequencer lock");
        let mut all = Vec::with_capacity(entries.len());
        let mut all_bytes = Vec::with_capacity(entries.len());
        let mut planned = Vec::with_capacity(entries.len());
        let mut receipts = Vec::new();
        let mut outbox_len: HashMap<u32, u64> = HashMap::new();
        let mut index = seq.next_index;
        for (entry, bytes, id) in entries {
            planned.push((index, id));
            let source_index = index;
            index += 1;
            for (subject, home) in self.router.elsewhere(&entry, self.id) {
                let n = outbox_len
                    .entry(home)
                    .or_insert_with(|| seq.outbox.get(&home).map_or(0, |v| v.len() as u64));
                let receipt = Receipt {
                    from_shard: self.id,
                    to_shard: home,
                    channel_seq: *n,
                    source_index,
                    source_id: id,
                    subject: subject.to_string(),
                };
                *n += 1;
                receipts.push(receipt);
            }
            all.push(entry);
            all_bytes.push(bytes);
            // Receipts go right after their entry.
            let new_receipts = receipts.iter().filter(|r| r.source_index == source_index);
            for r in new_receipts {
                let e = Entry::ReceiptOut(r.clone());
                index += 1;
                all_bytes.push(e.to_bytes());
                all.push(e);
            }
        }
        let pending = self.store.submit(all_bytes)?;
        // Queued: the indices are now taken, in queue order.
        for entry in &all {
            seq.record(entry);
        }
        debug_assert_eq!(seq.next_index, index);
        Ok((
            pending,
            Committed {
                shard: self.id,
                entries: planned,
                receipts,
            },
        ))
    }

    /// The next receipt this shard expects from shard `from`.
    pub fn inbox_expected(&self, from: u32) -> u64 {
        *self
            .seq
            .lock()
            .expect("sequencer lock")
            .inbox
            .get(&from)
            .unwrap_or(&0)
    }

    /// The next receipt from shard `from` that this shard has not made
    /// durable: [`Shard::inbox_expected`] less the receipts still queued.
    pub fn inbox_committed(&self, from: u32) -> u64 {
        *self
            .inbox_committed
            .lock()
            .expect("inbox lock")
            .get(&from)
            .unwrap_or(&0)
    }

    /// Receipts committed in this shard's outbox for shard `to`.
    pub fn outbox_len(&self, to: u32) -> u64 {
        let committed = self.committed();
        self.seq
            .lock()
            .expect("sequencer lock")
            .outbox
            .get(&to)
            .map_or(0, |v| v.partition_point(|&i| i < committed) as u64)
    }

    /// A signed head covering at least `size` entries.
    pub async fn head_covering(&self, size: u64) -> Result<SignedTreeHead, ShardError> {
        if let Some(h) = self.store.latest_head() {
            if h.head.size >= size {
                return Ok(h);
            }
        }
        // Shared with other askers: a busy log signs one head per gap, not
        // one per proof or relay run.
        Ok(self.store.request_head_soon()?.await?)
    }

    /// Receipts `from_seq..to_seq` of the channel to `to` (as far as they are
    /// committed), packed for delivery: each with its inclusion proof under
    /// one signed head that covers them all.
    pub async fn deliveries(
        &self,
        to: u32,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<ReceiptDelivery>, ShardError> {
        self.packed(to, from_seq, to_seq, false).await
    }

    /// [`Shard::deliveries`] for the relay: when the newest signed head
    /// covers the first of the receipts, only those it covers, at once; a
    /// head is asked for (shared, within the log's head gap) only when it
    /// covers none. A backlog is never held up by head signing.
    pub(crate) async fn relay_run(
        &self,
        to: u32,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<ReceiptDelivery>, ShardError> {
        self.packed(to, from_seq, to_seq, true).await
    }

    async fn packed(
        &self,
        to: u32,
        from_seq: u64,
        to_seq: u64,
        covered_now: bool,
    ) -> Result<Vec<ReceiptDelivery>, ShardError> {
        let committed = self.committed();
        let mut indices: Vec<u64> = {
            let seq = self.seq.lock().expect("sequencer lock");
            seq.outbox
                .get(&to)
                .map(|v| {
                    let end = (to_seq as usize).min(v.len());
                    v.get(from_seq as usize..end)
                        .unwrap_or(&[])
                        .iter()
                        .copied()
                        .take_while(|&i| i < committed)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
            return Ok(Vec::new());
        };
        let head = match self.store.latest_head() {
            Some(h) if covered_now && h.head.size > first => {
                indices.retain(|&i| i < h.head.size);
                h
            }
            _ => self.head_covering(last + 1).await?,
        };
        let mut out = Vec::with_capacity(indices.len());
        for index in indices {
            let bytes = self.store.entry(index)?;
            let Ok(Entry::ReceiptOut(receipt)) = Entry::from_bytes(&bytes) else {
                return Err(ShardError::Corrupt {
                    shard: self.id,
                    what: format!("outbox entry {index} is not a receipt"),
                });
            };
            out.push(ReceiptDelivery {
                receipt,
                receipt_index: index,
                proof: self.store.inclusion_proof(index, head.head.size)?,
                head,
            });
        }
        Ok(out)
    }

    /// Receipt `channel_seq` of the channel to `to`, packed for delivery;
    /// `None` if not (yet) committed.
    pub async fn delivery(
        &self,
        to: u32,
        channel_seq: u64,
    ) -> Result<Option<ReceiptDelivery>, ShardError> {
        Ok(self
            .deliveries(to, channel_seq, channel_seq + 1)
            .await?
            .pop())
    }

    /// Checks one delivery's addressing, its head's signature under the
    /// sender's key (unless `head_checked`: the previous delivery of the run
    /// carried the same head), and its inclusion proof.
    fn check(
        &self,
        d: &ReceiptDelivery,
        sender_key: Option<VerifyingKey>,
        head_checked: bool,
    ) -> Result<(), ReceiptError> {
        let r = &d.receipt;
        if r.to_shard != self.id {
            return Err(ReceiptError::Misrouted {
                to: r.to_shard,
                at: self.id,
            });
        }
        let key = sender_key
            .filter(|_| r.from_shard != self.id)
            .ok_or(ReceiptError::UnknownSender { from: r.from_shard })?;
        verify_delivery(d, &key, head_checked)
    }

    /// Checks a delivered receipt and commits it (see [`ReceiptError`] for
    /// every refusal). `sender_key` is the public key of the claimed sender.
    pub async fn accept(
        &self,
        d: ReceiptDelivery,
        sender_key: Option<VerifyingKey>,
    ) -> Result<Committed, ShardError> {
        Ok(self.accept_batch(vec![d], sender_key).await?.committed)
    }

    fn nothing_accepted(&self, replayed: u64) -> Accepted {
        Accepted {
            committed: Committed {
                shard: self.id,
                entries: Vec::new(),
                receipts: Vec::new(),
            },
            replayed,
        }
    }

    /// Checks a run of deliveries from one sender and commits, in one group,
    /// those that come next on their channel. Any forged delivery refuses the
    /// whole run. Deliveries already committed are skipped (and counted); a
    /// gap ends the run. A run of nothing but a replay, or starting with a
    /// gap, is refused with [`ReceiptError::Replayed`] or [`ReceiptError::Skipped`].
    pub async fn accept_batch(
        &self,
        ds: Vec<ReceiptDelivery>,
        sender_key: Option<VerifyingKey>,
    ) -> Result<Accepted, ShardError> {
        if ds
            .iter()
            .any(|d| d.receipt.from_shard != ds[0].receipt.from_shard)
        {
            return Err(ShardError::Config(
                "a run of deliveries comes from one sender".into(),
            ));
        }
        let mut previous_head = None;
        for d in &ds {
            self.check(d, sender_key, previous_head == Some(d.head))?;
            previous_head = Some(d.head);
        }
        let Some(from) = ds.first().map(|d| d.receipt.from_shard) else {
            return Ok(self.nothing_accepted(0));
        };
        let (pending, upto, accepted) = {
            // The sequence check and the queueing happen under one hold of
            // the sequencer lock: two deliveries of one receipt cannot both commit.
            let mut seq = self.seq.lock().expect("sequencer lock");
            let mut take = Vec::new();
            let mut replayed = 0;
            let mut refusal = None;
            for d in ds {
                let (from, to, got) = (
                    d.receipt.from_shard,
                    d.receipt.to_shard,
                    d.receipt.channel_seq,
                );
                let expected = *seq.inbox.get(&from).unwrap_or(&0) + take.len() as u64;
                if got < expected {
                    replayed += 1;
                    refusal.get_or_insert(ReceiptError::Replayed {
                        from,
                        to,
                        got,
                        expected,
                    });
                } else if got > expected {
                    if take.is_empty() && replayed == 0 {
                        refusal = Some(ReceiptError::Skipped {
                            from,
                            to,
                            got,
                            expected,
                        });
                    }
                    break;
                } else {
                    take.push(d);
                }
            }
            if take.is_empty() {
                return match refusal {
                    Some(r) => Err(r.into()),
                    None => Ok(self.nothing_accepted(replayed)),
                };
            }
            let entries: Vec<Entry> = take.into_iter().map(Entry::ReceiptIn).collect();
            let bytes: Vec<Vec<u8>> = entries.iter().map(Entry::to_bytes).collect();
            let first = seq.next_index;
            let ids: Vec<(u64, Digest)> = bytes
                .iter()
                .zip(first..)
                .map(|(b, i)| (i, entry_id(b)))
                .collect();
            let pending = self.store.submit(bytes)?;
            for e in &entries {
                seq.record(e);
            }
            // Where this channel's inbox stands once the run is queued.
            let upto = seq.inbox.get(&from).copied().unwrap_or(0);
            (
                pending,
                upto,
                Accepted {
                    committed: Committed {
                        shard: self.id,
                        entries: ids,
                        receipts: Vec::new(),
                    },
                    replayed,
                },
            )
        };
        pending.await?;
        // The store makes appends durable in queue order, so every receipt
        // this channel queued up to here is durable too.
        let mut inbox = self.inbox_committed.lock().expect("inbox lock");
        let at = inbox.entry(from).or_default();
        *at = (*at).max(upto);
        drop(inbox);
        self.mark_committed();
        Ok(accepted)
    }

    /// Indices of the entries about `subject` on this shard, in log order.
    pub fn entries_about(&self, subject: &str) -> Vec<u64> {
        self.seq
            .lock()
            .expect("sequencer lock")
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }
}
