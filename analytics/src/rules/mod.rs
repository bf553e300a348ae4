//! The rule engine: one definition of every rule, as a per-logger state
//! machine over time-weighted readings.
//!
//! # Time semantics (the answers RULES.md asks every rule to write down)
//! - **Time weighting.** A reading stands for the interval until the next
//!   reading of the same logger, capped at the profile's heartbeat. A reading
//!   is judged once that interval is known: when the next reading arrives, or
//!   (for [`DeviceEval::ongoing`]) when the clock has passed the heartbeat.
//! - **Gaps.** A silence longer than the heartbeat is a gap: it ends (resets)
//!   a consecutive excursion at the end of the last reading's interval,
//!   pauses a cumulative count, and is itself a `missing_data` breach from the
//!   last reading to the next. A reading without the quantity a rule reads
//!   (no humidity, say) is a gap for that rule.
//! - **Comparison** is per rule ([`crate::profile::Comparison`]); values are
//!   compared as the ledger's exact scaled integers.
//! - **Reported times.** A breach reports the excursion's start (the first
//!   reading beyond), its alarm time (when the delay or total was reached),
//!   and its end (the first reading back in range past the deadband, or the
//!   end of the last reading's interval before a gap). One breach per
//!   excursion, however long. Cumulative breaches end at their alarm time.
//! - **Emission.** A breach is emitted once its end is known, so a stream
//!   split anywhere, replayed or evaluated in one batch gives the same
//!   breaches; excursions still open are reported by [`DeviceEval::ongoing`],
//!   judged against a clock.
//! - Readings whose time does not move forward are not judged (they are
//!   counted; the suspension policy reads that count).

mod limit;
pub mod mkt;
mod signals;

use serde::{Deserialize, Serialize};

use ledger::reading::Reading;

use crate::profile::{Profile, RuleKind, RuleSpec};

/// The ledger entry a reading came in, kept with every finding it supports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evidence {
    pub shard: u32,
    pub index: u64,
    pub id: [u8; 32],
}

impl Evidence {
    pub fn to_entry_ref(&self) -> ledger::entry::EntryRef {
        ledger::entry::EntryRef {
            shard: self.shard,
            index: self.index,
            id: ledger::Digest(self.id),
        }
    }
}

/// At most this many entries are cited per finding: the first ones of the
/// excursion and its last one (a ten-day excursion need not cite every batch).
pub const MAX_EVIDENCE: usize = 64;

/// A breach a rule found on one logger's readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub device: String,
    /// When the excursion (or gap, or run) began.
    pub from_ms: i64,
    /// When it ended; for an ongoing finding, the clock it was judged at.
    pub to_ms: i64,
    /// When the rule's delay or total was reached.
    pub alarm_ms: i64,
    /// The finding in words, without the logger and lots (added on attribution).
    pub summary: String,
    /// The rule's policy: quarantine the lots this is attributed to.
    pub quarantine: bool,
    pub evidence: Vec<Evidence>,
}

/// Collects the entries behind a finding: distinct, in order, bounded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EvidenceList(Vec<Evidence>);

impl EvidenceList {
    pub(crate) fn push(&mut self, e: &Evidence) {
        if self.0.last() == Some(e) {
            return;
        }
        if self.0.len() == MAX_EVIDENCE {
            // Keep the first ones and always the latest.
            self.0[MAX_EVIDENCE - 1] = e.clone();
        } else {
            self.0.push(e.clone());
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Evidence> {
        std::mem::take(&mut self.0)
    }

    pub(crate) fn snapshot(&self) -> Vec<Evidence> {
        self.0.clone()
    }
}

/// One reading's interval, as rules see it.
pub(crate) struct Span<'a> {
    pub reading: &'a Reading,
    pub evidence: &'a Evidence,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What a rule's state machine needs from the rule and logger.
pub(crate) struct Ctx<'a> {
    pub spec: &'a RuleSpec,
    pub device: &'a str,
    pub heartbeat_ms: i64,
}

impl Ctx<'_> {
    pub(crate) fn finding(
        &self,
        from_ms: i64,
        to_ms: i64,
        alarm_ms: i64,
        summary: String,
        evidence: Vec<Evidence>,
    ) -> Finding {
        Finding {
            rule: self.spec.name.clone(),
            device: self.device.to_string(),
            from_ms,
            to_ms,
            alarm_ms,
            summary,
            quarantine: self.spec.quarantine,
            evidence,
        }
    }
}

/// One rule's state on one logger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Machine {
    Limit(limit::LimitState),
    Rate(signals::RateState),
    Gap,
    Shock(signals::ShockState),
    Swings(signals::SwingState),
    Mkt(mkt::MktState),
    Dwell(signals::DwellState),
}

impl Machine {
    fn new(spec: &RuleSpec) -> Machine {
        match &spec.kind {
            RuleKind::Limit(_) => Machine::Limit(Default::default()),
            RuleKind::RateOfChange { .. } => Machine::Rate(Default::default()),
            RuleKind::MissingData => Machine::Gap,
            RuleKind::Shock { .. } => Machine::Shock(Default::default()),
            RuleKind::ReeferSwings { .. } => Machine::Swings(Default::default()),
            RuleKind::Mkt { .. } => Machine::Mkt(Default::default()),
            RuleKind::Dwell { .. } => Machine::Dwell(Default::default()),
        }
    }

    fn span(&mut self, cx: &Ctx<'_>, s: &Span<'_>, out: &mut Vec<Finding>) {
        match (self, &cx.spec.kind) {
            (Machine::Limit(m), RuleKind::Limit(rule)) => m.span(cx, rule, s, out),
            (
                Machine::Rate(m),
                RuleKind::RateOfChange {
                    delta_c,
                    within_min,
                    direction,
                },
            ) => m.span(cx, (*delta_c, *within_min, *direction), s, out),
            (Machine::Gap, _) => {}
            (
                Machine::Shock(m),
                RuleKind::Shock {
                    limit_g,
                    merge_within_min,
                },
            ) => m.span(cx, *limit_g, *merge_within_min, s, out),
            (
                Machine::Swings(m),
                RuleKind::ReeferSwings {
                    swing_c,
                    min_duration_min,
                    max_between_min,
                },
            ) => m.span(cx, (*swing_c, *min_duration_min, *max_between_min), s, out),
            (
                Machine::Mkt(m),
                RuleKind::Mkt {
                    limit_c,
                    window_h,
                    delta_h_over_r_k,
                },
            ) => m.span(cx, (*limit_c, *window_h, *delta_h_over_r_k), s, out),
            (
                Machine::Dwell(m),
                RuleKind::Dwell {
                    radius_m,
                    max_stop_min,
                },
            ) => m.span(cx, *radius_m, *max_stop_min, s, out),
            _ => unreachable!("machines are built from their own rule"),
        }
    }

    /// No data from `from_ms` (the end of the last reading's interval) to
    /// `to_ms`; `last`/`next` are the readings around the silence.
    fn gap(
        &mut self,
        cx: &Ctx<'_>,
        last: (i64, &Evidence),
        next: (i64, &Evidence),
        out: &mut Vec<Finding>,
    ) {
        let from_ms = last.0 + cx.heartbeat_ms;
        match (self, &cx.spec.kind) {
            (Machine::Limit(m), RuleKind::Limit(rule)) => m.gap(cx, rule, from_ms, out),
            (Machine::Rate(m), _) => m.gap(cx, out),
            (Machine::Gap, _) => {
                let mut ev = EvidenceList::default();
                ev.push(last.1);
                ev.push(next.1);
                out.push(cx.finding(
                    last.0,
                    next.0,
                    from_ms,
                    format!(
                        "no reading for {}, {} (heartbeat {})",
                        crate::explain::duration(next.0 - last.0),
                        crate::explain::range(last.0, next.0),
                        crate::explain::duration(cx.heartbeat_ms)
                    ),
                    ev.take(),
                ))
            }
            (Machine::Shock(m), RuleKind::Shock { limit_g, .. }) => m.close(cx, *limit_g, out),
            (Machine::Swings(m), RuleKind::ReeferSwings { swing_c, .. }) => {
                m.close(cx, *swing_c, out)
            }
            (Machine::Mkt(_), _) => {}
            (Machine::Dwell(m), RuleKind::Dwell { radius_m, .. }) => {
                m.close(cx, *radius_m, from_ms, out)
            }
            _ => unreachable!("machines are built from their own rule"),
        }
    }

    /// An alarm still open at `as_of` (already fed up to it).
    fn ongoing(&self, cx: &Ctx<'_>, as_of: i64) -> Option<Finding> {
        match (self, &cx.spec.kind) {
            (Machine::Limit(m), RuleKind::Limit(rule)) => m.ongoing(cx, rule, as_of),
            (Machine::Swings(m), RuleKind::ReeferSwings { swing_c, .. }) => {
                m.ongoing(cx, *swing_c, as_of)
            }
            (Machine::Dwell(m), RuleKind::Dwell { radius_m, .. }) => {
                m.ongoing(cx, *radius_m, as_of)
            }
            _ => None,
        }
    }
}

/// `Reading` as persisted with a logger's state (the ledger's own type stays
/// free of serde).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Stored {
    time_ms: i64,
    temp_centi_c: i32,
    humidity_permille: Option<u16>,
    shock_centi_g: Option<u16>,
    door_open: Option<bool>,
    light_lux: Option<u32>,
    location: Option<(i32, i32)>,
    battery_mv: Option<u16>,
    defrost: bool,
}

impl From<&Reading> for Stored {
    fn from(r: &Reading) -> Stored {
        Stored {
            time_ms: r.time_ms,
            temp_centi_c: r.temp_centi_c,
            humidity_permille: r.humidity_permille,
            shock_centi_g: r.shock_centi_g,
            door_open: r.door_open,
            light_lux: r.light_lux,
            location: r.location.map(|p| (p.lat_e7, p.lon_e7)),
            battery_mv: r.battery_mv,
            defrost: r.defrost,
        }
    }
}

impl From<Stored> for Reading {
    fn from(s: Stored) -> Reading {
        Reading {
            time_ms: s.time_ms,
            temp_centi_c: s.temp_centi_c,
            humidity_permille: s.humidity_permille,
            shock_centi_g: s.shock_centi_g,
            door_open: s.door_open,
            light_lux: s.light_lux,
            location: s
                .location
                .map(|(lat_e7, lon_e7)| ledger::reading::GeoPoint { lat_e7, lon_e7 }),
            battery_mv: s.battery_mv,
            defrost: s.defrost,
        }
    }
}

/// A logger's rule state: everything needed to judge its next reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEval {
    pub device: String,
    /// The profile this state was built for.
    pub profile: String,
    last: Option<(Stored, Evidence)>,
    machines: Vec<Machine>,
    /// Readings not judged because their time did not move forward.
    pub out_of_order: u64,
    /// Readings judged.
    pub judged: u64,
    /// Temperature rules pause until then (defrost masking).
    #[serde(default)]
    mask_until_ms: i64,
}

impl DeviceEval {
    pub fn new(device: &str, profile: &Profile) -> DeviceEval {
        DeviceEval {
            device: device.to_string(),
            profile: profile.name.clone(),
            last: None,
            machines: profile.rules.iter().map(Machine::new).collect(),
            out_of_order: 0,
            judged: 0,
            mask_until_ms: i64::MIN,
        }
    }

    /// Whether this state was built for `profile`'s rules as they are now.
    pub fn fits(&self, profile: &Profile) -> bool {
        self.profile == profile.name
            && self.machines.len() == profile.rules.len()
            && self.machines.iter().zip(&profile.rules).all(|(m, spec)| {
                std::mem::discriminant(m) == std::mem::discriminant(&Machine::new(spec))
            })
    }

    /// The time of the last reading judged or pending.
    pub fn last_time_ms(&self) -> Option<i64> {
        self.last.as_ref().map(|(r, _)| r.time_ms)
    }

    /// Takes the logger's next reading (in its sequence order), appending to
    /// `out` every breach that this reading completes.
    pub fn push(
        &mut self,
        profile: &Profile,
        reading: &Reading,
        evidence: &Evidence,
        out: &mut Vec<Finding>,
    ) {
        debug_assert_eq!(profile.name, self.profile);
        let hb = profile.heartbeat_ms();
        if let Some((prev, prev_ev)) = &self.last {
            let prev = &Reading::from(*prev);
            if reading.time_ms <= prev.time_ms {
                self.out_of_order += 1;
                return;
            }
            let span = Span {
                reading: prev,
                evidence: prev_ev,
                from_ms: prev.time_ms,
                to_ms: reading.time_ms.min(prev.time_ms + hb),
            };
            let masked = profile.defrost_mask_min > 0.0
                && (prev.defrost || prev.time_ms < self.mask_until_ms);
            for (m, spec) in self.machines.iter_mut().zip(&profile.rules) {
                let cx = Ctx {
                    spec,
                    device: &self.device,
                    heartbeat_ms: hb,
                };
                if !(masked && spec.kind.reads_temperature()) {
                    m.span(&cx, &span, out);
                }
                if reading.time_ms > prev.time_ms + hb {
                    m.gap(
                        &cx,
                        (prev.time_ms, prev_ev),
                        (reading.time_ms, evidence),
                        out,
                    );
                }
            }
        }
        self.judged += 1;
        if reading.defrost {
            self.mask_until_ms =
                reading.time_ms + crate::profile::minutes_ms(profile.defrost_mask_min);
        }
        self.last = Some((Stored::from(reading), evidence.clone()));
    }

    /// Breaches still open at `as_of`: excursions past their alarm whose end
    /// is not known yet, and a silence longer than the heartbeat (judged on
    /// time passing, not on the arrival of a reading). Their `to_ms` is `as_of`.
    pub fn ongoing(&self, profile: &Profile, as_of: i64) -> Vec<Finding> {
        let Some((prev, prev_ev)) = &self.last else {
            return Vec::new();
        };
        let prev = &Reading::from(*prev);
        if as_of <= prev.time_ms {
            return Vec::new();
        }
        let hb = profile.heartbeat_ms();
        let mut machines = self.machines.clone();
        let mut closed = Vec::new();
        let mut out = Vec::new();
        let span = Span {
            reading: prev,
            evidence: prev_ev,
            from_ms: prev.time_ms,
            to_ms: as_of.min(prev.time_ms + hb),
        };
        for (m, spec) in machines.iter_mut().zip(&profile.rules) {
            let cx = Ctx {
                spec,
                device: &self.device,
                heartbeat_ms: hb,
            };
            m.span(&cx, &span, &mut closed);
            if as_of > prev.time_ms + hb {
                if matches!(m, Machine::Gap) {
                    out.push(cx.finding(
                        prev.time_ms,
                        as_of,
                        prev.time_ms + hb,
                        format!(
                            "no reading since {} ({} so far; heartbeat {})",
                            crate::explain::moment(prev.time_ms),
                            crate::explain::duration(as_of - prev.time_ms),
                            crate::explain::duration(hb)
                        ),
                        vec![prev_ev.clone()],
                    ));
                } else {
                    // A silence past the heartbeat ends excursions, as a gap does.
                    m.gap(&cx, (prev.time_ms, prev_ev), (as_of, prev_ev), &mut closed);
                }
            } else if let Some(f) = m.ongoing(&cx, as_of) {
                out.push(f);
            }
        }
        // Excursions the trailing interval completed are ended, not ongoing.
        for mut f in closed {
            f.summary.push_str(" (ended by silence; not yet final)");
            out.push(f);
        }
        out
    }
}

#[cfg(test)]
mod tests;
