//! `coldtrail audit-remote`: checks a running node from the outside, as a
//! stranger would, trusting nothing it serves but what the pinned operator key
//! signs.
//!
//! key document -> each shard's key -> its signed head -> consistency with the
//! head saved last time -> entries: content -> id -> inclusion proof -> head.
//!
//! Every check uses only the ledger's verifier half (entries, hashes, Merkle
//! proofs, heads, key sets: no storage, no network); this module adds the
//! HTTP and the state file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use ledger::entry::{entry_id, Entry};
use ledger::keyset::{verify_chain, SignedKeySet};
use ledger::{Digest, SignedTreeHead, TreeHead};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use ::web::KEYS_PATH;

#[derive(clap::Args)]
pub struct Args {
    /// The node's base URL, e.g. http://127.0.0.1:8080
    url: String,
    /// The operator key to trust (64 hex digits, as `coldtrail inspect` prints
    /// it). Without it, the key saved in the state file; without either, the
    /// key the node serves now (trust on first use), saved for next time.
    #[arg(long)]
    pin: Option<String>,
    /// Saved heads and key sets from the last run: the node must only have
    /// grown since. Created if missing; updated only when every check passes.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Entries checked per shard, besides the first and the last.
    #[arg(long, default_value_t = 32)]
    sample: usize,
    /// Check every entry of every shard.
    #[arg(long)]
    all: bool,
    /// A bearer token (an investigator's reads every entry): entries are
    /// checked from their content. Without one, or for entries the token may
    /// not read, the audit checks what a stranger can: each entry's id under
    /// the signed head, not the content behind it.
    #[arg(long, env = "COLDTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A witness whose cosignatures you trust: its name and public key (64
    /// hex digits), as `coldtrail witness` prints them. Repeat for more.
    /// Without any, the witness policy the node's signed key set names (if
    /// it names one) is checked.
    #[arg(long = "witness", value_name = "NAME=KEY")]
    witnesses: Vec<String>,
    /// How many of the `--witness`es must have cosigned a checkpoint each
    /// shard's head is consistent with (default: all of them; with none
    /// given, the key set's quorum).
    #[arg(long)]
    quorum: Option<usize>,
}

/// The `--witness NAME=KEY` arguments, checked.
fn witness_keys(args: &[String]) -> Result<Vec<(String, VerifyingKey)>> {
    args.iter()
        .map(|a| {
            let (name, key) = a
                .split_once('=')
                .with_context(|| format!("--witness {a}: give NAME=KEY"))?;
            let key = hex_n::<32>(key, "a witness key")
                .ok()
                .and_then(|k| VerifyingKey::from_bytes(&k).ok())
                .with_context(|| {
                    format!("--witness {a}: KEY must be an ed25519 public key in 64 hex digits")
                })?;
            Ok((name.to_string(), key))
        })
        .collect()
}

/// The newest checkpoint of `shard` that `quorum` of `witnesses` cosigned:
/// signed by the shard's key, vouched for by enough of them, and one that
/// `head` (the head this audit checked) grew from. Returns its size and
/// the witnesses that vouched.
fn witnessed(
    remote: &Remote,
    shard: u32,
    key: &VerifyingKey,
    head: &SignedTreeHead,
    witnesses: &[(String, VerifyingKey)],
    quorum: usize,
) -> Result<(u64, Vec<String>), String> {
    let path = format!("/v1/shards/{shard}/checkpoint?cosigned={quorum}");
    let text =
        String::from_utf8(remote.get(&path)?).map_err(|_| format!("GET {path}: not UTF-8"))?;
    let (checkpoint, vouched) = ledger::note::check_cosigned(&text, key, witnesses)
        .map_err(|e| format!("GET {path}: {e}"))?;
    if vouched.len() < quorum {
        return Err(format!(
            "{} of the {quorum} witnesses needed vouch for its checkpoint of size {}",
            vouched.len(),
            checkpoint.size
        ));
    }
    if checkpoint.size > head.head.size {
        return Err(format!(
            "witnesses cosigned size {}, above the head the node shows now ({}): the log was rolled back or forked",
            checkpoint.size, head.head.size
        ));
    }
    let at = parse_head(&remote.json(&format!("/v1/shards/{shard}/heads/{}", checkpoint.size))?)?;
    at.verify(key)
        .map_err(|e| format!("the head served for size {}: {e}", checkpoint.size))?;
    if at.head.root != checkpoint.root {
        return Err(format!(
            "the witnessed root at size {} is not the root the node signed there",
            checkpoint.size
        ));
    }
    grew_from(remote, shard, key, &at, head)?;
    Ok((checkpoint.size, vouched))
}

/// What one run leaves for the next.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The operator key trusted, hex.
    operator_key: Option<String>,
    /// Digests of the key sets seen, oldest first: later chains must extend them.
    key_sets: Vec<String>,
    /// Per shard, the newest verified signed head (its canonical bytes, hex).
    heads: BTreeMap<u32, String>,
}

struct Remote {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Remote {
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        self.content(path)?.ok_or_else(|| {
            format!("GET {path}: the node does not show this content to this caller")
        })
    }

    /// `path`'s answer, or `None` when the node refuses the content to this
    /// caller (401 without a token, 403 with one that may not read it).
    fn content(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = request.call().map_err(|e| format!("GET {path}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| format!("GET {path}: reading the answer: {e}"))?;
        if status == 401 || status == 403 {
            return Ok(None);
        }
        if status != 200 {
            return Err(format!(
                "GET {path}: status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok(Some(body))
    }

    fn json(&self, path: &str) -> Result<Value, String> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: not JSON: {e}"))
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name)
        .filter(|f| !f.is_null())
        .ok_or_else(|| format!("the answer has no `{name}`"))
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| format!("`{name}` is not a string"))
}

fn u64_field(v: &Value, name: &str) -> Result<u64, String> {
    field(v, name)?
        .as_u64()
        .ok_or_else(|| format!("`{name}` is not a non-negative integer"))
}

fn hex_n<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} is not {} hex digits", 2 * N))
}

fn digest(s: &str, what: &str) -> Result<Digest, String> {
    hex_n::<32>(s, what).map(Digest)
}

fn digests(v: &Value, name: &str) -> Result<Vec<Digest>, String> {
    field(v, name)?
        .as_array()
        .ok_or_else(|| format!("`{name}` is not a list"))?
        .iter()
        .map(|d| digest(d.as_str().unwrap_or(""), name))
        .collect()
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("{what} is not base64: {e}"))
}

/// A head as served (`HeadJson`), rebuilt into the signed structure.
fn parse_head(v: &Value) -> Result<SignedTreeHead, String> {
    Ok(SignedTreeHead {
        head: TreeHead {
            log_id: digest(str_field(v, "log_id")?, "log_id")?,
            size: u64_field(v, "size")?,
            root: digest(str_field(v, "root")?, "root")?,
            timestamp_ms: field(v, "timestamp_ms")?
                .as_i64()
                .ok_or("`timestamp_ms` is not an integer")?,
        },
        signature: hex_n::<64>(str_field(v, "signature")?, "signature")?,
    })
}

/// Collects failures; a run passes when there are none.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    /// Entries checked from their content, and by their id only.
    entries: u64,
    ids_only: u64,
    proofs: u64,
}

impl Report {
    fn check(&mut self, what: impl std::fmt::Display, r: Result<(), String>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                eprintln!("FAILED: {what}: {e}");
                self.failures.push(format!("{what}: {e}"));
                false
            }
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let remote = Remote {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into(),
        base: args.url.trim_end_matches('/').to_string(),
        token: args.token.clone(),
    };
    let mut state = match &args.state {
        Some(p) if p.exists() => serde_json::from_slice::<State>(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not an audit state file", p.display()))?,
        _ => State::default(),
    };
    let mut report = Report::default();
    let given = witness_keys(&args.witnesses)?;
    if let Some(q) = args
        .quorum
        .filter(|&q| !given.is_empty() && q > given.len())
    {
        anyhow::bail!(
            "--quorum {q} is more than the {} --witness given",
            given.len()
        );
    }

    // 1. The key document, against the pin.
    let pin = match (&args.pin, &state.operator_key) {
        (Some(p), _) | (None, Some(p)) => {
            Some(hex_n::<32>(p, "the pinned operator key").map_err(anyhow::Error::msg)?)
        }
        (None, None) => None,
    };
    let chain = match key_sets(&remote, pin.as_ref(), &state) {
        Ok(c) => c,
        Err(e) => {
            report.check("key document", Err(e));
            return finish(&report, None);
        }
    };
    let newest = chain.last().expect("verified chains are not empty").clone();
    if pin.is_none() {
        println!(
            "trusting operator key {} on first use; pass --pin to check it against one you got another way",
            hex::encode(newest.set.operator_key)
        );
    }
    // The witnesses: those given, else the policy the signed key set names.
    let (witnesses, quorum) = match (&newest.set.witnesses, given.is_empty()) {
        (Some(policy), true) => {
            let quorum = args.quorum.unwrap_or(policy.quorum as usize);
            println!(
                "witnesses from the key set: {} of {}",
                quorum,
                policy
                    .witnesses
                    .iter()
                    .map(|w| format!("{} ({})", w.name, hex::encode(w.public_key)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (policy.keys(), quorum)
        }
        _ => {
            let quorum = args.quorum.unwrap_or(given.len());
            (given, quorum)
        }
    };
    let keys: Vec<VerifyingKey> = newest
        .set
        .shards
        .iter()
        .map(|k| {
            VerifyingKey::from_bytes(&k.public_key).expect("verified key sets hold valid keys")
        })
        .collect();

    // 2. Each shard: its head, consistency with the saved one, entries.
    let mut new_heads = BTreeMap::new();
    for (shard, key) in keys.iter().enumerate() {
        let shard = shard as u32;
        let head = match shard_head(&remote, shard, key) {
            Ok(h) => h,
            Err(e) => {
                report.check(format!("shard {shard} head"), Err(e));
                continue;
            }
        };
        if !witnesses.is_empty() {
            let r = witnessed(&remote, shard, key, &head, &witnesses, quorum);
            if let Ok((size, vouched)) = &r {
                println!(
                    "shard {shard}: the head grew from size {size}, which {} vouched for",
                    vouched.join(", ")
                );
            }
            report.check(
                format!("shard {shard} witnessed by {quorum} of {}", witnesses.len()),
                r.map(|_| ()),
            );
        }
        if let Some(saved) = state.heads.get(&shard) {
            let r = saved_head(saved, key)
                .and_then(|saved| grew_from(&remote, shard, key, &saved, &head).map(|()| saved));
            if let (true, Ok(saved)) = (r.is_ok(), &r) {
                // A proof against the old head: the last entry it covered.
                if saved.head.size > 0 {
                    let r = check_inclusion(&remote, shard, saved.head.size - 1, key, saved, None);
                    report.check(format!("shard {shard} proof against the saved head"), r);
                    report.proofs += 1;
                }
            }
            report.check(
                format!("shard {shard} consistency with the saved head"),
                r.map(|_| ()),
            );
        }
        let mut indices: Vec<u64> = if args.all {
            (0..head.head.size).collect()
        } else {
            let mut all: Vec<u64> = (1..head.head.size.saturating_sub(1)).collect();
            all.shuffle(&mut rand::thread_rng());
            all.truncate(args.sample);
            all.extend([0, head.head.size.saturating_sub(1)]);
            all.retain(|&i| i < head.head.size);
            all
        };
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            match check_entry(&remote, shard, index, &keys, &head) {
                Ok(Checked::Content) => report.entries += 1,
                Ok(Checked::IdOnly) => report.ids_only += 1,
                Err(e) => {
                    report.check(format!("shard {shard} entry {index}"), Err(e));
                }
            }
            report.proofs += 1;
        }
        new_heads.insert(shard, head);
    }

    if report.failures.is_empty() {
        state.operator_key = Some(hex::encode(newest.set.operator_key));
        state.key_sets = chain.iter().map(|s| s.set.digest().to_hex()).collect();
        for (shard, h) in &new_heads {
            state.heads.insert(*shard, hex::encode(h.to_bytes()));
        }
        if let Some(p) = &args.state {
            save_state(p, &state)?;
        }
    }
    finish(&report, Some(new_heads.len()))
}

fn finish(report: &Report, shards: Option<usize>) -> Result<ExitCode> {
    if report.failures.is_empty() {
        println!(
            "audit passed: key document, {} shard heads, {} entries (content -> id -> proof -> head), {} entries by id only (their content not shown to this caller), {} inclusion proofs checked",
            shards.unwrap_or(0),
            report.entries,
            report.ids_only,
            report.proofs
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("audit FAILED: {} problem(s)", report.failures.len());
        Ok(ExitCode::from(1))
    }
}

fn save_state(path: &Path, state: &State) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state)?;
    ledger::durable::replace(path, &bytes, ledger::durable::Mode::Shared)
        .with_context(|| format!("writing {}", path.display()))
}

/// Fetches and checks the key document: each set's bytes against its fields,
/// the chain's signatures and endorsements, the pin, and that it extends the
/// chain seen last time.
fn key_sets(
    remote: &Remote,
    pin: Option<&[u8; 32]>,
    state: &State,
) -> Result<Vec<SignedKeySet>, String> {
    let doc = remote.json(KEYS_PATH)?;
    let sets = field(&doc, "key_sets")?
        .as_array()
        .ok_or("`key_sets` is not a list")?;
    let mut chain = Vec::with_capacity(sets.len());
    for (i, v) in sets.iter().enumerate() {
        let signed = SignedKeySet::from_bytes(&b64(str_field(v, "signed")?, "signed")?)
            .map_err(|e| format!("key set {i}: the signed bytes do not decode: {e}"))?;
        // The fields are for people; they must say what the signed bytes say.
        let s = &signed.set;
        let agrees = u64_field(v, "sequence")? == s.sequence
            && str_field(v, "operator_key")? == hex::encode(s.operator_key)
            && str_field(v, "signature")? == hex::encode(signed.signature)
            && field(v, "shards")?.as_array().is_some_and(|ks| {
                ks.len() == s.shards.len()
                    && ks.iter().zip(&s.shards).all(|(j, k)| {
                        j["shard"].as_u64() == Some(u64::from(k.shard))
                            && j["public_key"].as_str() == Some(&hex::encode(k.public_key))
                            && j["log_id"].as_str() == k.log_id().map(|d| d.to_hex()).as_deref()
                    })
            });
        if !agrees {
            return Err(format!(
                "key set {i}: the fields disagree with the signed bytes"
            ));
        }
        chain.push(signed);
    }
    verify_chain(&chain, pin).map_err(|e| e.to_string())?;
    let newest = chain.last().expect("verified");
    if str_field(&doc, "operator_key")? != hex::encode(newest.set.operator_key) {
        return Err("`operator_key` is not the newest set's operator key".into());
    }
    for (i, saved) in state.key_sets.iter().enumerate() {
        if chain.get(i).map(|s| s.set.digest().to_hex()).as_deref() != Some(saved) {
            return Err(format!(
                "key set {i} is not the one seen last time: the node rewrote its key history"
            ));
        }
    }
    Ok(chain)
}

/// The shard's current head, checked under the key set's key.
fn shard_head(remote: &Remote, shard: u32, key: &VerifyingKey) -> Result<SignedTreeHead, String> {
    let v = remote.json(&format!("/v1/shards/{shard}/head"))?;
    if str_field(&v, "public_key")? != hex::encode(key.as_bytes()) {
        return Err("the head names another key than the key document gives for this shard".into());
    }
    let head = parse_head(&v)?;
    head.verify(key)
        .map_err(|e| format!("the served head: {e}"))?;
    Ok(head)
}

fn saved_head(hex_bytes: &str, key: &VerifyingKey) -> Result<SignedTreeHead, String> {
    let head = hex::decode(hex_bytes)
        .ok()
        .and_then(|b| SignedTreeHead::from_bytes(&b).ok())
        .ok_or("the state file's head does not decode")?;
    head.verify(key)
        .map_err(|e| format!("the saved head no longer verifies under the shard's key: {e}"))?;
    Ok(head)
}

/// The log only grew from `saved` to `head`: a consistency proof between our
/// own copies of both heads, and the node still serves the saved head.
fn grew_from(
    remote: &Remote,
    shard: u32,
    key: &VerifyingKey,
    saved: &SignedTreeHead,
    head: &SignedTreeHead,
) -> Result<(), String> {
    let (old, new) = (saved.head.size, head.head.size);
    if new < old {
        return Err(format!("the log shrank from {old} to {new} entries"));
    }
    let served = parse_head(&remote.json(&format!("/v1/shards/{shard}/heads/{old}"))?)?;
    served
        .verify(key)
        .map_err(|e| format!("the head served for size {old}: {e}"))?;
    if served.head.root != saved.head.root {
        return Err(format!(
            "the head served for size {old} has another root than the saved one: the log was rewritten"
        ));
    }
    if old == new {
        return if head.head.root == saved.head.root {
            Ok(())
        } else {
            Err(format!(
                "two signed heads of size {old} with different roots"
            ))
        };
    }
    if old == 0 {
        return Ok(());
    }
    let v = remote.json(&format!(
        "/v1/shards/{shard}/consistency?first={old}&second={new}"
    ))?;
    let proof = digests(&v, "proof")?;
    saved
        .verify_consistency(head, key, &proof)
        .map_err(|e| format!("consistency {old} -> {new}: {e}"))
}

/// Inclusion of entry `index` under `head` (a head this audit already
/// trusts), by the proof served for that head's size. `id`: the id the
/// content hashes to, when already known.
fn check_inclusion(
    remote: &Remote,
    shard: u32,
    index: u64,
    key: &VerifyingKey,
    head: &SignedTreeHead,
    id: Option<Digest>,
) -> Result<(), String> {
    let v = remote.json(&format!(
        "/v1/shards/{shard}/entries/{index}/proof?size={}",
        head.head.size
    ))?;
    let served_id = digest(str_field(&v, "id")?, "id")?;
    if id.is_some_and(|id| id != served_id) {
        return Err("the proof is for another id than the entry's content hashes to".into());
    }
    let proof = digests(&v, "proof")?;
    head.verify_inclusion(key, index, &id.unwrap_or(served_id), &proof)
        .map_err(|e| format!("inclusion under the head of size {}: {e}", head.head.size))
}

/// How far one entry was checked.
enum Checked {
    /// Content -> id -> proof -> head.
    Content,
    /// Id -> proof -> head: the node does not show this caller the content.
    IdOnly,
}

/// Content -> id -> proof -> head for one entry, and what the entry itself
/// carries: a delivered receipt's proof under its sender's head. Where the
/// content is not shown to this caller, the served id under the head.
fn check_entry(
    remote: &Remote,
    shard: u32,
    index: u64,
    keys: &[VerifyingKey],
    head: &SignedTreeHead,
) -> Result<Checked, String> {
    let key = &keys[shard as usize];
    let path = format!("/v1/shards/{shard}/entries/{index}");
    let Some(body) = remote.content(&path)? else {
        check_inclusion(remote, shard, index, key, head, None)?;
        return Ok(Checked::IdOnly);
    };
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: not JSON: {e}"))?;
    let bytes = b64(str_field(&v, "bytes")?, "bytes")?;
    let id = entry_id(&bytes);
    if str_field(&v, "id")? != id.to_hex() {
        return Err(format!(
            "served id {} but the bytes hash to {id}",
            str_field(&v, "id")?
        ));
    }
    let raw = remote.get(&format!("/v1/shards/{shard}/entries/{index}/raw"))?;
    if raw != bytes {
        return Err("the raw bytes differ from the JSON answer's bytes".into());
    }
    let entry = Entry::from_bytes(&bytes).map_err(|e| format!("the bytes do not decode: {e}"))?;
    if str_field(&v, "kind")? != entry.kind_name() {
        return Err(format!(
            "served as {} but the bytes are a {} entry",
            str_field(&v, "kind")?,
            entry.kind_name()
        ));
    }
    check_inclusion(remote, shard, index, key, head, Some(id))?;
    // The id leads back to the same content.
    let by_id = remote.json(&format!("/v1/entries/{id}"))?;
    if b64(str_field(&by_id, "bytes")?, "bytes")? != bytes {
        return Err(format!("/v1/entries/{id} serves other bytes"));
    }
    if let Entry::ReceiptIn(d) = &entry {
        let from = d.receipt.from_shard;
        let sender = keys.get(from as usize).ok_or_else(|| {
            format!("a receipt from shard {from}, which the key document does not name")
        })?;
        let receipt = Entry::ReceiptOut(d.receipt.clone()).to_bytes();
        d.head
            .verify_inclusion(sender, d.receipt_index, &entry_id(&receipt), &d.proof)
            .map_err(|e| format!("the delivered receipt's proof under shard {from}'s head: {e}"))?;
    }
    Ok(Checked::Content)
}
