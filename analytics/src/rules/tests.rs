//! Each time semantic of RULES.md on a hand-made stream.

use ledger::reading::{GeoPoint, Reading};

use super::*;
use crate::profile::*;

const MIN: i64 = 60_000;
/// 2026-11-03T00:00:00Z
const T0: i64 = 1_793_664_000_000;

fn profile(rule: RuleKind) -> Profile {
    Profile {
        name: "test".into(),
        description: String::new(),
        heartbeat_min: 60.0,
        defrost_mask_min: 0.0,
        rules: vec![RuleSpec {
            name: "r".into(),
            kind: rule,
            quarantine: false,
        }],
    }
}

fn limit(direction: Direction, limit: f64, comparison: Comparison, timing: Timing) -> RuleKind {
    RuleKind::Limit(LimitRule {
        quantity: Quantity::Temperature,
        direction,
        limit,
        comparison,
        timing,
        deadband: 0.0,
        clear_delay_min: 0.0,
    })
}

fn consecutive(l: f64, delay_min: f64) -> RuleKind {
    limit(
        Direction::Above,
        l,
        Comparison::Strict,
        Timing::Consecutive { delay_min },
    )
}

fn ev(i: u64) -> Evidence {
    Evidence {
        shard: 0,
        index: i,
        id: [0; 32],
    }
}

/// Runs (minute, °C) readings through a fresh evaluator.
fn run(p: &Profile, stream: &[(i64, f64)]) -> (DeviceEval, Vec<Finding>) {
    let readings: Vec<Reading> = stream
        .iter()
        .map(|&(m, c)| Reading::new(T0 + m * MIN, (c * 100.0).round() as i32))
        .collect();
    run_readings(p, &readings)
}

fn run_readings(p: &Profile, readings: &[Reading]) -> (DeviceEval, Vec<Finding>) {
    let mut e = DeviceEval::new("logger", p);
    let mut out = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        e.push(p, r, &ev(i as u64), &mut out);
    }
    (e, out)
}

fn mins(f: &Finding) -> (i64, i64, i64) {
    (
        (f.from_ms - T0) / MIN,
        (f.to_ms - T0) / MIN,
        (f.alarm_ms - T0) / MIN,
    )
}

#[test]
fn consecutive_excursion_alarms_once_the_delay_is_reached_and_reports_start_alarm_end() {
    let p = profile(consecutive(8.0, 60.0));
    // In range, then 9 °C from minute 10 to 100, back at 100.
    let mut s: Vec<(i64, f64)> = (0..10).map(|m| (m, 5.0)).collect();
    s.extend((10..100).step_by(5).map(|m| (m, 9.0)));
    s.push((100, 5.0));
    s.push((105, 5.0));
    let (_, out) = run(&p, &s);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(mins(&out[0]), (10, 100, 70));
    assert!(out[0].summary.starts_with("above 8 °C for 1 h 30 min continuously, 00:10–01:40 on 3 Nov 2026 UTC (peak 9.00 °C; alarm at 01:10"), "{}", out[0].summary);
}

#[test]
fn an_excursion_lasting_exactly_the_delay_alarms_and_one_shorter_does_not() {
    let p = profile(consecutive(8.0, 30.0));
    let (_, exact) = run(&p, &[(0, 5.0), (10, 9.0), (40, 5.0), (50, 5.0)]);
    assert_eq!(exact.len(), 1);
    assert_eq!(mins(&exact[0]), (10, 40, 40));
    let (_, short) = run(&p, &[(0, 5.0), (10, 9.0), (39, 5.0), (50, 5.0)]);
    assert!(short.is_empty(), "{short:?}");
}

#[test]
fn strict_and_inclusive_limits_differ_exactly_at_the_limit() {
    let strict = profile(limit(
        Direction::Above,
        8.0,
        Comparison::Strict,
        Timing::Instant,
    ));
    let inclusive = profile(limit(
        Direction::Above,
        8.0,
        Comparison::Inclusive,
        Timing::Instant,
    ));
    let s = [(0, 5.0), (5, 8.0), (10, 5.0), (15, 5.0)];
    assert!(run(&strict, &s).1.is_empty());
    assert_eq!(run(&inclusive, &s).1.len(), 1);
    // A breach is final once the next reading shows it over.
    let s = [(0, 5.0), (5, 8.01), (10, 5.0), (15, 5.0)];
    assert_eq!(run(&strict, &s).1.len(), 1);
    // WHO freeze: at or below -0.5 °C.
    let freeze = profile(limit(
        Direction::Below,
        -0.5,
        Comparison::Inclusive,
        Timing::Instant,
    ));
    assert_eq!(
        run(&freeze, &[(0, 2.0), (5, -0.5), (10, 2.0), (15, 2.0)])
            .1
            .len(),
        1
    );
    assert!(run(&freeze, &[(0, 2.0), (5, -0.49), (10, 2.0), (15, 2.0)])
        .1
        .is_empty());
}

#[test]
fn readings_are_time_weighted_not_counted() {
    let p = profile(consecutive(8.0, 60.0));
    // Two readings beyond: one standing for 55 min, one for 5: 60 min in all.
    let (_, out) = run(&p, &[(0, 9.0), (55, 9.0), (60, 5.0), (70, 5.0)]);
    assert_eq!(out.len(), 1);
    assert_eq!(mins(&out[0]), (0, 60, 60));
    // Many closely spaced readings, 20 minutes: no alarm.
    let s: Vec<(i64, f64)> = (0..20)
        .map(|m| (m, 9.0))
        .chain([(20, 5.0), (30, 5.0)])
        .collect();
    assert!(run(&p, &s).1.is_empty());
}

#[test]
fn returning_into_range_resets_consecutive_but_not_cumulative() {
    // Three 30-minute spells above 5 °C.
    let s: Vec<(i64, f64)> = (0..12)
        .map(|i| (i * 30, if i % 2 == 0 { 7.0 } else { 3.0 }))
        .chain([(360, 3.0)])
        .collect();
    let cons = profile(consecutive(5.0, 60.0));
    assert!(run(&cons, &s).1.is_empty(), "never 60 min in a row");
    let cum = profile(limit(
        Direction::Above,
        5.0,
        Comparison::Strict,
        Timing::Cumulative { total_min: 60.0 },
    ));
    let (_, out) = run(&cum, &s);
    assert_eq!(out.len(), 1, "cumulative fires once: {out:?}");
    // Spells at 0-30 and 60-90: the total reaches 60 min at minute 90.
    assert_eq!(mins(&out[0]), (0, 90, 90));
    assert!(out[0].summary.contains("2 spells"), "{}", out[0].summary);
}

#[test]
fn a_deadband_keeps_the_excursion_open_until_the_value_is_past_it() {
    let mut rule = consecutive(8.0, 30.0);
    if let RuleKind::Limit(l) = &mut rule {
        l.deadband = 0.5;
    }
    let p = profile(rule);
    // 9 °C for 20 min, then 7.8 (inside the deadband) for 20 min, then 7.4.
    let (_, out) = run(&p, &[(0, 9.0), (20, 7.8), (40, 7.4), (50, 7.4)]);
    assert_eq!(out.len(), 1, "deadband time counts: {out:?}");
    assert_eq!(mins(&out[0]), (0, 40, 30));
    // Without the deadband, 20 min beyond is not enough.
    assert!(run(
        &profile(consecutive(8.0, 30.0)),
        &[(0, 9.0), (20, 7.8), (40, 7.4), (50, 7.4)]
    )
    .1
    .is_empty());
}

#[test]
fn a_clear_delay_bridges_short_returns_into_range() {
    let mut rule = consecutive(8.0, 40.0);
    if let RuleKind::Limit(l) = &mut rule {
        l.clear_delay_min = 15.0;
    }
    let p = profile(rule);
    // 25 min beyond, 10 min back in range, 25 min beyond again, then back for good.
    let s = [(0, 9.0), (25, 5.0), (35, 9.0), (60, 5.0), (80, 5.0)];
    let (_, out) = run(&p, &s);
    assert_eq!(out.len(), 1, "{out:?}");
    // 40 min beyond reached at minute 50; ended when it came back at 60.
    assert_eq!(mins(&out[0]), (0, 60, 50));
    // Without a clear delay the dip resets the count.
    assert!(run(&profile(consecutive(8.0, 40.0)), &s).1.is_empty());
}

#[test]
fn a_gap_longer_than_the_heartbeat_breaks_continuity_and_is_missing_data() {
    let mut p = Profile {
        rules: vec![
            RuleSpec {
                name: "heat".into(),
                kind: consecutive(8.0, 60.0),
                quarantine: false,
            },
            RuleSpec {
                name: "missing".into(),
                kind: RuleKind::MissingData,
                quarantine: false,
            },
        ],
        ..profile(RuleKind::MissingData)
    };
    // With a 90-minute delay: 70 min beyond (the last reading before the
    // silence stands for the 60-minute heartbeat), 90 min of silence, 40 min
    // beyond: never 90 min continuously.
    p.rules[0].kind = consecutive(8.0, 90.0);
    let s = [
        (0, 9.0),
        (10, 9.0),
        (100, 9.0),
        (120, 9.0),
        (140, 5.0),
        (150, 5.0),
    ];
    let (_, out) = run(&p, &s);
    let rules: Vec<&str> = out.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["missing"], "{out:?}");
    assert_eq!(mins(&out[0]), (10, 100, 70));
    assert!(
        out[0].summary.starts_with("no reading for 1 h 30 min"),
        "{}",
        out[0].summary
    );
    // The last reading before the gap stands for the heartbeat, no more: with
    // a 30-minute delay, 40 + 20 (capped) minutes is one excursion, then a new one.
    let p30 = profile(consecutive(8.0, 30.0));
    let (_, out) = run(
        &p30,
        &[
            (0, 9.0),
            (20, 9.0),
            (110, 9.0),
            (130, 9.0),
            (150, 5.0),
            (160, 5.0),
        ],
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(mins(&out[0]), (0, 80, 30));
    assert_eq!(mins(&out[1]), (110, 150, 140));
}

#[test]
fn time_passing_is_judged_without_a_new_reading() {
    let p = Profile {
        rules: vec![
            RuleSpec {
                name: "heat".into(),
                kind: consecutive(8.0, 30.0),
                quarantine: false,
            },
            RuleSpec {
                name: "missing".into(),
                kind: RuleKind::MissingData,
                quarantine: false,
            },
        ],
        ..profile(RuleKind::MissingData)
    };
    let (e, out) = run(&p, &[(0, 5.0), (10, 9.0), (20, 9.0)]);
    assert!(out.is_empty(), "nothing is final yet");
    // Ten minutes later the excursion has lasted 30 min: an ongoing alarm.
    let now = e.ongoing(&p, T0 + 40 * MIN);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].rule.as_str(), mins(&now[0])),
        ("heat", (10, 40, 40))
    );
    // Two hours later the logger has been silent past its heartbeat: missing
    // data, and the excursion ended when the last reading's interval did.
    let later = e.ongoing(&p, T0 + 140 * MIN);
    let mut rules: Vec<(&str, (i64, i64, i64))> =
        later.iter().map(|f| (f.rule.as_str(), mins(f))).collect();
    rules.sort();
    assert_eq!(rules, [("heat", (10, 80, 40)), ("missing", (20, 140, 80))]);
    // Judging the clock does not change the state.
    assert_eq!(e.ongoing(&p, T0 + 40 * MIN), now);
}

#[test]
fn door_open_is_a_consecutive_rule_on_the_door() {
    let mut p = profile(RuleKind::MissingData);
    p.rules = crate::profile::builtin_profiles()
        .into_iter()
        .find(|p| p.name == "device_health")
        .unwrap()
        .rules;
    let door = |m: i64, open: bool| {
        let mut r = Reading::new(T0 + m * MIN, 500);
        r.door_open = Some(open);
        r
    };
    let mut rs: Vec<Reading> = (0..10).map(|m| door(m, false)).collect();
    rs.extend((10..35).map(|m| door(m, true)));
    rs.extend((35..40).map(|m| door(m, false)));
    // A short unloading: 4 minutes open.
    rs.extend((40..44).map(|m| door(m, true)));
    rs.extend((44..50).map(|m| door(m, false)));
    let (_, out) = run_readings(&p, &rs);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].rule, "door_open");
    assert_eq!(mins(&out[0]), (10, 35, 25));
    assert!(
        out[0].summary.starts_with("door open for 25 min"),
        "{}",
        out[0].summary
    );
}

#[test]
fn shocks_close_together_merge_into_one_event() {
    let p = profile(RuleKind::Shock {
        limit_g: 5.0,
        merge_within_min: 1.0,
    });
    let shock = |m: i64, g: Option<u16>| {
        let mut r = Reading::new(T0 + m * MIN, 500);
        r.shock_centi_g = g;
        r
    };
    let rs = [
        shock(0, Some(100)),
        shock(1, Some(650)),
        shock(2, Some(710)),
        shock(3, None),
        shock(10, Some(500)),
        shock(20, Some(800)),
        shock(30, None),
    ];
    let (_, out) = run_readings(&p, &rs);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(mins(&out[0]), (1, 2, 1));
    assert!(
        out[0].summary.starts_with("2 shocks up to 7.10 g"),
        "{}",
        out[0].summary
    );
    // Exactly 5 g is not above 5 g.
    assert_eq!(mins(&out[1]), (20, 20, 20));
}

#[test]
fn rate_of_change_compares_readings_within_the_window() {
    let p = profile(RuleKind::RateOfChange {
        delta_c: 5.0,
        within_min: 10.0,
        direction: Change::Both,
    });
    let (_, out) = run(
        &p,
        &[
            (0, 2.0),
            (5, 2.0),
            (8, 8.0),
            (12, 8.5),
            (30, 8.0),
            (45, 8.0),
            (60, 8.0),
        ],
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(mins(&out[0]), (8, 12, 8));
    // A rise-only rule ignores the fall back.
    let rises = profile(RuleKind::RateOfChange {
        delta_c: 5.0,
        within_min: 10.0,
        direction: Change::Rise,
    });
    assert!(run(
        &rises,
        &[
            (0, 9.0),
            (5, 9.0),
            (8, 3.0),
            (12, 2.5),
            (30, 2.0),
            (45, 2.0)
        ]
    )
    .1
    .is_empty());
    assert_eq!(
        run(
            &profile(RuleKind::RateOfChange {
                delta_c: 5.0,
                within_min: 10.0,
                direction: Change::Drop
            }),
            &[
                (0, 9.0),
                (5, 9.0),
                (8, 3.0),
                (12, 2.5),
                (30, 2.0),
                (45, 2.0)
            ]
        )
        .1
        .len(),
        1
    );
    // A slow rise of 0.3 °C a minute is 3 °C per 10 min: no alarm.
    let slow: Vec<(i64, f64)> = (0..40).map(|m| (m, 2.0 + 0.3 * m as f64)).collect();
    assert!(run(&p, &slow).1.is_empty());
}

#[test]
fn reefer_swings_need_repeated_reversals_for_the_duration() {
    let p = profile(RuleKind::ReeferSwings {
        swing_c: 0.8,
        min_duration_min: 60.0,
        max_between_min: 30.0,
    });
    // ±1.5 °C with a 20-minute period for 100 minutes, sampled every 5 min.
    let mut s: Vec<(i64, f64)> = (0..20).map(|m| (m, 2.0)).collect();
    s.extend((0..20).map(|i| {
        (
            20 + i * 5,
            2.0 + 1.5 * ((i * 5) as f64 / 20.0 * std::f64::consts::TAU).sin(),
        )
    }));
    s.extend((120..200).step_by(5).map(|m| (m, 2.0)));
    let (_, out) = run(&p, &s);
    assert_eq!(out.len(), 1, "{out:?}");
    let (from, to, _) = mins(&out[0]);
    assert!(
        (20..=40).contains(&from) && (100..=120).contains(&to),
        "{out:?}"
    );
    // A defrost bump (up 2.5 °C for 20 min, then back) is not a failure.
    let mut d: Vec<(i64, f64)> = (0..30).map(|m| (m, 2.0)).collect();
    d.extend((30..50).map(|m| (m, 4.5)));
    d.extend((50..400).map(|m| (m, 2.0)));
    assert!(run(&p, &d).1.is_empty());
}

#[test]
fn dwell_is_staying_within_the_radius_for_the_limit() {
    let p = profile(RuleKind::Dwell {
        radius_m: 500.0,
        max_stop_min: 120.0,
    });
    let at = |m: i64, lat: f64| {
        let mut r = Reading::new(T0 + m * MIN, 500);
        r.location = Some(GeoPoint {
            lat_e7: (lat * 1e7) as i32,
            lon_e7: 0,
        });
        r
    };
    // Moving ~1 km per 5 min, stopped from 30 to 210, moving again.
    let mut rs: Vec<Reading> = (0..30)
        .step_by(5)
        .map(|m| at(m, m as f64 * 0.0018))
        .collect();
    rs.extend((30..210).step_by(5).map(|m| at(m, 30.0 * 0.0018)));
    rs.extend((210..240).step_by(5).map(|m| at(m, m as f64 * 0.0018)));
    let (_, out) = run_readings(&p, &rs);
    assert_eq!(out.len(), 1, "{out:?}");
    // The stop begins with the first reading at the spot.
    assert_eq!(mins(&out[0]), (30, 210, 150));
}

#[test]
fn mkt_is_judged_per_window_when_the_window_closes() {
    let p = profile(RuleKind::Mkt {
        limit_c: 25.0,
        window_h: 24.0,
        delta_h_over_r_k: mkt::DEFAULT_DELTA_H_OVER_R_K,
    });
    // A day at 20 °C then 30 °C in equal halves: MKT 26.26 °C > 25.
    let mut s: Vec<(i64, f64)> = (0..24 * 60)
        .step_by(30)
        .map(|m| (m, if m < 12 * 60 { 20.0 } else { 30.0 }))
        .collect();
    assert!(run(&p, &s).1.is_empty(), "the window is still open");
    s.push((24 * 60, 20.0));
    s.push((24 * 60 + 30, 20.0));
    let (_, out) = run(&p, &s);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0]
            .summary
            .starts_with("mean kinetic temperature 26.26 °C"),
        "{}",
        out[0].summary
    );
}

#[test]
fn readings_that_go_back_in_time_are_counted_not_judged() {
    let p = profile(consecutive(8.0, 30.0));
    let (e, out) = run(
        &p,
        &[
            (0, 5.0),
            (10, 9.0),
            (5, 20.0),
            (10, 20.0),
            (50, 5.0),
            (60, 5.0),
        ],
    );
    assert_eq!(e.out_of_order, 2);
    assert_eq!(out.len(), 1);
    assert_eq!(mins(&out[0]), (10, 50, 40));
}

#[test]
fn state_fits_only_the_rules_it_was_built_for() {
    let p = profile(consecutive(8.0, 30.0));
    let (e, _) = run(&p, &[(0, 5.0)]);
    assert!(e.fits(&p));
    let mut changed = p.clone();
    changed.rules.push(RuleSpec {
        name: "missing".into(),
        kind: RuleKind::MissingData,
        quarantine: false,
    });
    assert!(!e.fits(&changed));
    let mut swapped = p.clone();
    swapped.rules[0].kind = RuleKind::MissingData;
    assert!(!e.fits(&swapped));
}

#[test]
fn defrost_masking_pauses_temperature_rules_without_ending_an_excursion() {
    let mut p = profile(consecutive(2.0, 30.0));
    p.rules.push(RuleSpec {
        name: "door".into(),
        kind: RuleKind::Limit(LimitRule {
            quantity: Quantity::Door,
            direction: Direction::Above,
            limit: 0.5,
            comparison: Comparison::Strict,
            timing: Timing::Consecutive { delay_min: 15.0 },
            deadband: 0.0,
            clear_delay_min: 0.0,
        }),
        quarantine: false,
    });
    let at = |m: i64, c: f64, defrost: bool, door: bool| Reading {
        defrost,
        door_open: Some(door),
        ..Reading::new(T0 + m * MIN, (c * 100.0) as i32)
    };
    // A 35-minute defrost warming the air to 2.5 °C, the door open during it.
    let mut rs: Vec<Reading> = (0..10).map(|m| at(m, 0.0, false, false)).collect();
    rs.extend((10..45).map(|m| at(m, 2.5, true, true)));
    rs.extend((45..90).map(|m| at(m, 0.0, false, false)));
    let (_, unmasked) = run_readings(&p, &rs);
    let rules = |fs: &[Finding]| fs.iter().map(|f| f.rule.clone()).collect::<Vec<_>>();
    assert_eq!(rules(&unmasked), ["r", "door"], "{unmasked:?}");
    p.defrost_mask_min = 30.0;
    let (_, masked) = run_readings(&p, &rs);
    assert_eq!(
        rules(&masked),
        ["door"],
        "only temperature rules pause: {masked:?}"
    );
    // An excursion that spans a masked defrost goes on through it; the
    // masked time (the defrost, then 30 min) does not count toward its delay.
    let mut rs: Vec<Reading> = (0..20).map(|m| at(m, 3.0, false, false)).collect();
    rs.extend((20..30).map(|m| at(m, 3.0, true, false)));
    rs.extend((30..90).map(|m| at(m, 3.0, false, false)));
    rs.extend((90..110).map(|m| at(m, 0.0, false, false)));
    let (_, out) = run_readings(&p, &rs);
    assert_eq!(rules(&out), ["r"], "{out:?}");
    // Counted: 0-20, then from 59 (30 min after the last defrost reading at 29): delay reached at 69.
    assert_eq!(mins(&out[0]), (0, 90, 69));
}
