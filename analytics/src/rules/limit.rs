//! Threshold rules: instant, consecutive with a delay, cumulative; strict or
//! inclusive; with deadband and clear delay.

use serde::{Deserialize, Serialize};

use super::{Ctx, EvidenceList, Finding, Span};
use crate::explain;
use crate::profile::{minutes_ms, Comparison, Direction, LimitRule, Quantity, Timing};

/// An excursion beyond the limit that has not ended yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Excursion {
    start_ms: i64,
    /// Time beyond the limit (or inside the deadband) so far.
    beyond_ms: i64,
    alarm_ms: Option<i64>,
    /// Furthest value beyond the limit (scaled).
    peak: i64,
    /// End of the last interval that counted as beyond.
    last_beyond_end: i64,
    /// Back in range since then, waiting out the clear delay.
    clearing_since: Option<i64>,
    evidence: EvidenceList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LimitState {
    exc: Option<Excursion>,
    /// Cumulative: time beyond so far, never reset.
    total_ms: i64,
    first_ms: Option<i64>,
    spells: u32,
    in_spell: bool,
    fired: bool,
    peak: Option<i64>,
    evidence: EvidenceList,
}

/// A configured number in scaled units, snapped to the integer grid when it
/// is on it (so `0.1 °C` is exactly 10 hundredths, not 10.000000000000002).
fn scaled(x: f64, q: Quantity) -> f64 {
    let v = x * q.scale();
    if (v - v.round()).abs() < 1e-6 {
        v.round()
    } else {
        v
    }
}

impl LimitRule {
    fn beyond(&self, v: i64) -> bool {
        let (v, l) = (v as f64, scaled(self.limit, self.quantity));
        match (self.direction, self.comparison) {
            (Direction::Above, Comparison::Strict) => v > l,
            (Direction::Above, Comparison::Inclusive) => v >= l,
            (Direction::Below, Comparison::Strict) => v < l,
            (Direction::Below, Comparison::Inclusive) => v <= l,
        }
    }

    /// Back in range past the deadband (or simply not beyond, without one).
    fn cleared(&self, v: i64) -> bool {
        if self.deadband <= 0.0 {
            return !self.beyond(v);
        }
        let d = scaled(self.deadband, self.quantity);
        let l = scaled(self.limit, self.quantity);
        match self.direction {
            Direction::Above => (v as f64) < l - d,
            Direction::Below => (v as f64) > l + d,
        }
    }

    fn further(&self, a: i64, b: i64) -> i64 {
        match self.direction {
            Direction::Above => a.max(b),
            Direction::Below => a.min(b),
        }
    }

    fn words(&self) -> String {
        let dir = match (self.direction, self.comparison) {
            (Direction::Above, Comparison::Strict) => "above",
            (Direction::Above, Comparison::Inclusive) => "at or above",
            (Direction::Below, Comparison::Strict) => "below",
            (Direction::Below, Comparison::Inclusive) => "at or below",
        };
        format!("{dir} {}", explain::limit(self.quantity, self.limit))
    }
}

impl LimitState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        rule: &LimitRule,
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let Some(v) = rule.quantity.of(s.reading) else {
            // Without the quantity, this interval is a gap for the rule.
            self.gap(cx, rule, s.from_ms, out);
            return;
        };
        if let Timing::Cumulative { total_min } = rule.timing {
            self.cumulative(cx, rule, minutes_ms(total_min), v, s, out);
            return;
        }
        if let Some(exc) = &mut self.exc {
            match exc.clearing_since {
                Some(_) if rule.beyond(v) => {
                    // Beyond again within the clear delay: the excursion goes on.
                    exc.clearing_since = None;
                }
                Some(since) => {
                    if s.to_ms - since >= minutes_ms(rule.clear_delay_min) {
                        self.close(cx, rule, since, out);
                    }
                    return;
                }
                None if rule.cleared(v) => {
                    if rule.clear_delay_min <= 0.0 {
                        self.close(cx, rule, s.from_ms, out);
                    } else {
                        exc.clearing_since = Some(s.from_ms);
                        if s.to_ms - s.from_ms >= minutes_ms(rule.clear_delay_min) {
                            self.close(cx, rule, s.from_ms, out);
                        }
                    }
                    return;
                }
                None => {}
            }
        } else if rule.beyond(v) {
            self.exc = Some(Excursion {
                start_ms: s.from_ms,
                beyond_ms: 0,
                alarm_ms: None,
                peak: v,
                last_beyond_end: s.from_ms,
                clearing_since: None,
                evidence: EvidenceList::default(),
            });
        } else {
            return;
        }
        let exc = self.exc.as_mut().expect("an excursion is open here");
        let len = s.to_ms - s.from_ms;
        exc.beyond_ms += len;
        exc.peak = rule.further(exc.peak, v);
        exc.last_beyond_end = s.to_ms;
        exc.evidence.push(s.evidence);
        if exc.alarm_ms.is_none() {
            exc.alarm_ms = match rule.timing {
                Timing::Instant => Some(s.from_ms),
                Timing::Consecutive { delay_min } => {
                    let delay = minutes_ms(delay_min);
                    (exc.beyond_ms >= delay).then(|| s.to_ms - (exc.beyond_ms - delay))
                }
                Timing::Cumulative { .. } => unreachable!("handled above"),
            };
        }
    }

    pub(crate) fn gap(
        &mut self,
        cx: &Ctx<'_>,
        rule: &LimitRule,
        _from_ms: i64,
        out: &mut Vec<Finding>,
    ) {
        self.in_spell = false;
        if let Some(exc) = &self.exc {
            let end = exc.clearing_since.unwrap_or(exc.last_beyond_end);
            self.close(cx, rule, end, out);
        }
    }

    fn close(&mut self, cx: &Ctx<'_>, rule: &LimitRule, end_ms: i64, out: &mut Vec<Finding>) {
        let Some(mut exc) = self.exc.take() else {
            return;
        };
        if let Some(alarm) = exc.alarm_ms {
            out.push(cx.finding(
                exc.start_ms,
                end_ms,
                alarm,
                excursion_words(rule, &exc, end_ms, false),
                exc.evidence.take(),
            ));
        }
    }

    pub(crate) fn ongoing(&self, cx: &Ctx<'_>, rule: &LimitRule, as_of: i64) -> Option<Finding> {
        if let Timing::Cumulative { .. } = rule.timing {
            return None;
        }
        let exc = self.exc.as_ref()?;
        let alarm = exc.alarm_ms?;
        let end = exc.clearing_since.unwrap_or(exc.last_beyond_end).min(as_of);
        Some(cx.finding(
            exc.start_ms,
            end,
            alarm,
            excursion_words(rule, exc, end, true),
            exc.evidence.snapshot(),
        ))
    }

    fn cumulative(
        &mut self,
        cx: &Ctx<'_>,
        rule: &LimitRule,
        total: i64,
        v: i64,
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        if !rule.beyond(v) {
            self.in_spell = false;
            return;
        }
        if !self.in_spell {
            self.in_spell = true;
            self.spells += 1;
        }
        let first = *self.first_ms.get_or_insert(s.from_ms);
        self.total_ms += s.to_ms - s.from_ms;
        self.peak = Some(self.peak.map_or(v, |p| rule.further(p, v)));
        if self.fired {
            return;
        }
        self.evidence.push(s.evidence);
        if self.total_ms >= total {
            self.fired = true;
            let alarm = s.to_ms - (self.total_ms - total);
            let summary = format!(
                "{} for {} in all by {} ({} spell{} since {}; peak {}; limit {} cumulative)",
                rule.words(),
                explain::duration(total),
                explain::moment(alarm),
                self.spells,
                if self.spells == 1 { "" } else { "s" },
                explain::moment(first),
                explain::value(rule.quantity, self.peak.unwrap_or(v)),
                explain::duration(total),
            );
            out.push(cx.finding(first, alarm, alarm, summary, self.evidence.take()));
        }
    }
}

fn excursion_words(rule: &LimitRule, exc: &Excursion, end_ms: i64, ongoing: bool) -> String {
    let alarm = exc.alarm_ms.unwrap_or(exc.start_ms);
    let so_far = if ongoing { " so far" } else { "" };
    if rule.quantity == Quantity::Door {
        return format!(
            "door open for {}{so_far}, {}",
            explain::duration(end_ms - exc.start_ms),
            explain::range(exc.start_ms, end_ms)
        );
    }
    let (continuously, alarm) = match rule.timing {
        Timing::Consecutive { delay_min } => (
            " continuously",
            format!(
                "; alarm at {} after {}",
                explain::moment(alarm),
                explain::duration(minutes_ms(delay_min))
            ),
        ),
        _ => ("", String::new()),
    };
    format!(
        "{} for {}{continuously}{so_far}, {} (peak {}{alarm})",
        rule.words(),
        explain::duration(end_ms - exc.start_ms),
        explain::range(exc.start_ms, end_ms),
        explain::value(rule.quantity, exc.peak),
    )
}
