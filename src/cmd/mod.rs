//! One module per subcommand (or family of them); `main.rs` parses the
//! command line and calls into these. Each runs its job through the
//! libraries (a node through `shards`, writes through `ingest`, reads
//! through `analytics` and the read edges) and prints for people and
//! scripts on stdout, logs on stderr.

pub mod analytics;
pub mod audit_remote;
pub mod demo;
pub mod loadgen;
pub mod mqtt_bridge;
pub mod network;
pub mod push;
pub mod recall;
pub mod serve;
pub mod store;
pub mod trace;
pub mod verify;
pub mod witness;

/// A public key as people write one: 64 hex digits or a `did:key`; `what`
/// names the flag in the refusal.
pub(crate) fn public_key(what: &str, s: &str) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    use anyhow::Context;
    if let Some(k) = ledger::keys::parse_did_key(s) {
        return Ok(k);
    }
    let bytes: [u8; 32] = hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{what} {s}: give a public key as 64 hex digits or a did:key"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .with_context(|| format!("{what} {s}: not an ed25519 public key"))
}
