//! The streaming engine: committed entries in, table rows, rule findings and
//! verdicts to record out. Pure over its inputs (no I/O): the feed consumer
//! ([`crate::consumer`]) drives it, persists it and appends its verdicts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use ledger::entry::{Entry, IdentityChange, RuleVerdict, VerdictKind};

use crate::custody::{claim_of, Custody};
use crate::profile::{Profile, RulesConfig};
use crate::rules::{DeviceEval, Evidence, Finding};
use crate::tables::{EventsBuilder, ReadingsBuilder, VerdictsBuilder};
use crate::watches::{gtin_of, Watches};

/// Identifies a verdict for exactly-once recording: the same finding on the
/// same subject is never recorded twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VerdictKey {
    pub rule: String,
    pub subject: String,
    pub kind: u8,
    pub from_ms: i64,
}

impl VerdictKey {
    pub fn of(v: &RuleVerdict) -> VerdictKey {
        VerdictKey {
            rule: v.rule.clone(),
            subject: v.subject.clone(),
            kind: kind_tag(v.kind),
            from_ms: v.from_ms,
        }
    }
}

fn kind_tag(k: VerdictKind) -> u8 {
    match k {
        VerdictKind::Breach => 0,
        VerdictKind::Quarantine => 1,
        VerdictKind::Release => 2,
        VerdictKind::Suspend => 3,
        VerdictKind::Reinstate => 4,
    }
}

/// The rule name of a suspension for impossible data.
pub const SUSPEND_RULE: &str = "impossible_data";

/// A verdict to append, on the home shard of `partition_key` (its subject).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub partition_key: String,
    pub verdict: RuleVerdict,
}

/// Everything the engine derives that must survive a restart (persisted with
/// the feed cursor).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// device -> organisation, from identity entries.
    pub owners: HashMap<String, String>,
    /// Only what counts under custody: an association of a logger with a
    /// lot its organisation did not hold waits in `custody` and watches
    /// nothing (a rival's logger cannot breach or quarantine a competitor's
    /// lot).
    pub watches: Watches,
    /// Who held which lot from when, and the custody events that do not
    /// count yet, each as its encoded entry when it would change `watches`.
    pub custody: Custody<String, (u32, u64), Option<Vec<u8>>>,
    pub devices: HashMap<String, DeviceEval>,
    /// Verdicts on the ledger (seen in the feed) or proposed by this engine.
    pub recorded: BTreeSet<VerdictKey>,
    /// Lots in quarantine: lot -> the quarantine verdict's explanation.
    pub quarantined: BTreeMap<String, String>,
    /// Devices suspended by policy: device -> why.
    pub suspended: BTreeMap<String, String>,
    /// Findings so far (the rule engine's output before attribution).
    pub findings: u64,
}

impl EngineState {
    /// Whether `party` held `lot` at `t_ms`, as this engine's custody has it.
    fn holds(&self, party: &str, lot: &str, t_ms: i64) -> bool {
        self.custody
            .held(party, crate::custody::key(lot).as_str(), t_ms)
    }

    /// What `device` watched during `[from_ms, to_ms]` (`Watches::watched`
    /// under this engine's custody).
    pub fn watched(&self, device: &str, from_ms: i64, to_ms: i64) -> BTreeSet<String> {
        self.watches
            .watched(device, from_ms, to_ms, &|p, l, t| self.holds(p, l, t))
    }

    /// The first subject `device` was set to watch (`Watches::first_watched`).
    pub fn first_watched(&self, device: &str) -> Option<String> {
        self.watches
            .first_watched(device, &|p, l, t| self.holds(p, l, t))
    }
}

/// The unflushed rows of every append-only table.
#[derive(Default)]
pub struct Tail {
    pub readings: ReadingsBuilder,
    pub events: EventsBuilder,
    pub verdicts: VerdictsBuilder,
}

impl Tail {
    pub fn rows(&self) -> usize {
        self.readings.len() + self.events.len() + self.verdicts.len()
    }
}

/// Chooses a logger's profile: the product of the first thing it was set to
/// watch, or the default profile.
pub fn profile_for<'c>(config: &'c RulesConfig, state: &EngineState, device: &str) -> &'c Profile {
    let gtin = state.first_watched(device).and_then(|s| gtin_of(&s));
    config.profile_for_gtin(gtin.as_deref())
}

/// Turns a finding into verdicts: a breach per subject the logger watched
/// during it (the logger itself when it watched nothing), and a quarantine
/// per watched lot when the rule's policy says so.
pub fn attribute(finding: &Finding, state: &EngineState) -> Vec<Proposal> {
    let watched = state.watched(&finding.device, finding.from_ms, finding.to_ms);
    let on = if watched.is_empty() {
        String::new()
    } else {
        format!(
            " watching {}",
            watched.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    let explanation = format!("{}; logger {}{on}", finding.summary, finding.device);
    let evidence: Vec<_> = finding
        .evidence
        .iter()
        .map(Evidence::to_entry_ref)
        .collect();
    let subjects: Vec<String> = if watched.is_empty() {
        vec![finding.device.clone()]
    } else {
        watched.iter().cloned().collect()
    };
    let mut out: Vec<Proposal> = subjects
        .iter()
        .map(|s| Proposal {
            partition_key: s.clone(),
            verdict: RuleVerdict {
                rule: finding.rule.clone(),
                subject: s.clone(),
                kind: VerdictKind::Breach,
                from_ms: finding.from_ms,
                to_ms: Some(finding.to_ms),
                explanation: explanation.clone(),
                evidence: evidence.clone(),
            },
        })
        .collect();
    if finding.quarantine {
        for lot in watched.iter().filter(|s| gtin_of(s).is_some()) {
            out.push(Proposal {
                partition_key: lot.clone(),
                verdict: RuleVerdict {
                    rule: finding.rule.clone(),
                    subject: lot.clone(),
                    kind: VerdictKind::Quarantine,
                    from_ms: finding.alarm_ms,
                    to_ms: None,
                    explanation: format!("quarantined until released by QA: {explanation}"),
                    evidence: evidence.clone(),
                },
            });
        }
    }
    out
}

/// The streaming engine.
pub struct Engine {
    pub config: RulesConfig,
    pub state: EngineState,
    pub tail: Tail,
    /// Verdicts to append, in the order they were found.
    pub outbox: Vec<Proposal>,
}

impl Engine {
    pub fn new(config: RulesConfig, state: EngineState) -> Engine {
        Engine {
            config,
            state,
            tail: Tail::default(),
            outbox: Vec::new(),
        }
    }

    /// Whether a readings entry is from a device this engine has not judged
    /// yet (the consumer then reads the other shards first, so the device's
    /// registration and associations are known before its first reading).
    pub fn is_new_device(&self, encoded: &[u8]) -> bool {
        ledger::entry::peek_readings(encoded)
            .is_some_and(|(d, _, _)| !self.state.devices.contains_key(&d))
    }

    /// Takes one committed entry. Entries that do not decode are skipped:
    /// the store checked their checksums, and a newer kind is not ours to judge.
    pub fn apply(&mut self, shard: u32, index: u64, encoded: &[u8]) {
        let Ok(entry) = Entry::from_bytes(encoded) else {
            return;
        };
        let at = Evidence {
            shard,
            index,
            id: ledger::entry_id(encoded).0,
        };
        match entry {
            Entry::Readings(sb) => self.readings(&at, &sb.batch),
            Entry::Custody(e) => {
                let doc = crate::tables::document(&e);
                self.custody(&e, &doc, &at, encoded);
                self.tail.events.append(&at, &e, &doc);
            }
            Entry::Identity(IdentityChange::DeviceRegistered { org, device, .. }) => {
                self.state.owners.insert(device, org);
            }
            // Other shards' entries seen ahead (`look_ahead`) apply again
            // here, in order: their effects are idempotent.
            Entry::Verdict(v) => {
                match v.kind {
                    VerdictKind::Quarantine => {
                        self.state
                            .quarantined
                            .insert(v.subject.clone(), v.explanation.clone());
                    }
                    VerdictKind::Release => {
                        self.state.quarantined.remove(&v.subject);
                    }
                    VerdictKind::Suspend => {
                        self.state
                            .suspended
                            .insert(v.subject.clone(), v.explanation.clone());
                    }
                    VerdictKind::Reinstate => {
                        self.state.suspended.remove(&v.subject);
                    }
                    VerdictKind::Breach => {}
                }
                self.state.recorded.insert(VerdictKey::of(&v));
                self.tail.verdicts.append(&at, &v);
            }
            _ => {}
        }
    }

    /// Takes what a committed entry says about who owns a device and what a
    /// logger watches, without adding rows: for reading ahead on other shards
    /// before a logger's first reading is judged. Applying the entry in order
    /// later does it again, to the same effect.
    pub fn look_ahead(&mut self, shard: u32, index: u64, encoded: &[u8]) {
        if !matches!(
            ledger::entry::kind_of(encoded),
            Some("custody" | "identity")
        ) {
            return;
        }
        match Entry::from_bytes(encoded) {
            Ok(Entry::Custody(e)) => {
                let at = Evidence {
                    shard,
                    index,
                    id: ledger::entry_id(encoded).0,
                };
                self.custody(&e, &crate::tables::document(&e), &at, encoded);
            }
            Ok(Entry::Identity(IdentityChange::DeviceRegistered { org, device, .. })) => {
                self.state.owners.insert(device, org);
            }
            _ => {}
        }
    }

    /// Takes a custody event (`doc`: its parsed document): it watches (and
    /// moves custody) only when it counts, and so may every waiting event the
    /// custody it moved makes consistent. Idempotent, like `Watches::apply`:
    /// an event read ahead comes again in order.
    fn custody(
        &mut self,
        e: &ledger::entry::CustodyEvent,
        doc: &serde_json::Value,
        at: &Evidence,
        encoded: &[u8],
    ) {
        // Only association and aggregation events change `watches`: the
        // others need no bytes kept to be acted on later.
        let watching = matches!(
            e.kind,
            ledger::entry::EventKind::Association | ledger::entry::EventKind::Aggregation
        );
        let settled = self
            .state
            .custody
            .settle((at.shard, at.index), claim_of(e, doc), || {
                watching.then(|| encoded.to_vec())
            });
        let Some(then) = settled else { return };
        self.state.watches.apply(e, at);
        for ((shard, index), encoded) in then {
            let Some(encoded) = encoded else { continue };
            if let Ok(Entry::Custody(e)) = Entry::from_bytes(&encoded) {
                let at = Evidence {
                    shard,
                    index,
                    id: ledger::entry_id(&encoded).0,
                };
                self.state.watches.apply(&e, &at);
            }
        }
    }

    fn readings(&mut self, at: &Evidence, batch: &ledger::reading::DeviceBatch) {
        let device = batch.device.as_str();
        let owner = self.state.owners.get(device).map(String::as_str);
        for (i, r) in batch.readings.iter().enumerate() {
            self.tail
                .readings
                .append(at, device, owner, batch.first_seq + i as u64, r);
        }
        // A logger keeps the profile it started with. If the configuration
        // changed that profile's rules since (or dropped it), its rule state
        // starts afresh from this reading: old state cannot judge new rules.
        let kept = self
            .state
            .devices
            .get(device)
            .and_then(|e| self.config.profile(&e.profile).filter(|p| e.fits(p)));
        let profile = match kept {
            Some(p) => p,
            None => {
                let p = profile_for(&self.config, &self.state, device);
                self.state
                    .devices
                    .insert(device.to_string(), DeviceEval::new(device, p));
                p
            }
        };
        let eval = self.state.devices.get_mut(device).expect("inserted above");
        let mut found = Vec::new();
        let mut suspend = None;
        for r in &batch.readings {
            if suspend.is_none() && !self.state.suspended.contains_key(device) {
                suspend = self
                    .config
                    .device_policy
                    .impossible(r, eval.last_time_ms())
                    .map(|why| (r.time_ms, why));
            }
            eval.push(profile, r, at, &mut found);
        }
        if let Some((at_ms, why)) = suspend {
            let v = RuleVerdict {
                rule: SUSPEND_RULE.into(),
                subject: device.to_string(),
                kind: VerdictKind::Suspend,
                from_ms: at_ms,
                to_ms: None,
                explanation: format!(
                    "suspended until its owner reinstates it: {why}; logger {device}"
                ),
                evidence: vec![at.to_entry_ref()],
            };
            self.state
                .suspended
                .insert(device.to_string(), v.explanation.clone());
            if self.state.recorded.insert(VerdictKey::of(&v)) {
                self.outbox.push(Proposal {
                    partition_key: device.to_string(),
                    verdict: v,
                });
            }
        }
        for f in found {
            self.state.findings += 1;
            for p in attribute(&f, &self.state) {
                if self.state.recorded.insert(VerdictKey::of(&p.verdict)) {
                    self.outbox.push(p);
                }
            }
        }
    }

    /// Findings still open at `as_of`, on every logger. A logger that has
    /// been set to watch something is judged only while on watch (taken off
    /// duty, its silence and last state are nobody's concern); a silent
    /// logger counts as missing data only while on watch.
    pub fn ongoing(&self, as_of: i64) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut devices: Vec<&DeviceEval> = self.state.devices.values().collect();
        devices.sort_by(|a, b| a.device.cmp(&b.device));
        for e in devices {
            let Some(profile) = self.config.profile(&e.profile) else {
                continue;
            };
            let watched = self.state.first_watched(&e.device).is_some();
            for f in e.ongoing(profile, as_of) {
                let kind = profile
                    .rules
                    .iter()
                    .find(|r| r.name == f.rule)
                    .map(|r| &r.kind);
                let silent = matches!(kind, Some(crate::profile::RuleKind::MissingData));
                if (silent || watched) && !self.state.watches.on_watch(&e.device, f.alarm_ms) {
                    continue;
                }
                out.push(f);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::entry::SignedBatch;
    use ledger::reading::{DeviceBatch, Reading};

    fn batch(first_seq: u64, minutes: std::ops::Range<i64>, temp_c: i32) -> Vec<u8> {
        let readings = minutes
            .map(|m| Reading::new(1_793_664_000_000 + m * 60_000, temp_c * 100))
            .collect::<Vec<_>>();
        Entry::Readings(SignedBatch {
            batch: DeviceBatch {
                device: "logger".into(),
                first_seq,
                readings,
            },
            signature: [0; 64],
        })
        .to_bytes()
    }

    #[test]
    fn a_changed_profile_restarts_its_loggers_state_instead_of_misjudging() {
        let mut engine = Engine::new(RulesConfig::default(), EngineState::default());
        engine.apply(0, 0, &batch(0, 0..30, 4));
        let state = engine.state.clone();
        // The operator adds a rule to the profile the logger was judged by.
        let mut config = RulesConfig::default();
        let p = config
            .profiles
            .iter_mut()
            .find(|p| p.name == "device_health")
            .unwrap();
        p.rules.insert(0, p.rules[2].clone());
        p.rules[0].name = "shock_again".into();
        config.validate().unwrap();
        let mut engine = Engine::new(config, state);
        engine.apply(0, 1, &batch(30, 30..60, 4));
        let eval = &engine.state.devices["logger"];
        assert!(eval.fits(engine.config.profile("device_health").unwrap()));
        assert_eq!(
            eval.judged, 30,
            "judged afresh from the first reading after the change"
        );
    }
}
