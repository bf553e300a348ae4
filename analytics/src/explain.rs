//! The words verdicts are written in: durations, times and values a QA
//! manager reads without a legend. Times are UTC and say so.

use chrono::{DateTime, Utc};

use crate::quantity::Quantity;

/// "10 h 12 min", "45 min", "40 s": whole units, largest two.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// "03:10 on 3 Nov 2026 UTC".
pub fn moment(ms: i64) -> String {
    at(ms).format("%H:%M on %-d %b %Y UTC").to_string()
}

/// "03:10–13:22 on 3 Nov 2026 UTC", or with both dates when they differ.
pub fn range(from_ms: i64, to_ms: i64) -> String {
    let (a, b) = (at(from_ms), at(to_ms));
    if a.date_naive() == b.date_naive() {
        format!(
            "{}–{} on {}",
            a.format("%H:%M"),
            b.format("%H:%M"),
            a.format("%-d %b %Y UTC")
        )
    } else {
        format!(
            "{} – {}",
            a.format("%H:%M on %-d %b"),
            b.format("%H:%M on %-d %b %Y UTC")
        )
    }
}

/// A scaled value in display units: "8.12 °C", "55.0 %RH".
pub fn value(quantity: Quantity, scaled: i64) -> String {
    match quantity {
        Quantity::Temperature => format!("{:.2} °C", scaled as f64 / 100.0),
        Quantity::Humidity => format!("{:.1} %RH", scaled as f64 / 10.0),
        Quantity::Door => if scaled > 0 { "open" } else { "closed" }.to_string(),
    }
}

/// A configured limit in display units, trimmed: "8 °C", "-0.5 °C", "70 %RH".
pub fn limit(quantity: Quantity, limit: f64) -> String {
    format!("{}{}", trim(limit), quantity.unit())
}

/// A number without trailing zeros: 8, -0.5, 2.25.
pub fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(40_000), "40 s");
        assert_eq!(duration(45 * 60_000), "45 min");
        assert_eq!(duration(10 * 3_600_000 + 12 * 60_000), "10 h 12 min");
        assert_eq!(duration(2 * 3_600_000), "2 h");
        assert_eq!(duration(49 * 3_600_000), "2 d 1 h");
    }

    #[test]
    fn ranges_name_the_day_once_when_they_can() {
        // 2026-11-03T03:10Z .. 13:22Z
        let from = 1_793_675_400_000;
        assert_eq!(
            range(from, from + 36_720_000),
            "03:10–13:22 on 3 Nov 2026 UTC"
        );
        assert_eq!(
            range(from, from + 86_400_000),
            "03:10 on 3 Nov – 03:10 on 4 Nov 2026 UTC"
        );
        assert_eq!(limit(Quantity::Temperature, -0.5), "-0.5 °C");
        assert_eq!(limit(Quantity::Temperature, 8.0), "8 °C");
    }
}
