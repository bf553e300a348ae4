//! Signed heads as transparency-log checkpoints, in the shape the ecosystem's
//! witnesses and clients speak: C2SP `signed-note`, `tlog-checkpoint` and
//! `tlog-cosignature` (the Ed25519 `cosignature/v1`).
//!
//! A checkpoint's note text is three lines: the log's **origin**
//! (`coldtrail/blake3/<log id hex>`: the tree is this crate's BLAKE3 one, not
//! RFC 6962's SHA-256, and the log id binds the log's key), the tree size in
//! decimal, and the root in standard base64. The log signs the text with its
//! key under the key name equal to the origin (signature type 0x01); a witness
//! adds a timestamped cosignature (type 0x04) over `cosignature/v1`, a `time`
//! line and the same text. Key ids are the first four bytes of
//! `SHA-256(name || "\n" || type || public key)`.
//!
//! This sits beside the binary signed head (`head.rs`), which stays what the
//! node stores and serves: both are signatures by the same log key over
//! different, unambiguous messages (a 32-byte BLAKE3 digest versus UTF-8 text
//! that starts with the origin).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::hash::Digest;
use crate::head::TreeHead;

/// Signature type of a note signature by a log key (plain Ed25519).
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of a timestamped Ed25519 cosignature (`cosignature/v1`).
pub const TYPE_COSIGNATURE: u8 = 0x04;
/// Most signature lines a note may carry (as Go's reference implementation).
pub const MAX_SIGNATURES: usize = 100;
/// Longest note accepted, signatures included.
pub const MAX_NOTE_LEN: usize = 64 * 1024;

const EM_DASH: &str = "\u{2014}";

/// Why a note, checkpoint or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    #[error("no signature by {name} (key id {key_id}) on the note")]
    Unsigned { name: String, key_id: String },
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("the checkpoint names the log {0}, not the one asked about")]
    OtherLog(String),
}

/// A cosigned checkpoint of the log whose key is `log_key`, checked: the
/// note parses, its origin is that log's, the log key signed it; returns
/// the checkpoint and the names of those `witnesses` whose cosignatures are
/// on it and verify (whether they are enough is the caller's policy).
pub fn check_cosigned(
    text: &str,
    log_key: &VerifyingKey,
    witnesses: &[(String, VerifyingKey)],
) -> Result<(Checkpoint, Vec<String>), NoteError> {
    let note = Note::parse(text)?;
    let checkpoint = Checkpoint::parse(&note.text)?;
    let origin = origin(&crate::head::log_id(log_key));
    if checkpoint.origin != origin {
        return Err(NoteError::OtherLog(checkpoint.origin));
    }
    note.verify_signature(&origin, log_key)?;
    let vouched = witnesses
        .iter()
        .filter(|(name, key)| note.verify_cosignature(name, key).is_ok())
        .map(|(name, _)| name.clone())
        .collect();
    Ok((checkpoint, vouched))
}

/// The key id of `name`'s key `public_key` for signatures of type `kind`.
pub fn key_id(name: &str, kind: u8, public_key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(public_key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A log's origin line: its log id in the BLAKE3 tree's namespace.
pub fn origin(log_id: &Digest) -> String {
    format!("coldtrail/blake3/{}", log_id.to_hex())
}

/// The note text of `head`'s checkpoint: origin, size, base64 root.
pub fn checkpoint_text(head: &TreeHead) -> String {
    format!(
        "{}\n{}\n{}\n",
        origin(&head.log_id),
        head.size,
        B64.encode(head.root.0)
    )
}

/// `head`'s checkpoint, signed by its log `key` (whose log id the head
/// names): the note text, a blank line, the log's signature line.
pub fn sign_checkpoint(head: &TreeHead, key: &SigningKey) -> String {
    let text = checkpoint_text(head);
    let name = origin(&head.log_id);
    let line = signature_line(&name, TYPE_ED25519, key, &[], text.as_bytes());
    format!("{text}\n{line}")
}

/// A signature line: `— name base64(key id || prefix || signature)`, the
/// signature over `message`.
fn signature_line(name: &str, kind: u8, key: &SigningKey, prefix: &[u8], message: &[u8]) -> String {
    let mut blob = key_id(name, kind, &key.verifying_key()).to_vec();
    blob.extend_from_slice(prefix);
    blob.extend_from_slice(&key.sign(message).to_bytes());
    format!("{EM_DASH} {name} {}\n", B64.encode(blob))
}

/// What a cosigner signs: `cosignature/v1`, the time, the note text.
fn cosigned_message(text: &str, timestamp_s: u64) -> String {
    format!("cosignature/v1\ntime {timestamp_s}\n{text}")
}

/// A witness's cosignature line for the note text `text` (a checkpoint's),
/// made at `timestamp_s` (POSIX seconds).
pub fn cosign(text: &str, name: &str, key: &SigningKey, timestamp_s: u64) -> String {
    signature_line(
        name,
        TYPE_COSIGNATURE,
        key,
        &timestamp_s.to_be_bytes(),
        cosigned_message(text, timestamp_s).as_bytes(),
    )
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    /// What follows the key id: the signature (with a cosignature's
    /// timestamp in front).
    pub bytes: Vec<u8>,
}

/// A signed note: its text (ending in a newline) and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note as `signed-note` defines it; refuses anything
    /// else (control characters, a missing blank line, a malformed line).
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        use NoteError::Malformed;
        if note.len() > MAX_NOTE_LEN {
            return Err(Malformed("longer than 64 KiB"));
        }
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(Malformed("a control character other than newline"));
        }
        if !note.ends_with('\n') {
            return Err(Malformed("it does not end in a newline"));
        }
        // The text ends at the last blank line: signature lines hold none.
        let split = note
            .rfind("\n\n")
            .ok_or(Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(EM_DASH)
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(Malformed(
                    "a signature line must start with an em dash and a space",
                ))?;
            let (name, b64) = rest.split_once(' ').ok_or(Malformed(
                "a signature line needs a key name and a signature",
            ))?;
            if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
                return Err(Malformed(
                    "a key name must be non-empty, without spaces or plus signs",
                ));
            }
            let blob = B64
                .decode(b64)
                .map_err(|_| Malformed("a signature is not standard base64"))?;
            if blob.len() < 5 || B64.encode(&blob) != b64 {
                return Err(Malformed(
                    "a signature is too short or not canonical base64",
                ));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id: [blob[0], blob[1], blob[2], blob[3]],
                bytes: blob[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(Malformed("more than 100 signatures"));
            }
        }
        if signatures.is_empty() {
            return Err(Malformed("no signature lines"));
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// The signatures by the key `(name, kind, key)`: matching both name
    /// and key id (others are not this key's, and are ignored).
    fn by<'a>(
        &'a self,
        name: &'a str,
        kind: u8,
        key: &VerifyingKey,
    ) -> impl Iterator<Item = &'a NoteSignature> + 'a {
        let id = key_id(name, kind, key);
        self.signatures
            .iter()
            .filter(move |s| s.name == name && s.key_id == id)
    }

    /// Checks the log's signature: `name`'s Ed25519 `key` signed the text.
    pub fn verify_signature(&self, name: &str, key: &VerifyingKey) -> Result<(), NoteError> {
        let mut found = false;
        for s in self.by(name, TYPE_ED25519, key) {
            found = true;
            let sig = <[u8; 64]>::try_from(s.bytes.as_slice())
                .map_err(|_| NoteError::BadSignature(name.to_string()))?;
            key.verify(self.text.as_bytes(), &Signature::from_bytes(&sig))
                .map_err(|_| NoteError::BadSignature(name.to_string()))?;
        }
        found
            .then_some(())
            .ok_or_else(|| unsigned(name, TYPE_ED25519, key))
    }

    /// Checks a witness's cosignature: `name`'s `key` cosigned the text;
    /// returns the time it says it did (POSIX seconds).
    pub fn verify_cosignature(&self, name: &str, key: &VerifyingKey) -> Result<u64, NoteError> {
        let s = self
            .by(name, TYPE_COSIGNATURE, key)
            .next()
            .ok_or_else(|| unsigned(name, TYPE_COSIGNATURE, key))?;
        let bad = || NoteError::BadSignature(name.to_string());
        if s.bytes.len() != 8 + 64 {
            return Err(bad());
        }
        let timestamp = u64::from_be_bytes(s.bytes[..8].try_into().expect("8 bytes"));
        if timestamp > i64::MAX as u64 {
            return Err(bad());
        }
        let sig = Signature::from_bytes(&s.bytes[8..].try_into().expect("64 bytes"));
        key.verify(cosigned_message(&self.text, timestamp).as_bytes(), &sig)
            .map_err(|_| bad())?;
        Ok(timestamp)
    }
}

fn unsigned(name: &str, kind: u8, key: &VerifyingKey) -> NoteError {
    NoteError::Unsigned {
        name: name.to_string(),
        key_id: hex_id(&key_id(name, kind, key)),
    }
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A checkpoint's first three lines (extension lines are kept apart: this
/// node writes none and no statement rests on them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Digest,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Parses a checkpoint's note text as `tlog-checkpoint` defines it.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        use NoteError::Checkpoint as Bad;
        let body = text
            .strip_suffix('\n')
            .ok_or(Bad("the text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(Bad("no origin line"))?;
        let size = lines.next().ok_or(Bad("no tree size line"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(Bad(
                "the tree size must be a decimal number without leading zeroes",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| Bad("the tree size does not fit 64 bits"))?;
        let root = lines.next().ok_or(Bad("no root hash line"))?;
        let root: [u8; 32] = B64
            .decode(root)
            .ok()
            .filter(|r| B64.encode(r) == root)
            .and_then(|r| r.try_into().ok())
            .ok_or(Bad(
                "the root hash must be 32 bytes in canonical standard base64",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(Bad("an extension line is empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root: Digest(root),
            extensions,
        })
    }

    /// Whether this is `head`'s checkpoint (origin, size and root).
    pub fn is_of(&self, head: &TreeHead) -> bool {
        self.origin == origin(&head.log_id) && self.size == head.size && self.root == head.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference example of `golang.org/x/mod/sumdb/note`: its key
    /// (`PRIVATE+KEY+PeterNeumann+c74f20a3+…`), text and signed note.
    #[test]
    fn signatures_match_the_reference_implementation_byte_for_byte() {
        let skey = B64
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        assert_eq!(skey[0], TYPE_ED25519);
        let key = SigningKey::from_bytes(&skey[1..].try_into().unwrap());
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        assert_eq!(
            hex_id(&key_id("PeterNeumann", TYPE_ED25519, &key.verifying_key())),
            "c74f20a3"
        );
        let line = signature_line("PeterNeumann", TYPE_ED25519, &key, &[], text.as_bytes());
        assert_eq!(
            line,
            "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let note = Note::parse(&format!("{text}\n{line}")).unwrap();
        assert_eq!(note.text, text);
        note.verify_signature("PeterNeumann", &key.verifying_key())
            .unwrap();
    }

    fn head() -> (TreeHead, SigningKey) {
        let key = SigningKey::from_bytes(&[2; 32]);
        let head = TreeHead {
            log_id: crate::head::log_id(&key.verifying_key()),
            size: 7,
            root: crate::Domain::Merkle.hash(b"root"),
            timestamp_ms: 1_764_000_000_000,
        };
        (head, key)
    }

    #[test]
    fn a_checkpoint_and_its_cosignature_verify_and_nothing_altered_does() {
        let (head, key) = head();
        let signed = sign_checkpoint(&head, &key);
        let note = Note::parse(&signed).unwrap();
        let name = origin(&head.log_id);
        note.verify_signature(&name, &key.verifying_key()).unwrap();
        let cp = Checkpoint::parse(&note.text).unwrap();
        assert!(cp.is_of(&head));
        assert_eq!(cp.size, 7);

        let witness = SigningKey::from_bytes(&[9; 32]);
        let cosigned = format!(
            "{signed}{}",
            cosign(&note.text, "witness.example/w1", &witness, 1_764_000_000)
        );
        let note = Note::parse(&cosigned).unwrap();
        assert_eq!(
            note.verify_cosignature("witness.example/w1", &witness.verifying_key()),
            Ok(1_764_000_000)
        );
        note.verify_signature(&name, &key.verifying_key()).unwrap();
        // A cosignature is not a log signature, nor another witness's.
        assert!(note
            .verify_signature("witness.example/w1", &witness.verifying_key())
            .is_err());
        assert!(note
            .verify_cosignature("witness.example/w2", &witness.verifying_key())
            .is_err());
        // Any changed byte of the text fails the signature or the parse.
        for i in 0..note.text.len() {
            let mut bytes = cosigned.clone().into_bytes();
            bytes[i] ^= 1;
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            if let Ok(n) = Note::parse(&s) {
                assert!(
                    n.verify_signature(&name, &key.verifying_key()).is_err()
                        || n.verify_cosignature("witness.example/w1", &witness.verifying_key())
                            .is_err()
                        || Checkpoint::parse(&n.text).map(|c| c.is_of(&head)) != Ok(true),
                    "flip at {i} accepted"
                );
            }
        }
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        let (head, key) = head();
        let signed = sign_checkpoint(&head, &key);
        for bad in [
            signed.trim_end().to_string(),
            signed.replace("\n\n", "\n"),
            signed.replace('\u{2014}', "-"),
            format!("{signed}\u{7}"),
            signed.replace("\n\u{2014} ", "\n\u{2014}  "),
        ] {
            assert!(Note::parse(&bad).is_err(), "{bad:?}");
        }
        for bad in [
            "a\n07\nAAAA\n",
            "a\n7\n",
            "\n7\nAAAA\n",
            "a\n7\nAAAA",
            "a\n-1\nAAAA\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        let root = B64.encode([0u8; 32]);
        assert!(
            Checkpoint::parse(&format!("a\n7\n{root}\n\n")).is_err(),
            "empty extension line"
        );
        assert_eq!(
            Checkpoint::parse(&format!("a\n0\n{root}\next\n"))
                .unwrap()
                .extensions,
            ["ext"]
        );
    }
}
