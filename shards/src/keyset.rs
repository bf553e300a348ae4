//! The node's operator key and the chain of key sets it signed
//! (`keys/operator.key`, `keys/keysets`).
//!
//! `keysets` is append-only: one record per set, `[u32 LE length][signed
//! set]`, each fsync'd before anyone is shown it. A record torn by a crash at
//! the end is cut off; anything else that does not verify stops the node.
//!
//! Rotating the operator key writes the new key beside the old one
//! (`operator.key.new`), appends the new set endorsed by the old key, then
//! renames the new key over the old. Opening finishes or forgets a rotation a
//! crash interrupted, by which key the newest durable set names.
//!
//! ## What a stranger checks
//!
//! `VERIFYING.md` is the format and the steps. The operator key (`keys/operator.key`) signs a
//! chain of key sets (`keys/keysets`, append-only, fsync'd): each names every shard's log key,
//! links to the previous set's digest, and, when it changes the operator key, carries the old
//! key's endorsement. `Node::open` issues a set when the shard keys are not the newest set's
//! (a new node) and finishes or forgets a rotation a crash interrupted; it refuses to open
//! with an operator key the newest set does not name. Every head a log signed stays in
//! `heads` (fixed-size records, sizes never decrease), so `Store::first_head_covering` finds the
//! head of any size by binary search: proofs against old heads and consistency answers with
//! both heads signed. `coldtrail audit-remote` checks all of it over HTTP with only the
//! `ledger` verifier half (`ledger` without its `store` feature).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::keyset::{verify_chain, KeySet, ShardKey, SignedKeySet, WitnessPolicy};

use crate::ShardError;

const OPERATOR_KEY: &str = "operator.key";
const OPERATOR_KEY_NEW: &str = "operator.key.new";
const KEYSETS: &str = "keysets";

pub(crate) struct KeySets {
    dir: PathBuf,
    /// Where a set's issue time comes from.
    clock: ledger::clock::SharedClock,
    operator: SigningKey,
    chain: Vec<SignedKeySet>,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> ShardError {
    ShardError::Config(format!(
        "{}: {what}; restore the node's keys directory from a backup",
        path.display()
    ))
}

impl KeySets {
    /// Loads the chain, finishing an interrupted rotation, and issues a new
    /// set if the shard keys are not the ones the newest set names (a new
    /// node, or one created before key sets existed).
    pub(crate) fn open(
        keys_dir: &Path,
        shard_keys: &[VerifyingKey],
        clock: ledger::clock::SharedClock,
    ) -> Result<KeySets, ShardError> {
        let path = keys_dir.join(KEYSETS);
        let chain = read_chain(&path)?;
        if !chain.is_empty() {
            verify_chain(&chain, None).map_err(|e| corrupt(&path, e))?;
        }
        let key_path = keys_dir.join(OPERATOR_KEY);
        let new_path = keys_dir.join(OPERATOR_KEY_NEW);
        if new_path.exists() {
            let new = ledger::keys::read_key_file(&new_path)?;
            let named = chain.last().map(|s| s.set.operator_key);
            if named == Some(new.verifying_key().to_bytes()) {
                fs::rename(&new_path, &key_path).map_err(|e| ShardError::io(&key_path, e))?;
            } else {
                fs::remove_file(&new_path).map_err(|e| ShardError::io(&new_path, e))?;
            }
            sync_dir(keys_dir)?;
        }
        let operator = if key_path.exists() {
            ledger::keys::read_key_file(&key_path)?
        } else if chain.is_empty() {
            let k = ledger::keys::generate()?;
            ledger::keys::write_key_file(&key_path, &k)?;
            k
        } else {
            return Err(ShardError::Config(format!(
                "{} is missing but {} names an operator key; restore it from a backup",
                key_path.display(),
                path.display()
            )));
        };
        if let Some(last) = chain.last() {
            if last.set.operator_key != operator.verifying_key().to_bytes() {
                return Err(ShardError::Config(format!(
                    "{} is not the operator key the newest key set names; restore the right key (verifiers pinned to it would refuse this node)",
                    key_path.display()
                )));
            }
        }
        let mut sets = KeySets {
            dir: keys_dir.to_path_buf(),
            clock,
            operator,
            chain,
        };
        let shards: Vec<ShardKey> = shard_keys
            .iter()
            .enumerate()
            .map(|(i, k)| ShardKey {
                shard: i as u32,
                public_key: k.to_bytes(),
            })
            .collect();
        if let Some(last) = sets.chain.last() {
            if !shards.starts_with(&last.set.shards) {
                return Err(ShardError::Config(format!(
                    "the shards' log keys are not the ones {} names (a log keeps its key for life); restore the shards' key files from a backup",
                    path.display()
                )));
            }
        }
        if sets.chain.last().map(|s| &s.set.shards) != Some(&shards) {
            let operator = sets.operator.clone();
            let witnesses = sets.witnesses();
            sets.issue(&operator, None, shards, witnesses)?;
        }
        Ok(sets)
    }

    pub(crate) fn chain(&self) -> &[SignedKeySet] {
        &self.chain
    }

    /// The newest set's witness policy.
    fn witnesses(&self) -> Option<WitnessPolicy> {
        self.chain.last().and_then(|s| s.set.witnesses.clone())
    }

    /// Publishes `policy` as the node's witness policy: a new set when it is
    /// not the newest set's (`None` when nothing changed).
    pub(crate) fn publish_witnesses(
        &mut self,
        policy: Option<WitnessPolicy>,
    ) -> Result<Option<SignedKeySet>, ShardError> {
        if let Some(p) = &policy {
            p.check().map_err(ShardError::Config)?;
        }
        if self.witnesses() == policy {
            return Ok(None);
        }
        let operator = self.operator.clone();
        let shards = self.shards();
        self.issue(&operator, None, shards, policy).map(Some)
    }

    /// The operator's cosignature line (C2SP `cosignature/v1`) of the
    /// checkpoint of `head`, as witness `name`, at `timestamp_s`.
    pub(crate) fn cosign(&self, head: &ledger::TreeHead, name: &str, timestamp_s: u64) -> String {
        ledger::note::cosign(
            &ledger::note::checkpoint_text(head),
            name,
            &self.operator,
            timestamp_s,
        )
    }

    fn shards(&self) -> Vec<ShardKey> {
        self.chain
            .last()
            .map(|s| s.set.shards.clone())
            .unwrap_or_default()
    }

    /// Appends a new set signed by `operator` (endorsed by `endorser`).
    fn issue(
        &mut self,
        operator: &SigningKey,
        endorser: Option<&SigningKey>,
        shards: Vec<ShardKey>,
        witnesses: Option<WitnessPolicy>,
    ) -> Result<SignedKeySet, ShardError> {
        let prev = self.chain.last();
        let set = KeySet {
            sequence: prev.map_or(0, |p| p.set.sequence + 1),
            previous: prev.map(|p| p.set.digest()),
            issued_at_ms: self
                .clock
                .now_ms()
                .max(prev.map_or(0, |p| p.set.issued_at_ms)),
            operator_key: operator.verifying_key().to_bytes(),
            shards,
            witnesses,
        }
        .sign(operator, endorser);
        let path = self.dir.join(KEYSETS);
        let bytes = set.to_bytes();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ShardError::io(&path, e))?;
        f.write_all(&(bytes.len() as u32).to_le_bytes())
            .and_then(|_| f.write_all(&bytes))
            .and_then(|_| f.sync_data())
            .map_err(|e| ShardError::io(&path, e))?;
        sync_dir(&self.dir)?;
        self.chain.push(set.clone());
        Ok(set)
    }

    /// Replaces the operator key: the new set is endorsed by the old key.
    pub(crate) fn rotate_operator(&mut self) -> Result<SignedKeySet, ShardError> {
        let new = ledger::keys::generate()?;
        let new_path = self.dir.join(OPERATOR_KEY_NEW);
        let _ = fs::remove_file(&new_path);
        ledger::keys::write_key_file(&new_path, &new)?;
        let old = self.operator.clone();
        let (shards, witnesses) = (self.shards(), self.witnesses());
        let set = self.issue(&new, Some(&old), shards, witnesses)?;
        let key_path = self.dir.join(OPERATOR_KEY);
        fs::rename(&new_path, &key_path).map_err(|e| ShardError::io(&key_path, e))?;
        sync_dir(&self.dir)?;
        self.operator = new;
        Ok(set)
    }
}

/// The key sets of the node whose data directory is `data_dir`, checked as a
/// chain, without opening the node (for tools; writes nothing).
pub fn published(data_dir: &Path) -> Result<Vec<SignedKeySet>, ShardError> {
    let path = data_dir.join("keys").join(KEYSETS);
    let chain = read_chain_only(&path)?;
    if !chain.is_empty() {
        verify_chain(&chain, None).map_err(|e| corrupt(&path, e))?;
    }
    Ok(chain)
}

/// Reads the records, ignoring a torn last one.
fn read_chain_only(path: &Path) -> Result<Vec<SignedKeySet>, ShardError> {
    read_records(path, false)
}

fn read_chain(path: &Path) -> Result<Vec<SignedKeySet>, ShardError> {
    read_records(path, true)
}

/// Reads the records; a torn last one is cut off the file when `repair`.
fn read_records(path: &Path, repair: bool) -> Result<Vec<SignedKeySet>, ShardError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ShardError::io(path, e)),
    };
    let mut chain = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let torn = || -> Result<(), ShardError> {
            // Only the last record can be torn (appends are fsync'd in order).
            if !repair {
                return Ok(());
            }
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| ShardError::io(path, e))?;
            f.set_len(pos as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| ShardError::io(path, e))
        };
        let Some(len) = bytes
            .get(pos..pos + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        else {
            torn()?;
            break;
        };
        let Some(record) = bytes.get(pos + 4..pos + 4 + len) else {
            torn()?;
            break;
        };
        chain.push(
            SignedKeySet::from_bytes(record)
                .map_err(|e| corrupt(path, format!("record at byte {pos}: {e}")))?,
        );
        pos += 4 + len;
    }
    Ok(chain)
}

fn sync_dir(dir: &Path) -> Result<(), ShardError> {
    ledger::durable::sync_dir(dir).map_err(|e| ShardError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_keys(n: u8) -> Vec<VerifyingKey> {
        (0..n)
            .map(|i| SigningKey::from_bytes(&[40 + i; 32]).verifying_key())
            .collect()
    }

    #[test]
    fn the_first_open_issues_a_set_and_reopening_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySets::open(dir.path(), &shard_keys(3), ledger::clock::system()).unwrap();
        assert_eq!(first.chain().len(), 1);
        let again = KeySets::open(dir.path(), &shard_keys(3), ledger::clock::system()).unwrap();
        assert_eq!(again.chain(), first.chain());
        verify_chain(again.chain(), None).unwrap();
    }

    #[test]
    fn a_rotation_is_endorsed_and_survives_a_crash_at_each_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut sets = KeySets::open(dir.path(), &shard_keys(2), ledger::clock::system()).unwrap();
        let old = sets.chain()[0].set.operator_key;
        let rotated = sets.rotate_operator().unwrap();
        assert_ne!(rotated.set.operator_key, old);
        let reopened = KeySets::open(dir.path(), &shard_keys(2), ledger::clock::system()).unwrap();
        assert_eq!(reopened.chain().len(), 2);
        verify_chain(reopened.chain(), Some(&old)).unwrap();

        // A crash after the new key was written but before the set was: the
        // new key is forgotten, the old one stays.
        let stray = ledger::keys::generate().unwrap();
        ledger::keys::write_key_file(&dir.path().join(OPERATOR_KEY_NEW), &stray).unwrap();
        let after = KeySets::open(dir.path(), &shard_keys(2), ledger::clock::system()).unwrap();
        assert_eq!(after.chain().len(), 2);
        assert!(!dir.path().join(OPERATOR_KEY_NEW).exists());
        assert_eq!(
            after.operator.verifying_key().to_bytes(),
            rotated.set.operator_key
        );

        // A torn last record is cut off.
        let path = dir.path().join(KEYSETS);
        let len = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let cut = KeySets::open(dir.path(), &shard_keys(2), ledger::clock::system()).unwrap();
        assert_eq!(cut.chain().len(), 2);
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn a_replaced_operator_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        KeySets::open(dir.path(), &shard_keys(1), ledger::clock::system()).unwrap();
        let key_path = dir.path().join(OPERATOR_KEY);
        fs::remove_file(&key_path).unwrap();
        assert!(
            KeySets::open(dir.path(), &shard_keys(1), ledger::clock::system()).is_err(),
            "missing key"
        );
        ledger::keys::write_key_file(&key_path, &ledger::keys::generate().unwrap()).unwrap();
        let err = KeySets::open(dir.path(), &shard_keys(1), ledger::clock::system())
            .err()
            .unwrap();
        assert!(err.to_string().contains("not the operator key"), "{err}");
    }

    #[test]
    fn a_replaced_shard_key_is_refused_and_a_new_shard_is_added() {
        let dir = tempfile::tempdir().unwrap();
        KeySets::open(dir.path(), &shard_keys(2), ledger::clock::system()).unwrap();
        let mut replaced = shard_keys(2);
        replaced[1] = SigningKey::from_bytes(&[77; 32]).verifying_key();
        let err = KeySets::open(dir.path(), &replaced, ledger::clock::system())
            .err()
            .unwrap();
        assert!(err.to_string().contains("keeps its key"), "{err}");
        let grown = KeySets::open(dir.path(), &shard_keys(3), ledger::clock::system()).unwrap();
        assert_eq!(grown.chain().len(), 2);
        assert_eq!(grown.chain()[1].set.shards.len(), 3);
    }
}
