//! Rules on the shape of a signal rather than a threshold: rate of change,
//! shocks, reefer start/stop swings, dwell.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Ctx, EvidenceList, Finding, Span};
use crate::explain;
use crate::profile::{minutes_ms, Change};

/// A run of triggers merged into one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    from_ms: i64,
    last_ms: i64,
    count: u32,
    /// Largest magnitude seen (rise or drop in 0.01 °C; shock in 0.01 g).
    peak: i64,
    evidence: EvidenceList,
}

impl Run {
    /// Adds a trigger at `t` of `magnitude` to the open run, or opens one.
    fn note(run: &mut Option<Run>, t: i64, magnitude: i64, evidence: &super::Evidence) {
        let run = run.get_or_insert_with(|| Run {
            from_ms: t,
            last_ms: t,
            count: 0,
            peak: 0,
            evidence: EvidenceList::default(),
        });
        run.last_ms = t;
        run.count += 1;
        if magnitude.abs() > run.peak.abs() {
            run.peak = magnitude;
        }
        run.evidence.push(evidence);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RateState {
    /// (time, 0.01 °C) of the readings within the window before the current one.
    window: VecDeque<(i64, i32)>,
    run: Option<Run>,
}

impl RateState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        (delta_c, within_min, direction): (f64, f64, Change),
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let within = minutes_ms(within_min);
        let t = s.from_ms;
        let v = s.reading.temp_centi_c;
        if let Some(run) = &self.run {
            if t - run.last_ms > within {
                self.close(cx, out);
            }
        }
        while self.window.front().is_some_and(|(t0, _)| t - t0 > within) {
            self.window.pop_front();
        }
        let limit = (delta_c * 100.0).round() as i64;
        let change = self
            .window
            .iter()
            .map(|(_, w)| i64::from(v) - i64::from(*w))
            .filter(|d| match direction {
                Change::Rise => *d > 0,
                Change::Drop => *d < 0,
                Change::Both => true,
            })
            .max_by_key(|d| d.abs())
            .unwrap_or(0);
        if change.abs() > limit {
            Run::note(&mut self.run, t, change, s.evidence);
        }
        self.window.push_back((t, v));
        // The next reading is past the window: nothing can join this run.
        if self
            .run
            .as_ref()
            .is_some_and(|r| s.to_ms - r.last_ms > within)
        {
            self.close(cx, out);
        }
    }

    pub(crate) fn gap(&mut self, cx: &Ctx<'_>, out: &mut Vec<Finding>) {
        self.close(cx, out);
        self.window.clear();
    }

    fn close(&mut self, cx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if let Some(mut run) = self.run.take() {
            let dir = if run.peak > 0 { "rose" } else { "dropped" };
            let within = match cx.spec.kind {
                crate::profile::RuleKind::RateOfChange { within_min, .. } => minutes_ms(within_min),
                _ => unreachable!("a rate state belongs to a rate-of-change rule"),
            };
            out.push(cx.finding(
                run.from_ms,
                run.last_ms,
                run.from_ms,
                format!(
                    "temperature {dir} {:.2} °C within {}, {}",
                    run.peak.abs() as f64 / 100.0,
                    explain::duration(within),
                    if run.from_ms == run.last_ms {
                        explain::moment(run.from_ms)
                    } else {
                        explain::range(run.from_ms, run.last_ms)
                    }
                ),
                run.evidence.take(),
            ));
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShockState {
    run: Option<Run>,
}

impl ShockState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        limit_g: f64,
        merge_within_min: f64,
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let t = s.from_ms;
        if let Some(run) = &self.run {
            if t - run.last_ms > minutes_ms(merge_within_min) {
                self.close(cx, limit_g, out);
            }
        }
        let Some(g) = s.reading.shock_centi_g else {
            return;
        };
        if f64::from(g) > limit_g * 100.0 {
            Run::note(&mut self.run, t, i64::from(g), s.evidence);
        }
        // The next reading is past the merge window: nothing can join this run.
        if self
            .run
            .as_ref()
            .is_some_and(|r| s.to_ms - r.last_ms > minutes_ms(merge_within_min))
        {
            self.close(cx, limit_g, out);
        }
    }

    pub(crate) fn close(&mut self, cx: &Ctx<'_>, limit_g: f64, out: &mut Vec<Finding>) {
        if let Some(mut run) = self.run.take() {
            let summary = if run.count == 1 {
                format!(
                    "a shock of {:.2} g at {} (limit {} g)",
                    run.peak as f64 / 100.0,
                    explain::moment(run.from_ms),
                    explain::trim(limit_g)
                )
            } else {
                format!(
                    "{} shocks up to {:.2} g, {} (limit {} g)",
                    run.count,
                    run.peak as f64 / 100.0,
                    explain::range(run.from_ms, run.last_ms),
                    explain::trim(limit_g)
                )
            };
            out.push(cx.finding(
                run.from_ms,
                run.last_ms,
                run.from_ms,
                summary,
                run.evidence.take(),
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Trend {
    Up,
    Down,
}

/// Zig-zag over the temperature: a reversal is confirmed once the value
/// moves back from the last extreme by more than the swing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SwingState {
    trend: Option<Trend>,
    /// Lowest and highest since the start (before a trend is known).
    lo: Option<(i64, i32)>,
    hi: Option<(i64, i32)>,
    /// The current extreme in the trend's direction.
    extreme: Option<(i64, i32)>,
    run_from_ms: i64,
    run_last_ms: i64,
    reversals: u32,
    alarmed: bool,
    evidence: EvidenceList,
}

impl SwingState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        (swing_c, min_duration_min, max_between_min): (f64, f64, f64),
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let (t, v) = (s.from_ms, s.reading.temp_centi_c);
        let swing = (swing_c * 100.0).round() as i32;
        let max_between = minutes_ms(max_between_min);
        if self.reversals > 0 && t - self.run_last_ms > max_between {
            self.close(cx, swing_c, out);
        }
        let reversal = match (self.trend, self.extreme) {
            (None, _) => {
                let lo = *self.lo.get_or_insert((t, v));
                let hi = *self.hi.get_or_insert((t, v));
                if v < lo.1 {
                    self.lo = Some((t, v));
                }
                if v > hi.1 {
                    self.hi = Some((t, v));
                }
                if v - lo.1 > swing {
                    self.trend = Some(Trend::Up);
                    self.extreme = Some((t, v));
                } else if hi.1 - v > swing {
                    self.trend = Some(Trend::Down);
                    self.extreme = Some((t, v));
                }
                None
            }
            (Some(Trend::Up), Some((et, ev))) => {
                if v >= ev {
                    self.extreme = Some((t, v));
                    None
                } else if ev - v > swing {
                    self.trend = Some(Trend::Down);
                    self.extreme = Some((t, v));
                    Some(et)
                } else {
                    None
                }
            }
            (Some(Trend::Down), Some((et, ev))) => {
                if v <= ev {
                    self.extreme = Some((t, v));
                    None
                } else if v - ev > swing {
                    self.trend = Some(Trend::Up);
                    self.extreme = Some((t, v));
                    Some(et)
                } else {
                    None
                }
            }
            (Some(_), None) => unreachable!("a trend always has an extreme"),
        };
        if let Some(at) = reversal {
            if self.reversals == 0 {
                self.run_from_ms = at;
            }
            self.reversals += 1;
            self.run_last_ms = at;
            self.evidence.push(s.evidence);
            if self.run_last_ms - self.run_from_ms >= minutes_ms(min_duration_min) {
                self.alarmed = true;
            }
        }
    }

    pub(crate) fn close(&mut self, cx: &Ctx<'_>, swing_c: f64, out: &mut Vec<Finding>) {
        if self.alarmed {
            out.push(self.finding(cx, swing_c, false));
        }
        self.reversals = 0;
        self.alarmed = false;
        self.evidence = EvidenceList::default();
    }

    pub(crate) fn ongoing(&self, cx: &Ctx<'_>, swing_c: f64, _as_of: i64) -> Option<Finding> {
        self.alarmed.then(|| self.finding(cx, swing_c, true))
    }

    fn finding(&self, cx: &Ctx<'_>, swing_c: f64, ongoing: bool) -> Finding {
        let alarm = match cx.spec.kind {
            crate::profile::RuleKind::ReeferSwings {
                min_duration_min, ..
            } => self.run_from_ms + minutes_ms(min_duration_min),
            _ => self.run_last_ms,
        };
        cx.finding(
            self.run_from_ms,
            self.run_last_ms,
            alarm.min(self.run_last_ms),
            format!(
                "temperature swinging by more than {} °C{}: {} reversals in {}, {} (a reefer starting and stopping)",
                explain::trim(swing_c),
                if ongoing { ", still" } else { "" },
                self.reversals,
                explain::duration(self.run_last_ms - self.run_from_ms),
                explain::range(self.run_from_ms, self.run_last_ms)
            ),
            self.evidence.snapshot(),
        )
    }
}

/// Great-circle distance in metres (haversine; plenty for hundreds of metres).
fn distance_m(a: ledger::reading::GeoPoint, b: ledger::reading::GeoPoint) -> f64 {
    let (la1, lo1) = (
        f64::from(a.lat_e7) * 1e-7_f64.to_radians(),
        f64::from(a.lon_e7) * 1e-7_f64.to_radians(),
    );
    let (la2, lo2) = (
        f64::from(b.lat_e7) * 1e-7_f64.to_radians(),
        f64::from(b.lon_e7) * 1e-7_f64.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DwellState {
    /// Where and since when the logger has stayed within the radius.
    anchor: Option<(i64, i32, i32)>,
    /// End of the last interval spent there.
    until_ms: i64,
    alarmed: bool,
    evidence: EvidenceList,
}

impl DwellState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        radius_m: f64,
        max_stop_min: f64,
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let Some(p) = s.reading.location else {
            self.close(cx, radius_m, s.from_ms, out);
            return;
        };
        if let Some((_, lat, lon)) = self.anchor {
            let a = ledger::reading::GeoPoint {
                lat_e7: lat,
                lon_e7: lon,
            };
            if distance_m(a, p) > radius_m {
                self.close(cx, radius_m, s.from_ms, out);
            }
        }
        let (since, _, _) = *self.anchor.get_or_insert((s.from_ms, p.lat_e7, p.lon_e7));
        self.until_ms = s.to_ms;
        self.evidence.push(s.evidence);
        if self.until_ms - since >= minutes_ms(max_stop_min) {
            self.alarmed = true;
        }
    }

    /// Ends a stop; it lasted until the end of the last interval spent there.
    pub(crate) fn close(
        &mut self,
        cx: &Ctx<'_>,
        radius_m: f64,
        _end_ms: i64,
        out: &mut Vec<Finding>,
    ) {
        if self.alarmed {
            out.push(self.finding(cx, radius_m, self.until_ms, false));
        }
        self.anchor = None;
        self.alarmed = false;
        self.evidence = EvidenceList::default();
    }

    pub(crate) fn ongoing(&self, cx: &Ctx<'_>, radius_m: f64, as_of: i64) -> Option<Finding> {
        self.alarmed
            .then(|| self.finding(cx, radius_m, self.until_ms.min(as_of), true))
    }

    fn finding(&self, cx: &Ctx<'_>, radius_m: f64, end_ms: i64, ongoing: bool) -> Finding {
        let (since, lat, lon) = self.anchor.expect("an alarmed dwell has an anchor");
        let max_stop = match cx.spec.kind {
            crate::profile::RuleKind::Dwell { max_stop_min, .. } => minutes_ms(max_stop_min),
            _ => 0,
        };
        cx.finding(
            since,
            end_ms,
            since + max_stop,
            format!(
                "stopped within {} m of {:.4}, {:.4} for {}{}, {}",
                explain::trim(radius_m),
                f64::from(lat) * 1e-7,
                f64::from(lon) * 1e-7,
                explain::duration(end_ms - since),
                if ongoing { " so far" } else { "" },
                explain::range(since, end_ms)
            ),
            self.evidence.snapshot(),
        )
    }
}
