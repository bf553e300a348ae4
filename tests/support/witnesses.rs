//! Witness processes for tests: `coldtrail witness` on a free loopback
//! port, and `serve` configs that name them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine;

use super::try_post;

/// A running witness: its process, name, base URL and public key.
pub struct Witness {
    child: Child,
    pub name: String,
    pub base: String,
    pub key: ed25519_dalek::VerifyingKey,
}

impl Witness {
    pub fn named(dir: &std::path::Path, logs: &[String], name: &str) -> Witness {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coldtrail"));
        cmd.args(["witness", "--data-dir", dir.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--name", name]);
        for l in logs {
            cmd.args(["--log", l]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut base, mut key) = (None, None);
        while base.is_none() {
            let line = lines
                .next()
                .expect("the witness prints where it listens")
                .unwrap();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["public", "key", k] => key = Some(k.to_string()),
                ["listening", url] => {
                    base = Some(url.trim_end_matches("/add-checkpoint").to_string())
                }
                _ => {}
            }
        }
        let key: [u8; 32] = hex::decode(key.unwrap()).unwrap().try_into().unwrap();
        Witness {
            child,
            name: name.to_string(),
            base: base.unwrap(),
            key: ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap(),
        }
    }

    /// `POST /add-checkpoint` from `old` with `proof` (hex hashes).
    pub fn add(&self, old: u64, proof: &[String], checkpoint: &str) -> super::Reply {
        self.try_add(old, proof, checkpoint)
            .expect("the witness answers")
    }

    /// As `add`, `None` when the request does not complete (the witness
    /// was killed under it).
    pub fn try_add(&self, old: u64, proof: &[String], checkpoint: &str) -> Option<super::Reply> {
        let lines: String = proof
            .iter()
            .map(|h| {
                format!(
                    "{}\n",
                    base64::engine::general_purpose::STANDARD.encode(hex::decode(h).unwrap())
                )
            })
            .collect();
        let body = format!("old {old}\n{lines}\n{checkpoint}");
        try_post(
            &self.base,
            "/add-checkpoint",
            None,
            "text/plain",
            body.as_bytes(),
            None,
        )
    }

    /// Its process id (to kill it while it is borrowed).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `serve` config file in `dir` that names this witness, asked every
    /// 50 ms.
    pub fn config(&self, dir: &std::path::Path) -> std::path::PathBuf {
        config(dir, &[self], None)
    }

    /// `NAME=KEY`, as a client that trusts it is told.
    pub fn trusted(&self) -> String {
        format!("{}={}", self.name, hex::encode(self.key.as_bytes()))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `serve` config file in `dir` naming `witnesses`, asked every 50 ms,
/// with `quorum` (the default when `None`).
pub fn config(
    dir: &std::path::Path,
    witnesses: &[&Witness],
    quorum: Option<u32>,
) -> std::path::PathBuf {
    use std::fmt::Write;
    let path = dir.join("witnessed.toml");
    let mut text = String::from("[witnesses]\ninterval_ms = 50\n");
    if let Some(q) = quorum {
        writeln!(text, "quorum = {q}").unwrap();
    }
    for w in witnesses {
        write!(
            text,
            "[[witnesses.peers]]\nurl = \"{}\"\nname = \"{}\"\nkey = \"{}\"\n",
            w.base,
            w.name,
            hex::encode(w.key.as_bytes())
        )
        .unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The node's shard keys from its key document, hex (the newest key set's,
/// as a witness operator would copy them).
pub fn shard_keys(base: &str) -> Vec<String> {
    let doc = super::get(base, "/.well-known/coldtrail/keys").json();
    let newest = doc["key_sets"].as_array().unwrap().last().unwrap().clone();
    newest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["public_key"].as_str().unwrap().to_string())
        .collect()
}
