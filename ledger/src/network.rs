//! The network document: which member nodes make up a network of
//! organisations, each member's operator key, URL, the GS1 Company Prefixes
//! it owns and how many shards it runs (issue 35's membership).
//!
//! Versions form a chain. Version 1 is signed by every founding member; each
//! later version names the digest of the one before it and is signed by a
//! majority of that previous version's members, by the keys that version
//! lists: a join, a leave, a key rotation or a new prefix needs most of the
//! members that were there. A node trusts a member's key only as the last
//! version of a chain it verified from version 1 ([`verify_chain`]).
//!
//! The bytes signed are the canonical encoding ([`crate::codec`]) of the
//! version, hashed in its own domain ([`Domain::Network`]): members sorted by
//! name, each list sorted, so one membership has one encoding.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{Digest, Domain};

/// The encoding version of a network document this build writes and reads.
pub const NETWORK_VERSION: u8 = 1;

/// One member node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// 1 to 64 lower-case letters, digits and '-'.
    pub name: String,
    /// The member's operator key: it signs the member's key sets and its
    /// votes on the network document.
    pub operator_key: [u8; 32],
    /// Where the member's node answers (`http` or `https`).
    pub url: String,
    /// The GS1 Company Prefixes the member's organisation owns (4 to 12
    /// digits): identifiers under them are homed on its node.
    pub prefixes: Vec<String>,
    /// How many shards the member's node runs.
    pub shards: u32,
}

/// One version of the network document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDoc {
    /// The network's name, the same in every version.
    pub network: String,
    /// 1, 2, …
    pub version: u64,
    /// The digest of the version before (none for version 1).
    pub previous: Option<Digest>,
    pub issued_at_ms: i64,
    /// Sorted by name.
    pub members: Vec<Member>,
}

/// A member's signature of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub member: String,
    pub signature: [u8; 64],
}

/// A version with the signatures it has collected (sorted by member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNetworkDoc {
    pub doc: NetworkDoc,
    pub votes: Vec<Vote>,
}

/// Why a version, or a chain of them, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("network document version {version}: {what}")]
    Invalid { version: u64, what: String },
    #[error("network document version {version}: the signature of {member} does not verify")]
    BadSignature { version: u64, member: String },
    #[error(
        "network document version {version} is signed by {member}, who is not a member of {of}"
    )]
    NotAMember {
        version: u64,
        member: String,
        of: String,
    },
    #[error(
        "network document version {version} has {got} of the {needed} signatures it needs ({why})"
    )]
    NoMajority {
        version: u64,
        got: usize,
        needed: usize,
        why: &'static str,
    },
    #[error("network document version {version} does not follow version {previous}: {what}")]
    BrokenChain {
        version: u64,
        previous: u64,
        what: String,
    },
    #[error("no network document versions")]
    Empty,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl NetworkDoc {
    pub fn encode(&self, w: &mut Writer) {
        w.u8(NETWORK_VERSION);
        w.str(&self.network);
        w.varint(self.version);
        w.option(self.previous.as_ref(), |w, d| w.digest(d));
        w.svarint(self.issued_at_ms);
        w.seq(&self.members, |w, m| {
            w.str(&m.name);
            w.fixed(&m.operator_key);
            w.str(&m.url);
            w.seq(&m.prefixes, |w, p| w.str(p));
            w.varint(u64::from(m.shards));
        });
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<NetworkDoc, DecodeError> {
        let version = r.u8("network document version")?;
        if version != NETWORK_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: NETWORK_VERSION,
            });
        }
        Ok(NetworkDoc {
            network: r.string("network name")?,
            version: r.varint("network version")?,
            previous: r.option("network previous", |r| r.digest("network previous"))?,
            issued_at_ms: r.svarint("network time")?,
            // A name, a key, a URL, a prefix count and a shard count.
            members: r.seq("members", 36, |r| {
                Ok(Member {
                    name: r.string("member name")?,
                    operator_key: r.fixed("member operator key")?,
                    url: r.string("member url")?,
                    prefixes: r.seq("member prefixes", 1, |r| r.string("prefix"))?,
                    shards: r.varint_as("member shards")?,
                })
            })?,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes exactly one version (canonical bytes only).
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkDoc, DecodeError> {
        let mut r = Reader::new(bytes);
        let d = NetworkDoc::decode(&mut r)?;
        r.finish()?;
        Ok(d)
    }

    /// What members sign, and the next version's `previous`.
    pub fn digest(&self) -> Digest {
        Domain::Network.hash(&self.to_bytes())
    }

    /// Puts the lists in their one order (members by name, each member's
    /// prefixes sorted and without repeats).
    pub fn canonicalise(&mut self) {
        self.members.sort_by(|a, b| a.name.cmp(&b.name));
        for m in &mut self.members {
            m.prefixes.sort();
            m.prefixes.dedup();
        }
    }

    /// Checks the version on its own: at least one member, each named once
    /// with a valid key of its own, an http(s) URL, at least one shard, and
    /// prefixes of 4 to 12 digits of which no member's starts another's
    /// (an identifier has one home).
    pub fn check(&self) -> Result<(), NetworkError> {
        let invalid = |what: String| NetworkError::Invalid {
            version: self.version,
            what,
        };
        if !valid_name(&self.network) {
            return Err(invalid(format!(
                "network name {:?}: give 1 to 64 lower-case letters, digits or '-'",
                self.network
            )));
        }
        if self.version == 0 || (self.version == 1) != self.previous.is_none() {
            return Err(invalid(
                "versions count from 1, and every version but the first names the one before"
                    .into(),
            ));
        }
        if self.members.is_empty() {
            return Err(invalid("a network has at least one member".into()));
        }
        let mut owned: Vec<(&str, &str)> = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if !valid_name(&m.name) {
                return Err(invalid(format!(
                    "member name {:?}: give 1 to 64 lower-case letters, digits or '-'",
                    m.name
                )));
            }
            if i > 0 && self.members[i - 1].name >= m.name {
                return Err(invalid(format!(
                    "members are listed once each, by name: {} comes after {}",
                    m.name,
                    self.members[i - 1].name
                )));
            }
            if VerifyingKey::from_bytes(&m.operator_key).is_err() {
                return Err(invalid(format!(
                    "{}: the operator key is not an ed25519 key",
                    m.name
                )));
            }
            if let Some(other) = self.members[..i]
                .iter()
                .find(|o| o.operator_key == m.operator_key)
            {
                return Err(invalid(format!(
                    "{} and {} have the same operator key",
                    other.name, m.name
                )));
            }
            if !(m.url.starts_with("https://") || m.url.starts_with("http://")) {
                return Err(invalid(format!(
                    "{}: the URL {:?} is not http(s)",
                    m.name, m.url
                )));
            }
            if m.shards == 0 {
                return Err(invalid(format!(
                    "{}: a node runs at least one shard",
                    m.name
                )));
            }
            if m.prefixes.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(format!(
                    "{}: prefixes are listed once each, sorted",
                    m.name
                )));
            }
            for p in &m.prefixes {
                if !(4..=12).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(format!(
                        "{}: {p:?} is not a GS1 Company Prefix (4 to 12 digits)",
                        m.name
                    )));
                }
                if let Some((q, owner)) = owned
                    .iter()
                    .find(|(q, _)| q.starts_with(p.as_str()) || p.starts_with(q))
                {
                    return Err(invalid(format!(
                        "{p} ({}) overlaps {q} ({owner}): an identifier would have two homes",
                        m.name
                    )));
                }
            }
            owned.extend(m.prefixes.iter().map(|p| (p.as_str(), m.name.as_str())));
        }
        Ok(())
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The member whose prefixes hold `digits` (a GS1 key's digits, its
    /// company prefix first), if any.
    pub fn home_of(&self, digits: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.prefixes.iter().any(|p| digits.starts_with(p.as_str())))
    }

    /// Member `member`'s signature of this version, with its key.
    pub fn vote(&self, member: &str, key: &SigningKey) -> Vote {
        Vote {
            member: member.to_string(),
            signature: key.sign(&self.digest().0).to_bytes(),
        }
    }
}

impl SignedNetworkDoc {
    /// The signed version's encoding: the version's bytes (length-prefixed),
    /// then the votes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&self.doc.to_bytes());
        w.seq(&self.votes, |w, v| {
            w.str(&v.member);
            w.fixed(&v.signature);
        });
        w.into_bytes()
    }

    /// Decodes exactly one signed version (canonical bytes only).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedNetworkDoc, DecodeError> {
        let mut r = Reader::new(bytes);
        let doc = NetworkDoc::from_bytes(r.bytes("network document")?)?;
        let votes = r.seq("votes", 66, |r| {
            Ok(Vote {
                member: r.string("voter")?,
                signature: r.fixed("vote")?,
            })
        })?;
        r.finish()?;
        Ok(SignedNetworkDoc { doc, votes })
    }

    /// Adds (or replaces) `vote`, keeping the votes sorted by member.
    pub fn add_vote(&mut self, vote: Vote) {
        self.votes.retain(|v| v.member != vote.member);
        let at = self.votes.partition_point(|v| v.member < vote.member);
        self.votes.insert(at, vote);
    }

    /// Checks the votes against `voters` (the members whose signatures
    /// count): each voter signs once, every signature verifies, and
    /// `needed` of them sign.
    fn check_votes(
        &self,
        voters: &NetworkDoc,
        needed: usize,
        why: &'static str,
    ) -> Result<(), NetworkError> {
        let version = self.doc.version;
        let digest = self.doc.digest();
        if self.votes.windows(2).any(|w| w[0].member >= w[1].member) {
            return Err(NetworkError::Invalid {
                version,
                what: "votes are listed once each, by member".into(),
            });
        }
        for v in &self.votes {
            let Some(m) = voters.member(&v.member) else {
                return Err(NetworkError::NotAMember {
                    version,
                    member: v.member.clone(),
                    of: format!("version {}", voters.version),
                });
            };
            let ok = VerifyingKey::from_bytes(&m.operator_key).is_ok_and(|k| {
                k.verify(&digest.0, &Signature::from_bytes(&v.signature))
                    .is_ok()
            });
            if !ok {
                return Err(NetworkError::BadSignature {
                    version,
                    member: v.member.clone(),
                });
            }
        }
        if self.votes.len() < needed {
            return Err(NetworkError::NoMajority {
                version,
                got: self.votes.len(),
                needed,
                why,
            });
        }
        Ok(())
    }

    /// Checks version 1: valid, and signed by every founding member.
    pub fn verify_first(&self) -> Result<(), NetworkError> {
        self.doc.check()?;
        if self.doc.version != 1 {
            return Err(NetworkError::Invalid {
                version: self.doc.version,
                what: "a chain starts at version 1".into(),
            });
        }
        self.check_votes(
            &self.doc,
            self.doc.members.len(),
            "every founding member signs version 1",
        )
    }

    /// Checks that this version follows `prev`: valid, the next number, the
    /// same network, naming `prev`'s digest, signed by a majority of
    /// `prev`'s members.
    pub fn verify_follows(&self, prev: &NetworkDoc) -> Result<(), NetworkError> {
        self.doc.check()?;
        let broken = |what: String| NetworkError::BrokenChain {
            version: self.doc.version,
            previous: prev.version,
            what,
        };
        if self.doc.version != prev.version + 1 {
            return Err(broken("versions follow one another by one".into()));
        }
        if self.doc.network != prev.network {
            return Err(broken(format!(
                "it names network {:?}, not {:?}",
                self.doc.network, prev.network
            )));
        }
        if self.doc.previous != Some(prev.digest()) {
            return Err(broken(
                "it does not name the previous version's digest".into(),
            ));
        }
        if self.doc.issued_at_ms < prev.issued_at_ms {
            return Err(broken("it was issued before the version it follows".into()));
        }
        self.check_votes(
            prev,
            prev.members.len() / 2 + 1,
            "a majority of the previous version's members signs each later version",
        )
    }
}

/// Verifies a chain from version 1 and returns its newest version: the one
/// membership a node trusts.
pub fn verify_chain(chain: &[SignedNetworkDoc]) -> Result<&NetworkDoc, NetworkError> {
    let first = chain.first().ok_or(NetworkError::Empty)?;
    first.verify_first()?;
    for w in chain.windows(2) {
        w[1].verify_follows(&w[0].doc)?;
    }
    Ok(&chain.last().expect("not empty").doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn member(name: &str, seed: u8, prefix: &str) -> Member {
        Member {
            name: name.into(),
            operator_key: key(seed).verifying_key().to_bytes(),
            url: format!("http://127.0.0.1:80{seed:02}"),
            prefixes: vec![prefix.into()],
            shards: 4,
        }
    }

    fn founded() -> SignedNetworkDoc {
        let doc = NetworkDoc {
            network: "coldchain".into(),
            version: 1,
            previous: None,
            issued_at_ms: 1_000,
            members: vec![
                member("alpha", 1, "0614141"),
                member("bravo", 2, "0614142"),
                member("charlie", 3, "4012345"),
            ],
        };
        let mut s = SignedNetworkDoc {
            votes: Vec::new(),
            doc: doc.clone(),
        };
        for (name, seed) in [("alpha", 1), ("bravo", 2), ("charlie", 3)] {
            s.add_vote(doc.vote(name, &key(seed)));
        }
        s
    }

    fn next(prev: &NetworkDoc, change: impl FnOnce(&mut NetworkDoc)) -> NetworkDoc {
        let mut d = prev.clone();
        d.version += 1;
        d.previous = Some(prev.digest());
        d.issued_at_ms += 1;
        change(&mut d);
        d.canonicalise();
        d
    }

    fn signed(doc: NetworkDoc, voters: &[(&str, u8)]) -> SignedNetworkDoc {
        let mut s = SignedNetworkDoc {
            doc: doc.clone(),
            votes: Vec::new(),
        };
        for (name, seed) in voters {
            s.add_vote(doc.vote(name, &key(*seed)));
        }
        s
    }

    #[test]
    fn a_chain_needs_every_founder_then_a_majority_of_the_members_before() {
        let v1 = founded();
        assert_eq!(
            verify_chain(std::slice::from_ref(&v1))
                .unwrap()
                .members
                .len(),
            3
        );
        // delta joins: two of three sign.
        let v2 = next(&v1.doc, |d| d.members.push(member("delta", 4, "5012345")));
        let chain = vec![
            v1.clone(),
            signed(v2.clone(), &[("alpha", 1), ("charlie", 3)]),
        ];
        let newest = verify_chain(&chain).unwrap();
        assert_eq!(newest.home_of("50123450000001").unwrap().name, "delta");
        assert_eq!(newest.home_of("06141410000001").unwrap().name, "alpha");
        assert!(newest.home_of("99999990000001").is_none());
        // One of three is not a majority.
        assert!(matches!(
            verify_chain(&[v1.clone(), signed(v2.clone(), &[("alpha", 1)])]),
            Err(NetworkError::NoMajority {
                got: 1,
                needed: 2,
                ..
            })
        ));
        // delta cannot vote itself in.
        assert!(matches!(
            verify_chain(&[
                v1.clone(),
                signed(v2.clone(), &[("alpha", 1), ("delta", 4)])
            ]),
            Err(NetworkError::NotAMember { .. })
        ));
        // A signature by the wrong key.
        let mut forged = signed(v2.clone(), &[("alpha", 1), ("bravo", 2)]);
        forged.votes[1].signature = v2.vote("bravo", &key(9)).signature;
        assert!(matches!(
            verify_chain(&[v1.clone(), forged]),
            Err(NetworkError::BadSignature { .. })
        ));
        // Version 1 needs every founder.
        let mut short = v1.clone();
        short.votes.pop();
        assert!(matches!(
            verify_chain(&[short]),
            Err(NetworkError::NoMajority { .. })
        ));
        // A version that skips, or does not name its predecessor.
        let mut skip = v2.clone();
        skip.version = 3;
        assert!(matches!(
            verify_chain(&[v1.clone(), signed(skip, &[("alpha", 1), ("bravo", 2)])]),
            Err(NetworkError::BrokenChain { .. })
        ));
        let mut unnamed = v2.clone();
        unnamed.previous = Some(Digest([7; 32]));
        assert!(matches!(
            verify_chain(&[v1, signed(unnamed, &[("alpha", 1), ("bravo", 2)])]),
            Err(NetworkError::BrokenChain { .. })
        ));
    }

    #[test]
    fn versions_that_give_an_identifier_two_homes_or_repeat_a_member_are_refused() {
        let v1 = founded();
        for change in [
            (|d: &mut NetworkDoc| d.members[1].prefixes = vec!["061414".into()])
                as fn(&mut NetworkDoc),
            |d| d.members[1].operator_key = d.members[0].operator_key,
            |d| d.members[1].name = "Bravo".into(),
            |d| d.members[1].shards = 0,
            |d| d.members[1].url = "ftp://x".into(),
            |d| d.members[1].prefixes = vec!["12ab".into()],
            |d| d.members.clear(),
        ] {
            let mut d = next(&v1.doc, |_| {});
            change(&mut d);
            assert!(
                matches!(d.check(), Err(NetworkError::Invalid { .. })),
                "{d:?}"
            );
        }
    }

    #[test]
    fn encodings_are_canonical() {
        let v1 = founded();
        let bytes = v1.to_bytes();
        assert_eq!(SignedNetworkDoc::from_bytes(&bytes).unwrap(), v1);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SignedNetworkDoc::from_bytes(&longer).is_err());
        for cut in 0..bytes.len() {
            assert!(SignedNetworkDoc::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
