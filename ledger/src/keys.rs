//! ed25519 keys: key files, and the W3C `did:key` form of a public key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};

/// First line of a coldtrail secret key file; the hex seed follows.
const KEY_FILE_TAG: &str = "coldtrail-ed25519-secret-key-v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a coldtrail key file (expected `{KEY_FILE_TAG}` and 64 hex digits)")]
    Format { path: String },
    #[error("{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("could not get randomness from the operating system: {0}")]
    Random(String),
}

/// A new key from the operating system's randomness.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to a new file readable by its owner only (mode 0600).
/// Refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    writeln!(f, "{KEY_FILE_TAG}\n{hex}")
        .and_then(|_| f.sync_all())
        .map_err(io)
}

/// Reads a key file written by [`write_key_file`]; refuses one others can read.
pub fn read_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: p.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: p, mode });
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: p.clone(),
        source,
    })?;
    let mut lines = text.lines();
    let (Some(KEY_FILE_TAG), Some(hex), None) = (lines.next(), lines.next(), lines.next()) else {
        return Err(KeyError::Format { path: p });
    };
    let seed = crate::hash::Digest::from_hex(hex.trim()).ok_or(KeyError::Format { path: p })?;
    Ok(SigningKey::from_bytes(&seed.0))
}

/// The `did:key` of an ed25519 public key: multicodec `0xed 0x01`, then the
/// key, in base58btc with the `z` multibase prefix.
pub fn did_key(key: &VerifyingKey) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&[0xed, 0x01]);
    bytes.extend_from_slice(key.as_bytes());
    format!("did:key:z{}", bs58::encode(bytes).into_string())
}

/// Parses a `did:key` back to an ed25519 public key.
pub fn parse_did_key(did: &str) -> Option<VerifyingKey> {
    let b58 = did.strip_prefix("did:key:z")?;
    let bytes = bs58::decode(b58).into_vec().ok()?;
    let key: [u8; 32] = bytes.strip_prefix(&[0xed, 0x01])?.try_into().ok()?;
    VerifyingKey::from_bytes(&key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_matches_a_published_example() {
        // A did:key document published with its base58 public key.
        let raw = bs58::decode("8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K")
            .into_vec()
            .unwrap();
        let key = VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
        let did = "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th";
        assert_eq!(did_key(&key), did);
        assert_eq!(parse_did_key(did), Some(key));
        assert_eq!(parse_did_key("did:key:zQ3s"), None);
        assert_eq!(parse_did_key("did:web:example.com"), None);
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate().unwrap();
        write_key_file(&path, &key).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_key_file(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(write_key_file(&path, &key).is_err(), "never overwrites");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyError::Permissions { .. })
        ));
    }
}
