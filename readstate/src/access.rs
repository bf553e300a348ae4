//! Who may read what: the node's one visibility model. Every read route and
//! every copy asks here; ARCHITECTURE.md ("Who may read what") states it in
//! prose.
//!
//! Public to anyone, with or without a token: entry ids, signed heads,
//! checkpoints, inclusion and consistency proofs and the key document, so a
//! stranger can prove that an id is in a log and that the log only grew;
//! and the network records (the membership a node follows, which names
//! keys, URLs and prefixes every member publishes anyway, and a fork's
//! evidence, two signed heads).
//! Content is readable by:
//!
//! - investigators and regulators (the investigator role) and the operator:
//!   everything;
//! - a custody event: the organisation that recorded it, the owners of its
//!   read point and business location, the parties its source and
//!   destination lists name;
//! - a device's readings: the device's owner, and the organisations concerned
//!   with the lots (and containers) it watched during those readings;
//! - a device's identity entries (registration, key rotation, revocation):
//!   its owner and the organisations concerned with anything it ever watched;
//! - an organisation's registration: every member (it is the network's
//!   directory: names and roles, which every page and trace shows);
//! - a verdict: the organisations concerned with its subject (a lot, or a
//!   device over the verdict's time);
//! - a recall change: the organisations concerned with the lots it recalls;
//! - a cross-shard receipt: the organisations concerned with its subject.
//!
//! "Concerned with a lot" is [`analytics::lineage::Lineage::subject_concerns`]:
//! some event naming the lot concerns the organisation.
//!
//! A consumer page discloses the entries behind the facts it shows by a
//! [`Grant`] per entry, which its verifier presents in place of a token.

use analytics::lineage::Lineage;
use api::{ApiError, Principal, Role};
use ledger::entry::{Entry, IdentityChange, SignedBatch};

/// Whether `who` (no token: `None`) may read `entry`'s content. `graph` is the
/// read model the answer is given from.
pub fn may_read(graph: &Lineage, who: Option<&Principal>, entry: &Entry) -> bool {
    if let Entry::Checkpoint(_) | Entry::Network(_) = entry {
        return true;
    }
    let Some(who) = who else {
        return false;
    };
    let org = match who.role {
        Role::Investigator | Role::Operator => return true,
        Role::Partner => who.org.as_str(),
    };
    const ALWAYS: (i64, i64) = (i64::MIN, i64::MAX);
    match entry {
        Entry::Custody(e) => graph.event_concerns(e, org),
        Entry::Readings(sb) => batch_concerns(graph, sb, org),
        Entry::Identity(IdentityChange::OrgRegistered { .. }) => true,
        Entry::Identity(
            IdentityChange::DeviceRegistered {
                org: owner, device, ..
            }
            | IdentityChange::KeyRotated {
                org: owner, device, ..
            }
            | IdentityChange::DeviceRevoked {
                org: owner, device, ..
            },
        ) => owner == org || graph.readings_concern(device, ALWAYS.0, ALWAYS.1, org),
        // A delegation concerns the location's owner and the delegate.
        Entry::Identity(
            IdentityChange::LocationDelegated { org: owner, to, .. }
            | IdentityChange::DelegationWithdrawn { org: owner, to, .. },
        ) => owner == org || to == org,
        Entry::Verdict(v) => {
            graph.about_concerns(&v.subject, v.from_ms, v.to_ms.unwrap_or(i64::MAX), org)
        }
        Entry::Recall(c) => graph.recall_concerns(c, org),
        Entry::ReceiptOut(r) => graph.about_concerns(&r.subject, ALWAYS.0, ALWAYS.1, org),
        Entry::ReceiptIn(d) => graph.about_concerns(&d.receipt.subject, ALWAYS.0, ALWAYS.1, org),
        Entry::Checkpoint(_) | Entry::Network(_) => true,
    }
}

/// Whether `who` may read a readings entry's batch: [`may_read`] for
/// `Entry::Readings(sb)`, without building the entry.
pub fn may_read_batch(graph: &Lineage, who: &Principal, sb: &SignedBatch) -> bool {
    match who.role {
        Role::Investigator | Role::Operator => true,
        Role::Partner => batch_concerns(graph, sb, &who.org),
    }
}

/// A batch concerns its device's owner, and those concerned with what the
/// device watched between its first and last reading.
fn batch_concerns(graph: &Lineage, sb: &SignedBatch, org: &str) -> bool {
    let times = sb.batch.readings.iter().map(|r| r.time_ms);
    let from = times.clone().min().unwrap_or(i64::MIN);
    let to = times.max().unwrap_or(i64::MAX);
    graph.readings_concern(&sb.batch.device, from, to, org)
}

/// The refusal for content `who` may not read at `place` (`shard/index`):
/// without a token, a token is what is missing; with one, the entry exists
/// (its id and proof are public) but concerns other organisations.
pub fn refusal(who: Option<&Principal>, place: &str) -> ApiError {
    match who {
        None => ApiError::Unauthenticated,
        Some(p) => ApiError::Forbidden(format!(
            "entry {place} concerns organisations other than {}: its content is theirs to read; its id, inclusion proof and signed head stay public",
            p.org
        )),
    }
}

/// A consumer page's leave to read one entry it shows: a keyed hash of the
/// entry's place under the node's grant key, so a page hands out exactly the
/// entries behind its facts and nothing else verifies.
#[derive(Clone)]
pub struct Grant {
    key: [u8; 32],
}

/// The grant key's file in the node's data directory (private to the
/// operator; kept so grants outlive a restart).
pub const GRANT_KEY_FILE: &str = "page-grant.key";

impl Grant {
    pub fn new(key: [u8; 32]) -> Grant {
        Grant { key }
    }

    /// The node's grant key from `dir`, made (random, written durably) on
    /// first use.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Grant> {
        let path = dir.join(GRANT_KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                .map(Grant::new)
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} must hold 32 bytes; delete it to make a new key (open pages' proofs stop verifying)", path.display()),
                    )
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
                ledger::durable::replace(&path, &key, ledger::durable::Mode::Private)?;
                Ok(Grant::new(key))
            }
            Err(e) => Err(e),
        }
    }

    /// The grant for entry `index` of `shard`, hex.
    pub fn for_entry(&self, shard: u32, index: u64) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"coldtrail page grant v1\0");
        h.update(&shard.to_be_bytes());
        h.update(&index.to_be_bytes());
        h.finalize().to_hex()[..32].to_string()
    }

    /// Whether `grant` is the grant for entry `index` of `shard` (compared in
    /// constant time).
    pub fn allows(&self, grant: &str, shard: u32, index: u64) -> bool {
        let want = self.for_entry(shard, index);
        grant.len() == want.len()
            && grant
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::entry::{CustodyEvent, EventKind, OrgRole};

    const A: &str = "urn:epc:id:sgln:0614141.00001.0";
    const C: &str = "urn:epc:id:sgln:0614141.00003.0";

    fn partner(org: &str) -> Principal {
        Principal {
            org: org.into(),
            role: Role::Partner,
        }
    }

    fn event(by: &str) -> Entry {
        Entry::Custody(CustodyEvent {
            recorded_by: by.into(),
            event_id: "urn:uuid:1".into(),
            kind: EventKind::Object,
            action: None,
            event_time_ms: 0,
            tz_offset_min: 0,
            biz_step: None,
            disposition: None,
            read_point: Some(by.into()),
            biz_location: None,
            subjects: Vec::new(),
            readings: Vec::new(),
            document: b"{}".to_vec(),
        })
    }

    #[test]
    fn roles_and_kinds_decide_who_reads_content() {
        let mut g = Lineage::new();
        g.apply_org(A, "A", OrgRole::Grower);
        g.apply_org(C, "C", OrgRole::Carrier);
        let e = event(A);
        for role in [Role::Investigator, Role::Operator] {
            let who = Principal {
                org: C.into(),
                role,
            };
            assert!(may_read(&g, Some(&who), &e), "{role:?}");
        }
        assert!(may_read(&g, Some(&partner(A)), &e));
        assert!(!may_read(&g, Some(&partner(C)), &e));
        assert!(!may_read(&g, None, &e));
        let directory = Entry::Identity(IdentityChange::OrgRegistered {
            org: A.into(),
            name: "A".into(),
            role: OrgRole::Grower,
            at_ms: 0,
        });
        assert!(may_read(&g, Some(&partner(C)), &directory));
        assert!(!may_read(&g, None, &directory));
        let device = Entry::Identity(IdentityChange::DeviceRegistered {
            org: A.into(),
            device: "urn:epc:id:giai:0614141.R1".into(),
            public_key: [0; 32],
            at_ms: 0,
            active_from_ms: 0,
        });
        assert!(may_read(&g, Some(&partner(A)), &device));
        assert!(!may_read(&g, Some(&partner(C)), &device));
        assert!(matches!(refusal(None, "0/1"), ApiError::Unauthenticated));
        assert!(matches!(
            refusal(Some(&partner(C)), "0/1"),
            ApiError::Forbidden(_)
        ));
    }

    #[test]
    fn a_grant_opens_exactly_its_entry_under_its_key() {
        let grant = Grant::new([7; 32]);
        let g = grant.for_entry(1, 42);
        assert!(grant.allows(&g, 1, 42));
        assert!(!grant.allows(&g, 1, 43) && !grant.allows(&g, 0, 42));
        assert!(!Grant::new([8; 32]).allows(&g, 1, 42));
        assert!(!grant.allows(&g[..31], 1, 42) && !grant.allows("", 1, 42));
    }

    #[test]
    fn the_grant_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Grant::open(dir.path()).unwrap().for_entry(0, 0);
        assert_eq!(Grant::open(dir.path()).unwrap().for_entry(0, 0), first);
        std::fs::write(dir.path().join(GRANT_KEY_FILE), b"short").unwrap();
        assert!(Grant::open(dir.path()).is_err());
    }
}
