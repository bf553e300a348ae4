//! Mean kinetic temperature (USP <1079>): the single temperature that would
//! degrade a product as much as the varying one did.
//!
//! MKT = (ΔH/R) / −ln( Σ wᵢ·exp(−ΔH/(R·Tᵢ)) / Σ wᵢ ), T in kelvin, weights
//! the time each reading stands for.

use serde::{Deserialize, Serialize};

use super::{Ctx, EvidenceList, Finding, Span};
use crate::explain;

pub use crate::profile::DEFAULT_DELTA_H_OVER_R_K;
const KELVIN: f64 = 273.15;

/// MKT in °C of `(°C, weight)` samples; `None` without positive weight.
pub fn mkt_c(samples: impl IntoIterator<Item = (f64, f64)>, delta_h_over_r_k: f64) -> Option<f64> {
    let mut acc = MktSum::default();
    for (t, w) in samples {
        acc.add(t, w, delta_h_over_r_k);
    }
    acc.mkt_c(delta_h_over_r_k)
}

/// A running Σ wᵢ·exp(−ΔH/(R·Tᵢ)) and Σ wᵢ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MktSum {
    weighted: f64,
    weight: f64,
}

impl MktSum {
    pub fn add(&mut self, temp_c: f64, weight: f64, delta_h_over_r_k: f64) {
        self.weighted += weight * (-delta_h_over_r_k / (temp_c + KELVIN)).exp();
        self.weight += weight;
    }

    pub fn mkt_c(&self, delta_h_over_r_k: f64) -> Option<f64> {
        (self.weight > 0.0).then(|| delta_h_over_r_k / -(self.weighted / self.weight).ln() - KELVIN)
    }
}

/// One UTC-aligned window's sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MktState {
    window_start_ms: Option<i64>,
    sum: MktSum,
    last_ms: i64,
    evidence: EvidenceList,
}

impl MktState {
    pub(crate) fn span(
        &mut self,
        cx: &Ctx<'_>,
        (limit_c, window_h, dhr): (f64, f64, f64),
        s: &Span<'_>,
        out: &mut Vec<Finding>,
    ) {
        let window = ((window_h * 3_600_000.0).round() as i64).max(1);
        let temp = s.reading.temp_c();
        let mut from = s.from_ms;
        while from < s.to_ms {
            let start = from - from.rem_euclid(window);
            if self.window_start_ms.is_some_and(|w| w != start) {
                self.close(cx, limit_c, window, dhr, out);
            }
            self.window_start_ms = Some(start);
            let to = s.to_ms.min(start + window);
            self.sum.add(temp, (to - from) as f64, dhr);
            self.last_ms = to;
            self.evidence.push(s.evidence);
            from = to;
        }
    }

    fn close(&mut self, cx: &Ctx<'_>, limit_c: f64, window: i64, dhr: f64, out: &mut Vec<Finding>) {
        let Some(start) = self.window_start_ms.take() else {
            return;
        };
        let sum = std::mem::take(&mut self.sum);
        let evidence = self.evidence.take();
        if let Some(m) = sum.mkt_c(dhr) {
            if m > limit_c {
                out.push(cx.finding(
                    start,
                    self.last_ms,
                    start + window,
                    format!(
                        "mean kinetic temperature {m:.2} °C over {}, {} (limit {} °C)",
                        explain::duration(window),
                        explain::range(start, self.last_ms),
                        explain::trim(limit_c)
                    ),
                    evidence,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn equal(temps: &[f64]) -> f64 {
        mkt_c(temps.iter().map(|t| (*t, 1.0)), DEFAULT_DELTA_H_OVER_R_K).unwrap()
    }

    #[test]
    fn matches_the_rules_md_vectors() {
        let close = |a: f64, b: f64| (a - b).abs() < 5e-5;
        assert!(
            close(equal(&[2.0, 2.0, 5.0, 8.0, 8.0, 8.0, 8.0]), 6.2503),
            "{}",
            equal(&[2.0, 2.0, 5.0, 8.0, 8.0, 8.0, 8.0])
        );
        assert!(close(equal(&[20.0, 30.0]), 26.2599));
        assert!(close(equal(&[2.0, 8.0]), 5.5364));
        // "23 × 5 and 1 × 25": 23 readings of 5 °C and one of 25 °C.
        let mut v = vec![5.0; 23];
        v.push(25.0);
        assert!(close(equal(&v), 7.7564));
        assert!((v.iter().sum::<f64>() / 24.0 - 5.8333).abs() < 5e-5);
        for x in [-20.0, 0.0, 5.0, 25.0, 40.0] {
            assert!(close(equal(&[x, x, x]), x));
        }
    }

    #[test]
    fn time_weights_count_like_repeated_readings() {
        let a = mkt_c([(2.0, 3.0), (8.0, 1.0)], DEFAULT_DELTA_H_OVER_R_K).unwrap();
        let b = equal(&[2.0, 2.0, 2.0, 8.0]);
        assert!((a - b).abs() < 1e-9);
    }
}
