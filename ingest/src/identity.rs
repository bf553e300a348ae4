//! Who may write what: organisations, their devices and the devices' keys
//! over time, and each device's next sequence number. All of it is derived
//! from ledger entries ([`IdentityState::apply`]); nothing here is a source
//! of truth of its own.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use ledger::entry::{Entry, EntryRef, IdentityChange, OrgRole, VerdictKind};

use api::problem::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub name: String,
    pub role: OrgRole,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub org: String,
    /// Keys in the order they became valid: `(valid_from_ms, key)`.
    pub keys: Vec<(i64, VerifyingKey)>,
    /// The time from which the registration's key signs readings: the
    /// registration's, or the activation its owner declared in it.
    pub active_from_ms: i64,
    pub revoked_at_ms: Option<i64>,
    /// The sequence number the next batch must start at.
    pub next_seq: u64,
    /// Suspended by policy (why), until its owner reinstates it.
    pub suspended: Option<String>,
    /// The ledger entries this state rests on: registration, rotations,
    /// revocation, suspensions and reinstatements.
    pub entries: Vec<EntryRef>,
}

impl Device {
    /// Whether the device may have taken a reading at `at_ms`: not before
    /// its activation (a key that did not exist then cannot vouch for it;
    /// an owner with a logger's backlog declares an earlier activation when
    /// registering).
    pub fn check_active(&self, device: &str, at_ms: i64) -> Result<(), ApiError> {
        if at_ms < self.active_from_ms {
            return Err(ApiError::BeforeActivation {
                device: device.to_string(),
                at_ms,
                active_from_ms: self.active_from_ms,
            });
        }
        Ok(())
    }

    /// The key that signs a batch whose first reading is at `at_ms`, or
    /// why there is none.
    ///
    /// A rotation hands over at its time. A revoked device signs nothing
    /// any more, whatever its readings' time: a stolen key could back-date
    /// them.
    pub fn key_at(&self, device: &str, at_ms: i64) -> Result<VerifyingKey, ApiError> {
        if let Some(revoked) = self.revoked_at_ms {
            return Err(ApiError::RevokedKey {
                device: device.to_string(),
                revoked_at_ms: revoked,
                at_ms,
            });
        }
        self.check_active(device, at_ms)?;
        // The registration's key is first; a rotation made before the
        // activation (a key replaced before its logger was deployed) takes
        // over from the activation on.
        Ok(self
            .keys
            .iter()
            .rev()
            .find(|(from, _)| *from <= at_ms)
            .unwrap_or(&self.keys[0])
            .1)
    }
}

/// The identity state of the whole node.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IdentityState {
    pub orgs: HashMap<String, Org>,
    /// Member organisations by their GLN (`gs1::gln_of`): a location
    /// belongs to the organisation registered under its GLN.
    pub org_by_gln: HashMap<String, String>,
    /// Delegations in force, by (location's canonical id, delegate's GLN):
    /// the entry that made each.
    pub delegations: HashMap<(String, String), EntryRef>,
    pub devices: HashMap<String, Device>,
    /// Lots in quarantine (recorded by the rules' policies): lot -> why.
    pub quarantined: HashMap<String, String>,
    /// Where each lot's last quarantine or release was committed: a release
    /// retried after its answer was lost is recognised by it.
    pub lot_changes: HashMap<String, EntryRef>,
    /// What was folded about devices before their registration was. A
    /// device's readings and suspensions are homed on its own shard, its
    /// registration on its organisation's, and a start reads the shards one
    /// after another: the registration can come after them.
    early: HashMap<String, Early>,
}

/// A device's readings and policies seen before its registration.
#[derive(Debug, Default, Clone, PartialEq)]
struct Early {
    next_seq: u64,
    /// `Some(why)`: suspended; `None`: reinstated; absent: neither seen.
    suspended: Option<Option<String>>,
    entries: Vec<EntryRef>,
}

impl IdentityState {
    /// Folds one committed entry, committed at `at`, into the state.
    pub fn apply(&mut self, entry: &Entry, at: EntryRef) {
        self.fold(entry);
        let device = match entry {
            Entry::Identity(IdentityChange::LocationDelegated { location, to, .. }) => {
                if let Some(key) = delegation_key(location, to) {
                    self.delegations.entry(key).or_insert(at);
                }
                return;
            }
            Entry::Identity(IdentityChange::DelegationWithdrawn { location, to, .. }) => {
                if let Some(key) = delegation_key(location, to) {
                    self.delegations.remove(&key);
                }
                return;
            }
            Entry::Identity(
                IdentityChange::DeviceRegistered { device, .. }
                | IdentityChange::KeyRotated { device, .. }
                | IdentityChange::DeviceRevoked { device, .. },
            ) => device,
            Entry::Verdict(v)
                if matches!(v.kind, VerdictKind::Suspend | VerdictKind::Reinstate) =>
            {
                &v.subject
            }
            Entry::Verdict(v)
                if matches!(v.kind, VerdictKind::Quarantine | VerdictKind::Release) =>
            {
                // A lot's changes are all on its home shard, and the
                // follower may apply one the write path already applied:
                // the later entry is kept.
                let newer = self
                    .lot_changes
                    .get(&v.subject)
                    .is_none_or(|last| last.shard != at.shard || last.index < at.index);
                if newer {
                    self.lot_changes.insert(v.subject.clone(), at);
                }
                return;
            }
            _ => return,
        };
        // The write path applies what it commits, and the follower may see
        // the same entry again: each is named once.
        let entries = match self.devices.get_mut(device) {
            Some(d) => &mut d.entries,
            None => &mut self.early.entry(device.clone()).or_default().entries,
        };
        if !entries.contains(&at) {
            entries.push(at);
        }
    }

    /// Every device's next sequence number as its committed readings give
    /// it (devices not yet registered included), for a checkpoint.
    pub fn sequences(&self) -> Vec<(String, u64)> {
        let registered = self.devices.iter().map(|(id, d)| (id, d.next_seq));
        let early = self.early.iter().map(|(id, e)| (id, e.next_seq));
        registered
            .chain(early)
            .filter(|(_, n)| *n > 0)
            .map(|(id, n)| (id.clone(), n))
            .collect()
    }

    fn fold(&mut self, entry: &Entry) {
        match entry {
            Entry::Identity(IdentityChange::OrgRegistered {
                org, name, role, ..
            }) => {
                if let Some(gln) = gs1::gln_of(org) {
                    self.org_by_gln.entry(gln).or_insert_with(|| org.clone());
                }
                self.orgs.insert(
                    org.clone(),
                    Org {
                        name: name.clone(),
                        role: *role,
                    },
                );
            }
            Entry::Identity(IdentityChange::DeviceRegistered {
                org,
                device,
                public_key,
                active_from_ms,
                ..
            }) => {
                if let (Ok(key), false) = (
                    VerifyingKey::from_bytes(public_key),
                    self.devices.contains_key(device),
                ) {
                    let early = self.early.remove(device).unwrap_or_default();
                    self.devices.insert(
                        device.clone(),
                        Device {
                            org: org.clone(),
                            keys: vec![(*active_from_ms, key)],
                            active_from_ms: *active_from_ms,
                            revoked_at_ms: None,
                            next_seq: early.next_seq,
                            suspended: early.suspended.flatten(),
                            entries: early.entries,
                        },
                    );
                }
            }
            Entry::Identity(IdentityChange::KeyRotated {
                device,
                public_key,
                at_ms,
                ..
            }) => {
                if let (Some(d), Ok(key)) = (
                    self.devices.get_mut(device),
                    VerifyingKey::from_bytes(public_key),
                ) {
                    d.keys.push((*at_ms, key));
                }
            }
            Entry::Identity(IdentityChange::DeviceRevoked { device, at_ms, .. }) => {
                if let Some(d) = self.devices.get_mut(device) {
                    d.revoked_at_ms = Some(d.revoked_at_ms.map_or(*at_ms, |r| r.min(*at_ms)));
                }
            }
            Entry::Readings(sb) => self.advance_sequence(&sb.batch.device, sb.batch.next_seq()),
            Entry::Verdict(v) => match v.kind {
                VerdictKind::Suspend | VerdictKind::Reinstate => {
                    let suspended = (v.kind == VerdictKind::Suspend).then(|| v.explanation.clone());
                    match self.devices.get_mut(&v.subject) {
                        Some(d) => d.suspended = suspended,
                        None => {
                            self.early.entry(v.subject.clone()).or_default().suspended =
                                Some(suspended)
                        }
                    }
                }
                VerdictKind::Quarantine => {
                    self.quarantined
                        .insert(v.subject.clone(), v.explanation.clone());
                }
                VerdictKind::Release => {
                    self.quarantined.remove(&v.subject);
                }
                VerdictKind::Breach => {}
            },
            _ => {}
        }
    }

    /// A batch of `device` up to (not including) `next_seq` was committed.
    pub fn advance_sequence(&mut self, device: &str, next_seq: u64) {
        let current = match self.devices.get_mut(device) {
            Some(d) => &mut d.next_seq,
            None => &mut self.early.entry(device.to_string()).or_default().next_seq,
        };
        *current = (*current).max(next_seq);
    }

    /// The member organisation that owns `location` (registered under its
    /// GLN), if one does.
    pub fn location_owner(&self, location: &str) -> Option<&str> {
        self.org_by_gln
            .get(&gs1::gln_of(location)?)
            .map(String::as_str)
    }

    /// Whether `org` may record events at `location` (the event's `field`,
    /// for the refusal): it owns it, the location's owner delegated it (the
    /// location itself or its whole GLN) to `org`, or no member owns it (the
    /// network has nobody to ask; such places are anyone's to name).
    pub fn may_record_at(&self, org: &str, location: &str, field: &str) -> Result<(), ApiError> {
        let Some(owner) = self.location_owner(location) else {
            return Ok(());
        };
        let org_gln = gs1::gln_of(org);
        if owner == org || (org_gln.is_some() && gs1::gln_of(owner) == org_gln) {
            return Ok(());
        }
        let delegated = |place: Option<String>| {
            place
                .zip(org_gln.clone())
                .is_some_and(|key| self.delegations.contains_key(&key))
        };
        if delegated(gs1::canonical_id(location)) || delegated(gs1::gln_of(location)) {
            return Ok(());
        }
        Err(ApiError::LocationNotYours {
            org: org.to_string(),
            location: location.to_string(),
            field: field.to_string(),
            owner: owner.to_string(),
        })
    }

    /// The device, if `org` may write for it.
    pub fn device_of(&self, org: &str, device: &str) -> Result<&Device, ApiError> {
        let d = self
            .devices
            .get(device)
            .ok_or_else(|| ApiError::UnknownDevice(device.to_string()))?;
        if d.org != org {
            return Err(ApiError::WrongOrganisation {
                device: device.to_string(),
                org: org.to_string(),
            });
        }
        Ok(d)
    }
}

/// A delegation's key: the location as delegated (canonical) and the
/// delegate's GLN.
fn delegation_key(location: &str, to: &str) -> Option<(String, String)> {
    Some((gs1::canonical_id(location)?, gs1::gln_of(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger::entry::RuleVerdict;

    /// Applies `e` as if committed next on shard 0.
    fn apply(s: &mut IdentityState, e: Entry) {
        let index = s.devices.values().map(|d| d.entries.len() as u64).sum();
        let id = ledger::entry_id(&e.to_bytes());
        s.apply(
            &e,
            EntryRef {
                shard: 0,
                index,
                id,
            },
        );
    }

    /// A device registered at `at`, its key valid from `active_from`.
    fn activated(at: i64, active_from: i64) -> IdentityState {
        let mut s = IdentityState::default();
        apply(
            &mut s,
            Entry::Identity(IdentityChange::DeviceRegistered {
                org: "org".into(),
                device: "d".into(),
                public_key: SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes(),
                at_ms: at,
                active_from_ms: active_from,
            }),
        );
        s
    }

    fn registered(at: i64) -> IdentityState {
        activated(at, at)
    }

    #[test]
    fn keys_are_valid_from_activation_until_rotation_or_revocation() {
        let mut s = registered(100);
        let k1 = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let k2 = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert!(
            matches!(
                s.devices["d"].key_at("d", 99),
                Err(ApiError::BeforeActivation {
                    at_ms: 99,
                    active_from_ms: 100,
                    ..
                })
            ),
            "a key vouches for nothing from before it existed"
        );
        assert_eq!(s.devices["d"].key_at("d", 100).unwrap(), k1);
        apply(
            &mut s,
            Entry::Identity(IdentityChange::KeyRotated {
                org: "org".into(),
                device: "d".into(),
                public_key: k2.to_bytes(),
                at_ms: 200,
            }),
        );
        assert_eq!(s.devices["d"].key_at("d", 199).unwrap(), k1);
        assert_eq!(s.devices["d"].key_at("d", 200).unwrap(), k2);
        apply(
            &mut s,
            Entry::Identity(IdentityChange::DeviceRevoked {
                org: "org".into(),
                device: "d".into(),
                reason: "lost".into(),
                at_ms: 300,
            }),
        );
        assert!(
            matches!(
                s.devices["d"].key_at("d", 299),
                Err(ApiError::RevokedKey { .. })
            ),
            "nothing is accepted after revocation"
        );
        assert!(matches!(
            s.devices["d"].key_at("d", 300),
            Err(ApiError::RevokedKey { .. })
        ));
        let indices: Vec<u64> = s.devices["d"].entries.iter().map(|r| r.index).collect();
        assert_eq!(indices, [0, 1, 2], "each change names its entry");
    }

    #[test]
    fn a_declared_activation_covers_the_backlog_and_nothing_older() {
        let s = activated(1_000, 400);
        let k1 = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(s.devices["d"].key_at("d", 400).unwrap(), k1);
        assert_eq!(s.devices["d"].key_at("d", 999).unwrap(), k1);
        assert!(matches!(
            s.devices["d"].check_active("d", 399),
            Err(ApiError::BeforeActivation { .. })
        ));
        // An activation declared ahead of the registration (a logger
        // registered before it is deployed) refuses what comes before it.
        let s = activated(1_000, 5_000);
        assert!(s.devices["d"].check_active("d", 4_999).is_err());
        assert!(s.devices["d"].check_active("d", 5_000).is_ok());
    }

    #[test]
    fn readings_and_suspensions_folded_before_the_registration_are_kept() {
        // A start reads the device's shard (its readings, its suspension)
        // before the organisation's shard (its registration).
        let mut s = IdentityState::default();
        s.advance_sequence("d", 40);
        apply(
            &mut s,
            Entry::Verdict(RuleVerdict {
                rule: "device_health".into(),
                subject: "d".into(),
                kind: VerdictKind::Suspend,
                from_ms: 0,
                to_ms: None,
                explanation: "impossible readings".into(),
                evidence: Vec::new(),
            }),
        );
        s.advance_sequence("d", 25);
        assert_eq!(s.sequences(), [("d".to_string(), 40)]);
        let registered = {
            let mut r = registered(0);
            r.orgs.clear();
            r
        };
        apply(
            &mut s,
            Entry::Identity(IdentityChange::DeviceRegistered {
                org: "org".into(),
                device: "d".into(),
                public_key: SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes(),
                at_ms: 0,
                active_from_ms: 0,
            }),
        );
        let d = &s.devices["d"];
        assert_eq!(d.next_seq, 40, "the sequence its readings reached");
        assert_eq!(d.suspended.as_deref(), Some("impossible readings"));
        assert_eq!(d.entries.len(), 2, "the suspension and the registration");
        assert_eq!(d.keys, registered.devices["d"].keys);
        assert!(s.early.is_empty());
    }

    #[test]
    fn devices_belong_to_one_organisation() {
        let s = registered(0);
        assert!(s.device_of("org", "d").is_ok());
        assert!(matches!(
            s.device_of("other", "d"),
            Err(ApiError::WrongOrganisation { .. })
        ));
        assert!(matches!(
            s.device_of("org", "x"),
            Err(ApiError::UnknownDevice(_))
        ));
    }

    #[test]
    fn a_lots_last_quarantine_or_release_is_where_it_was_committed() {
        let verdict = |kind| {
            Entry::Verdict(RuleVerdict {
                rule: "r".into(),
                subject: "lot".into(),
                kind,
                from_ms: 0,
                to_ms: None,
                explanation: "why".into(),
                evidence: Vec::new(),
            })
        };
        let at = |index| EntryRef {
            shard: 1,
            index,
            id: ledger::Digest([index as u8; 32]),
        };
        let mut s = IdentityState::default();
        s.apply(&verdict(VerdictKind::Quarantine), at(4));
        assert_eq!(s.lot_changes["lot"], at(4));
        assert!(s.quarantined.contains_key("lot"));
        s.apply(&verdict(VerdictKind::Breach), at(6));
        s.apply(&verdict(VerdictKind::Release), at(7));
        assert_eq!(s.lot_changes["lot"], at(7));
        assert!(!s.quarantined.contains_key("lot"));
        // The follower may apply what the write path already applied.
        s.apply(&verdict(VerdictKind::Release), at(7));
        assert_eq!(s.lot_changes["lot"], at(7));
    }
}
