//! Mirrors: a verified, read-only copy of another member's log (DESIGN.md,
//! "The network"). The log's node publishes it as [`LogRun`]s (entries in
//! order, each run with one of the log's signed heads and a consistency
//! proof from the run's end to that head); a [`Mirror`] checks each run
//! before it keeps a byte of it and keeps the log's entries in a store of
//! its own, so it can answer for them (entries, inclusion and consistency
//! proofs under the origin's own signed heads) while the origin is down.
//!
//! What a run must pass, in order:
//! - the head is signed by the origin's log key (and names that log);
//! - the head agrees with what the mirror already holds: a head no larger
//!   than the mirror's copy has the copy's root at its size, and a head of
//!   the size of one kept ahead has its root. Otherwise the origin signed
//!   two histories: a **fork**. The mirror keeps both heads as evidence and
//!   follows that log no further;
//! - entries the mirror already holds are the same bytes (ids compared). A
//!   larger head over a run that differs from the copy is a fork too, once
//!   the run, after the copy's entries before the first that differs, is
//!   carried by its proof to that head: the key signed a tree that does not
//!   extend the one the held head names;
//! - the new entries, folded onto the mirror's tree (a [`Frontier`]), give
//!   a root the consistency proof carries to the head's root.
//!
//! A run that fails is refused and named (its log and range); the mirror is
//! unchanged and goes on with the next. A run that starts past the copy's
//! end waits ([`Applied::Early`]).
//!
//! Invariants: every entry in the mirror's store was checked under a head
//! the origin signed before it was appended; the state file (the frontier,
//! the heads, any fork) is replaced durably after the store's append is
//! durable, so the store is never behind it, and a store found ahead of it
//! after a crash is folded back in from the store's own ids (those entries
//! were checked before they were written). The store's own heads, signed
//! with the mirror's private key, are bookkeeping and are never served: the
//! origin's heads are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::VerifyingKey;
use ledger::codec::{Reader, Writer};
use ledger::entry::entry_id;
use ledger::merkle::{verify_consistency, Frontier};
use ledger::store::{Backend, Store, StoreConfig, StoreError};
use ledger::{DecodeError, Digest, SignedTreeHead};

/// The encoding of a [`LogRun`]; a message of another version is refused.
const RUN_VERSION: u8 = 1;
/// The state file's format.
const STATE_VERSION: u8 = 1;
const STATE_FILE: &str = "mirror.state";
const KEY_FILE: &str = "mirror.key";

/// A run of one log's entries as its node publishes it: entries
/// `[low, low + entries.len())`, one of the log's signed heads at a size at
/// least the run's end, and the consistency proof from the run's end to it.
/// A run with no entries announces a head at the log's current end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRun {
    pub low: u64,
    pub entries: Vec<Vec<u8>>,
    pub head: SignedTreeHead,
    pub proof: Vec<Digest>,
}

impl LogRun {
    /// One past the run's last entry.
    pub fn high(&self) -> u64 {
        self.low + self.entries.len() as u64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RUN_VERSION);
        w.varint(self.low);
        self.head.encode(&mut w);
        w.seq(&self.proof, |w, d| w.digest(d));
        w.seq(&self.entries, |w, e| w.bytes(e));
        w.into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<LogRun, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("log run version")?;
        if version != RUN_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: RUN_VERSION,
            });
        }
        let low = r.varint("log run start")?;
        let head = SignedTreeHead::decode(&mut r)?;
        let proof = r.seq("log run proof", 32, |r| r.digest("proof node"))?;
        let entries = r.seq("log run entries", 1, |r| {
            r.bytes("log run entry").map(<[u8]>::to_vec)
        })?;
        r.finish()?;
        if low.checked_add(entries.len() as u64).is_none() {
            return Err(DecodeError::Invalid {
                what: "log run start",
                reason: "the run ends past the largest index",
            });
        }
        Ok(LogRun {
            low,
            entries,
            head,
            proof,
        })
    }
}

/// Two heads the origin signed that cannot both describe one log: the
/// newest it had signed for what the mirror holds, and the one that
/// contradicts it. Anyone with the log's key checks both signatures; the
/// mirror's entries show which history each describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    pub held: SignedTreeHead,
    pub conflicting: SignedTreeHead,
}

/// What a mirror did with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Checked and kept this many new entries (0: a head announced, or a
    /// run the mirror already held).
    Kept(u64),
    /// It starts past the copy's end, at this index; it is asked again.
    Early { expected: u64 },
    /// The origin signed two histories; the mirror stops following this log.
    Forked(Box<Fork>),
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The run is not what the origin signed: nothing of it is kept.
    #[error("{log}: refused entries {low}..{high}: {why}")]
    Refused {
        log: String,
        low: u64,
        high: u64,
        why: String,
    },
    /// The log forked earlier; the mirror no longer follows it.
    #[error("{log}: forked at size {size}; the mirror follows it no further")]
    Stopped { log: String, size: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {why}")]
    State { path: String, why: String },
}

/// What the mirror holds besides the entries (the state file).
#[derive(Debug, Clone, Default)]
struct State {
    frontier: Frontier,
    /// The newest origin head at most the copy's size: proofs are made
    /// against it.
    head: Option<SignedTreeHead>,
    /// A newer checked head past the copy's end (a run ended short of it).
    ahead: Option<SignedTreeHead>,
    fork: Option<Fork>,
}

impl State {
    /// The newest head checked against the copy.
    fn newest(&self) -> Option<&SignedTreeHead> {
        self.ahead.as_ref().or(self.head.as_ref())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(STATE_VERSION);
        w.varint(self.frontier.size());
        let roots: Vec<Digest> = self.frontier.roots().copied().collect();
        w.seq(&roots, |w, d| w.digest(d));
        w.option(self.head.as_ref(), |w, h| h.encode(w));
        w.option(self.ahead.as_ref(), |w, h| h.encode(w));
        w.option(self.fork.as_ref(), |w, f| {
            f.held.encode(w);
            f.conflicting.encode(w);
        });
        w.into_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Result<State, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("mirror state version")?;
        if version != STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: STATE_VERSION,
            });
        }
        let size = r.varint("mirror size")?;
        let roots = r.seq("mirror frontier", 32, |r| r.digest("frontier root"))?;
        let frontier = Frontier::from_parts(size, &roots).ok_or(DecodeError::Invalid {
            what: "mirror frontier",
            reason: "not one root per bit of its size",
        })?;
        let head = r.option("mirror head", SignedTreeHead::decode)?;
        let ahead = r.option("mirror head ahead", SignedTreeHead::decode)?;
        let fork = r.option("mirror fork", |r| {
            Ok(Fork {
                held: SignedTreeHead::decode(r)?,
                conflicting: SignedTreeHead::decode(r)?,
            })
        })?;
        r.finish()?;
        Ok(State {
            frontier,
            head,
            ahead,
            fork,
        })
    }
}

/// A verified copy of one log of another member: `member`'s shard `shard`,
/// whose heads `key` signs.
pub struct Mirror {
    name: String,
    key: VerifyingKey,
    store: Box<dyn Store>,
    state_path: PathBuf,
    state: Mutex<State>,
}

impl Mirror {
    /// Opens (or starts) the copy in `dir`: its store (on `backend`, as the
    /// log `mirror_{member}_{shard}`), its private bookkeeping key, its state.
    pub fn open(
        backend: &Backend,
        dir: &Path,
        (member, shard): (&str, u32),
        key: VerifyingKey,
        config: StoreConfig,
    ) -> Result<Mirror, MirrorError> {
        let name = format!("{member}/{shard}");
        let state_err = |path: &Path, why: String| MirrorError::State {
            path: path.display().to_string(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| state_err(dir, e.to_string()))?;
        let key_path = dir.join(KEY_FILE);
        let own = match ledger::keys::read_key_file(&key_path) {
            Ok(k) => k,
            Err(_) if !key_path.exists() => {
                let k =
                    ledger::keys::generate().map_err(|e| state_err(&key_path, e.to_string()))?;
                ledger::keys::write_key_file(&key_path, &k)
                    .map_err(|e| state_err(&key_path, e.to_string()))?;
                k
            }
            Err(e) => return Err(state_err(&key_path, e.to_string())),
        };
        let store = backend.open(dir, &format!("mirror_{member}_{shard}"), own, config)?;
        let state_path = dir.join(STATE_FILE);
        let mut state = match std::fs::read(&state_path) {
            Ok(bytes) => State::from_bytes(&bytes).map_err(|e| {
                state_err(
                    &state_path,
                    format!("{e}; delete the mirror's directory to copy the log again"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(state_err(&state_path, e.to_string())),
        };
        let (held, len) = (state.frontier.size(), store.len());
        if len < held {
            return Err(state_err(
                &state_path,
                format!("the state covers {held} entries, the store holds {len}; delete the mirror's directory to copy the log again"),
            ));
        }
        // Appended and durable, but the state was not replaced after: fold
        // them back in from their ids.
        for i in held..len {
            state.frontier.push(store.entry_id(i)?);
        }
        Ok(Mirror {
            name,
            key,
            store,
            state_path,
            state: Mutex::new(state),
        })
    }

    /// `member/shard`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The origin log's key.
    pub fn key(&self) -> VerifyingKey {
        self.key
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest origin head the copy's proofs are made against.
    pub fn head(&self) -> Option<SignedTreeHead> {
        self.state.lock().expect("mirror state").head
    }

    /// The fork found, if any.
    pub fn fork(&self) -> Option<Fork> {
        self.state.lock().expect("mirror state").fork.clone()
    }

    /// The entry at `index`, as the origin logged it.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        self.store.entry(index)
    }

    /// Entries `[from, to)`.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.store.entries(from, to)
    }

    /// Entry `index`'s inclusion proof under `head` (one of the origin's
    /// heads no larger than the copy).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, StoreError> {
        self.store.inclusion_proof(index, size)
    }

    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, StoreError> {
        self.store.consistency_proof(size1, size2)
    }

    fn refused(&self, run: &LogRun, why: impl Into<String>) -> MirrorError {
        MirrorError::Refused {
            log: self.name.clone(),
            low: run.low,
            high: run.high(),
            why: why.into(),
        }
    }

    /// Checks `run` and keeps what it adds (see the module's list). Runs
    /// are applied one at a time.
    pub async fn apply(&self, run: &LogRun) -> Result<Applied, MirrorError> {
        let mut state = self.state.lock().expect("mirror state").clone();
        if let Some(f) = &state.fork {
            return Err(MirrorError::Stopped {
                log: self.name.clone(),
                size: f.conflicting.head.size,
            });
        }
        run.head
            .verify(&self.key)
            .map_err(|e| self.refused(run, format!("its head: {e}")))?;
        let len = state.frontier.size();
        let size = run.head.head.size;
        if size < run.high() {
            return Err(self.refused(
                run,
                format!("its head covers {size} entries, fewer than the run"),
            ));
        }
        // The head against what is held: a contradiction is a fork.
        let contradicts = if size <= len {
            let root = if size == len {
                state.frontier.root()
            } else {
                self.store.root(size)?
            };
            root != run.head.head.root
        } else {
            state
                .ahead
                .is_some_and(|a| a.head.size == size && a.head.root != run.head.head.root)
        };
        if contradicts {
            let held = state
                .newest()
                .copied()
                .expect("a copy that holds entries was checked under a head");
            let fork = Fork {
                held,
                conflicting: run.head,
            };
            state.fork = Some(fork.clone());
            self.save(state)?;
            return Ok(Applied::Forked(Box::new(fork)));
        }
        if run.low > len {
            return Ok(Applied::Early { expected: len });
        }
        // Entries already held must be the same ones.
        let overlap = (len.min(run.high()) - run.low) as usize;
        for (k, bytes) in run.entries[..overlap].iter().enumerate() {
            let index = run.low + k as u64;
            if entry_id(bytes) != self.store.entry_id(index)? {
                // Signed over a tree whose entry differs from the one held
                // (the held head covers it): a fork, if the run is truly
                // carried to its head from the copy's entries before it.
                if self.carried_from(run, index)? {
                    let fork = Fork {
                        held: *state
                            .newest()
                            .expect("a copy that holds entries was checked under a head"),
                        conflicting: run.head,
                    };
                    state.fork = Some(fork.clone());
                    self.save(state)?;
                    return Ok(Applied::Forked(Box::new(fork)));
                }
                return Err(self.refused(run, format!("entry {index} differs from the one held")));
            }
        }
        let new = &run.entries[overlap..];
        if size <= len {
            // Nothing new (the head matched the copy above): keep the head
            // if it is newer than the one proofs are made against.
            let newer = state.head.is_none_or(|h| {
                (h.head.size, h.head.timestamp_ms) < (size, run.head.head.timestamp_ms)
            });
            if newer {
                state.head = Some(run.head);
                self.save(state)?;
            }
            return Ok(Applied::Kept(0));
        }
        let mut frontier = state.frontier.clone();
        for bytes in new {
            frontier.push(entry_id(bytes));
        }
        // The tree at the run's end must lead to the head's.
        let end = run.high();
        let end_root = if end == frontier.size() {
            frontier.root()
        } else {
            self.store.root(end)?
        };
        if end == 0 {
            return Err(self.refused(run, "a head over entries the run does not carry"));
        }
        verify_consistency::<ledger::merkle::Blake3Merkle>(
            end,
            size,
            &run.proof,
            &end_root,
            &run.head.head.root,
        )
        .map_err(|e| self.refused(run, format!("the entries do not lead to its head: {e}")))?;
        let high = frontier.size();
        if !new.is_empty() {
            let appended = self.store.submit(new.to_vec())?.await?;
            if appended.first_index != len {
                return Err(MirrorError::State {
                    path: self.state_path.display().to_string(),
                    why: format!(
                        "the store appended at {} where the copy ends at {len}",
                        appended.first_index
                    ),
                });
            }
        }
        state.frontier = frontier;
        if size == high {
            state.head = Some(run.head);
            state.ahead = None;
        } else {
            state.ahead = Some(run.head);
        }
        self.save(state)?;
        Ok(Applied::Kept(new.len() as u64))
    }

    /// Whether `run`'s entries from `index` on, after the copy's first
    /// `index` entries, lead by its proof to its (signature-checked) head's
    /// root: then the log's key signed that tree. Reads the copy's ids up
    /// to `index`; asked only when a run contradicts the copy.
    fn carried_from(&self, run: &LogRun, index: u64) -> Result<bool, MirrorError> {
        let mut frontier = Frontier::<ledger::merkle::Blake3Merkle>::default();
        for i in 0..index {
            frontier.push(self.store.entry_id(i)?);
        }
        for bytes in &run.entries[(index - run.low) as usize..] {
            frontier.push(entry_id(bytes));
        }
        Ok(verify_consistency::<ledger::merkle::Blake3Merkle>(
            frontier.size(),
            run.head.head.size,
            &run.proof,
            &frontier.root(),
            &run.head.head.root,
        )
        .is_ok())
    }

    fn save(&self, state: State) -> Result<(), MirrorError> {
        ledger::durable::replace(
            &self.state_path,
            &state.to_bytes(),
            ledger::durable::Mode::Shared,
        )
        .map_err(|e| MirrorError::State {
            path: self.state_path.display().to_string(),
            why: e.to_string(),
        })?;
        *self.state.lock().expect("mirror state") = state;
        Ok(())
    }
}

/// The mirrors a node keeps, by member and shard: what its read side
/// answers for other members' logs from. Filled as each member's mirrors
/// open; shared by whoever reads them.
#[derive(Clone, Default)]
pub struct Mirrors {
    by_member: Arc<RwLock<BTreeMap<String, Vec<Arc<Mirror>>>>>,
}

impl Mirrors {
    /// `member`'s mirrors, by shard (replacing any held).
    pub fn insert(&self, member: &str, mirrors: Vec<Arc<Mirror>>) {
        self.by_member
            .write()
            .expect("mirrors lock")
            .insert(member.to_string(), mirrors);
    }

    /// The mirror of `member`'s log `shard`, if the node keeps one.
    pub fn get(&self, member: &str, shard: u32) -> Option<Arc<Mirror>> {
        self.by_member
            .read()
            .expect("mirrors lock")
            .get(member)?
            .get(shard as usize)
            .cloned()
    }

    /// Every member followed, by name, with its mirrors by shard.
    pub fn members(&self) -> Vec<(String, Vec<Arc<Mirror>>)> {
        self.by_member
            .read()
            .expect("mirrors lock")
            .iter()
            .map(|(m, v)| (m.clone(), v.clone()))
            .collect()
    }
}
