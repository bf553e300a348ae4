//! `coldtrail network init|propose|sign|show`: a network's membership
//! (`ledger::network`) kept as a file each member holds, its versions from
//! the first. A version is made unsigned (`init`, `propose`), collects its
//! members' signatures (`sign`, each member with its operator key), and is
//! adopted once it has them all (version 1) or a majority of the previous
//! version's members (later versions); `show` verifies the chain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ledger::network::{Member, NetworkDoc, NetworkError, SignedNetworkDoc, Vote};
use ledger::Digest;
use serde::{Deserialize, Serialize};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Starts a network: version 1, listing its founding members. Each of
    /// them signs it (`sign`) before it is adopted.
    Init {
        /// The network file to create (never overwritten).
        #[arg(long)]
        file: PathBuf,
        /// The network's name (lower-case letters, digits, '-').
        #[arg(long)]
        network: String,
        /// A member: NAME,KEY,URL,PREFIX[+PREFIX…],SHARDS (KEY: the operator's
        /// public key, 64 hex digits or a did:key). Repeat for each.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Proposes the next version: members joining (--add), leaving
    /// (--remove) or changing key, URL, prefixes or shards (--replace).
    Propose {
        #[arg(long)]
        file: PathBuf,
        /// A member joining: NAME,KEY,URL,PREFIX[+PREFIX…],SHARDS.
        #[arg(long = "add")]
        add: Vec<String>,
        /// A member leaving, by name.
        #[arg(long = "remove")]
        remove: Vec<String>,
        /// A member's new entry, replacing the one of that name.
        #[arg(long = "replace")]
        replace: Vec<String>,
    },
    /// Signs the newest version as a member, with its operator key.
    Sign {
        #[arg(long)]
        file: PathBuf,
        /// The member signing.
        #[arg(long)]
        member: String,
        /// The member's operator key file (`coldtrail keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Verifies the chain of versions and prints the adopted membership.
    Show {
        #[arg(long)]
        file: PathBuf,
    },
}

/// The file: every version, oldest first.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    versions: Vec<Version>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Version {
    network: String,
    version: u64,
    previous: Option<String>,
    issued_at_ms: i64,
    members: Vec<MemberJson>,
    votes: Vec<VoteJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberJson {
    name: String,
    operator_key: String,
    url: String,
    prefixes: Vec<String>,
    shards: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteJson {
    member: String,
    signature: String,
}

fn hex32(what: &str, s: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{what}: {s:?} is not 64 hex digits"))
}

impl Version {
    fn of(s: &SignedNetworkDoc) -> Version {
        Version {
            network: s.doc.network.clone(),
            version: s.doc.version,
            previous: s.doc.previous.map(|d| d.to_hex()),
            issued_at_ms: s.doc.issued_at_ms,
            members: s
                .doc
                .members
                .iter()
                .map(|m| MemberJson {
                    name: m.name.clone(),
                    operator_key: hex::encode(m.operator_key),
                    url: m.url.clone(),
                    prefixes: m.prefixes.clone(),
                    shards: m.shards,
                })
                .collect(),
            votes: s
                .votes
                .iter()
                .map(|v| VoteJson {
                    member: v.member.clone(),
                    signature: hex::encode(v.signature),
                })
                .collect(),
        }
    }

    fn signed(&self) -> Result<SignedNetworkDoc> {
        let v = self.version;
        Ok(SignedNetworkDoc {
            doc: NetworkDoc {
                network: self.network.clone(),
                version: v,
                previous: self
                    .previous
                    .as_deref()
                    .map(|p| {
                        Digest::from_hex(p)
                            .with_context(|| format!("version {v}: previous {p:?} is not a digest"))
                    })
                    .transpose()?,
                issued_at_ms: self.issued_at_ms,
                members: self
                    .members
                    .iter()
                    .map(|m| {
                        Ok(Member {
                            name: m.name.clone(),
                            operator_key: hex32(
                                &format!("version {v}: {}'s operator key", m.name),
                                &m.operator_key,
                            )?,
                            url: m.url.clone(),
                            prefixes: m.prefixes.clone(),
                            shards: m.shards,
                        })
                    })
                    .collect::<Result<_>>()?,
            },
            votes: self
                .votes
                .iter()
                .map(|vote| {
                    let sig: [u8; 64] = hex::decode(&vote.signature)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .with_context(|| {
                            format!(
                                "version {v}: {}'s signature is not 128 hex digits",
                                vote.member
                            )
                        })?;
                    Ok(Vote {
                        member: vote.member.clone(),
                        signature: sig,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

fn read(path: &Path) -> Result<Vec<SignedNetworkDoc>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file: File = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a network file", path.display()))?;
    file.versions.iter().map(Version::signed).collect()
}

fn write(path: &Path, chain: &[SignedNetworkDoc]) -> Result<()> {
    let file = File {
        versions: chain.iter().map(Version::of).collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("a network file serialises");
    bytes.push(b'\n');
    ledger::durable::replace(path, &bytes, ledger::durable::Mode::Shared)
        .with_context(|| format!("writing {}", path.display()))
}

/// A member as `--member`/`--add`/`--replace` write one.
fn member(spec: &str) -> Result<Member> {
    let parts: Vec<&str> = spec.split(',').collect();
    let [name, key, url, prefixes, shards] = parts[..] else {
        bail!("{spec:?}: give NAME,KEY,URL,PREFIX[+PREFIX…],SHARDS");
    };
    Ok(Member {
        name: name.to_string(),
        operator_key: super::public_key(&format!("member {name}'s key"), key)?.to_bytes(),
        url: url.to_string(),
        prefixes: prefixes.split('+').map(str::to_string).collect(),
        shards: shards
            .parse()
            .with_context(|| format!("{spec:?}: SHARDS {shards:?} is not a number"))?,
    })
}

/// Whether the chain's versions all verify (`Ok(true)`), or all but the
/// newest, which still collects signatures (`Ok(false)`).
fn adopted(chain: &[SignedNetworkDoc]) -> Result<bool, NetworkError> {
    match ledger::network::verify_chain(chain) {
        Ok(_) => Ok(true),
        Err(NetworkError::NoMajority { version, .. })
            if version == chain.last().map_or(0, |s| s.doc.version) =>
        {
            // Pending: everything before it verifies, and it is valid.
            if chain.len() > 1 {
                ledger::network::verify_chain(&chain[..chain.len() - 1])?;
            }
            chain.last().expect("not empty").doc.check()?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The membership in force: the newest adopted version of the network
/// file with its votes, its whole chain verified (a version still
/// collecting signatures is not yet in force).
pub fn membership(path: &Path) -> Result<SignedNetworkDoc> {
    let chain = read(path)?;
    if chain.is_empty() {
        bail!("{} has no versions", path.display());
    }
    let adopted_len = if adopted(&chain)? {
        chain.len()
    } else {
        chain.len() - 1
    };
    if adopted_len == 0 {
        bail!(
            "{}: version 1 is not adopted yet: each founding member signs it first (`coldtrail network sign`)",
            path.display()
        );
    }
    ledger::network::verify_chain(&chain[..adopted_len])?;
    Ok(chain[adopted_len - 1].clone())
}

fn now_ms() -> i64 {
    ledger::clock::system().now_ms()
}

pub fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Init {
            file,
            network,
            members,
        } => {
            if file.exists() {
                bail!("{} exists; a network starts once", file.display());
            }
            let mut doc = NetworkDoc {
                network,
                version: 1,
                previous: None,
                issued_at_ms: now_ms(),
                members: members.iter().map(|m| member(m)).collect::<Result<_>>()?,
            };
            doc.canonicalise();
            doc.check()?;
            let names: Vec<String> = doc.members.iter().map(|m| m.name.clone()).collect();
            write(
                &file,
                &[SignedNetworkDoc {
                    doc,
                    votes: Vec::new(),
                }],
            )?;
            println!(
                "wrote {}: version 1, to be signed by each of {}",
                file.display(),
                names.join(", ")
            );
        }
        Cmd::Propose {
            file,
            add,
            remove,
            replace,
        } => {
            let mut chain = read(&file)?;
            if !adopted(&chain)? {
                bail!(
                    "version {} still collects signatures; sign it (or discard it) before proposing another",
                    chain.last().expect("not empty").doc.version
                );
            }
            let prev = &chain.last().expect("not empty").doc;
            let mut doc = prev.clone();
            doc.version += 1;
            doc.previous = Some(prev.digest());
            doc.issued_at_ms = now_ms().max(prev.issued_at_ms);
            for name in &remove {
                if doc.member(name).is_none() {
                    bail!("--remove {name}: no such member");
                }
                doc.members.retain(|m| &m.name != name);
            }
            for spec in &replace {
                let m = member(spec)?;
                let Some(slot) = doc.members.iter_mut().find(|o| o.name == m.name) else {
                    bail!("--replace {}: no such member; --add it", m.name);
                };
                *slot = m;
            }
            for spec in &add {
                let m = member(spec)?;
                if doc.member(&m.name).is_some() {
                    bail!("--add {}: already a member; --replace it", m.name);
                }
                doc.members.push(m);
            }
            doc.canonicalise();
            doc.check()?;
            let members = prev.members.len();
            let version = doc.version;
            chain.push(SignedNetworkDoc {
                doc,
                votes: Vec::new(),
            });
            write(&file, &chain)?;
            println!(
                "proposed version {version}: {} of the {members} members of version {} must sign it",
                members / 2 + 1,
                version - 1
            );
        }
        Cmd::Sign { file, member, key } => {
            let mut chain = read(&file)?;
            let key = ledger::keys::read_key_file(&key)?;
            let n = chain.len();
            let newest = &chain[n - 1].doc;
            // Version 1's founders sign it; later versions, the members
            // of the version before.
            let voters = if n == 1 { newest } else { &chain[n - 2].doc };
            let Some(m) = voters.member(&member) else {
                bail!(
                    "{member} is not a member of version {}, whose members sign version {}",
                    voters.version,
                    newest.version
                );
            };
            if m.operator_key != key.verifying_key().to_bytes() {
                bail!(
                    "that key is not {member}'s operator key in version {}",
                    voters.version
                );
            }
            let vote = newest.vote(&member, &key);
            let version = newest.version;
            chain[n - 1].add_vote(vote);
            write(&file, &chain)?;
            let state = if adopted(&chain)? {
                "adopted"
            } else {
                "pending"
            };
            println!("{member} signed version {version}: {state}");
        }
        Cmd::Show { file } => {
            let chain = read(&file)?;
            let adopted = adopted(&chain)?;
            let newest = chain.last().context("the file has no versions")?;
            if !adopted && chain.len() == 1 {
                println!(
                    "network {}: version 1 pending ({} of {} founders signed)",
                    newest.doc.network,
                    newest.votes.len(),
                    newest.doc.members.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let current = if adopted {
                newest
            } else {
                &chain[chain.len() - 2]
            };
            println!(
                "network {}: version {} adopted",
                current.doc.network, current.doc.version
            );
            for m in &current.doc.members {
                println!(
                    "member {} {} prefixes {} shards {} key {}",
                    m.name,
                    m.url,
                    m.prefixes.join("+"),
                    m.shards,
                    hex::encode(m.operator_key)
                );
            }
            if !adopted {
                println!(
                    "version {} pending ({} signed; {} of {} needed)",
                    newest.doc.version,
                    newest.votes.len(),
                    current.doc.members.len() / 2 + 1,
                    current.doc.members.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
