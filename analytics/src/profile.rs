//! Product profiles: which rules judge a logger's readings, with every time
//! semantic of RULES.md spelled out as data.
//!
//! A profile is chosen per logger from the product (GTIN) of the lots it
//! watches; products map to profiles in a [`RulesConfig`] (the data
//! directory's `rules.json`, or the built-in defaults). Limits are written in
//! display units (°C, %RH, g) and compared, exactly, in the ledger's scaled
//! integers (0.01 °C, 0.1 %RH, 0.01 g), so "exactly at the limit" means what
//! it says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;

/// ΔH/R for ΔH = 83.144 kJ/mol, the USP default: what an MKT rule uses
/// unless its profile says otherwise. (Profiles are the rules' data; the
/// rules read them, never the other way round.)
pub const DEFAULT_DELTA_H_OVER_R_K: f64 = 10_000.0;

pub use crate::quantity::Quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// Whether a value equal to the limit is beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Beyond only past the limit: `above 8` alarms at 8.01, not at 8.00 (loggers).
    Strict,
    /// The limit itself is beyond: `below -0.5` inclusive alarms at −0.50 (WHO wording).
    Inclusive,
}

/// How time beyond a limit turns into a breach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "semantics", rename_all = "snake_case")]
pub enum Timing {
    /// One reading beyond the limit is a breach.
    Instant,
    /// Beyond the limit without a break for at least `delay_min` (an
    /// excursion that lasts exactly the delay is a breach). Returning into
    /// range (past the deadband, for the clear delay) ends the excursion and
    /// resets the counter; so does a data gap.
    Consecutive { delay_min: f64 },
    /// Time beyond the limit adds up over the logger's whole stream and never
    /// resets; gaps pause it. A breach once the total reaches `total_min`.
    Cumulative { total_min: f64 },
}

/// A threshold with its time semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitRule {
    pub quantity: Quantity,
    pub direction: Direction,
    /// In display units (°C, %RH; 0.5 for the door).
    pub limit: f64,
    pub comparison: Comparison,
    #[serde(flatten)]
    pub timing: Timing,
    /// An excursion ends only once the value is back past `limit ∓ deadband`.
    #[serde(default)]
    pub deadband: f64,
    /// An excursion ends only after `clear_delay_min` back in range; a return
    /// beyond the limit sooner continues it.
    #[serde(default)]
    pub clear_delay_min: f64,
}

/// The kinds of rule a profile can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    Limit(LimitRule),
    /// A change of more than `delta_c` (in the rule's `direction`) between
    /// two readings at most `within_min` apart. Triggers closer than
    /// `within_min` merge into one.
    RateOfChange {
        delta_c: f64,
        within_min: f64,
        #[serde(default)]
        direction: Change,
    },
    /// No reading for longer than the profile's heartbeat. Any reading is a
    /// sign of life (every reading carries a temperature).
    MissingData,
    /// A shock above `limit_g` (strict); shocks less than `merge_within_min`
    /// apart are one event.
    Shock {
        limit_g: f64,
        merge_within_min: f64,
    },
    /// A reefer starting and stopping: the temperature reverses direction by
    /// more than `swing_c` again and again, reversals at most `max_between_min`
    /// apart, for at least `min_duration_min`.
    ReeferSwings {
        swing_c: f64,
        min_duration_min: f64,
        max_between_min: f64,
    },
    /// Mean kinetic temperature over each `window_h` (UTC-aligned, time
    /// weighted) above `limit_c` (strict), judged when the window closes.
    Mkt {
        limit_c: f64,
        window_h: f64,
        #[serde(default = "default_delta_h_over_r")]
        delta_h_over_r_k: f64,
    },
    /// A logger that reports positions stays within `radius_m` of one spot for
    /// at least `max_stop_min`.
    Dwell {
        radius_m: f64,
        max_stop_min: f64,
    },
}

fn default_delta_h_over_r() -> f64 {
    DEFAULT_DELTA_H_OVER_R_K
}

/// Which changes a rate-of-change rule watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Warming: a load swap, a door left open, a failing unit.
    Rise,
    /// Cooling: a product set next to the evaporator, a freezing fault.
    Drop,
    #[default]
    Both,
}

/// A named rule and the policy it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Stable name, used in verdicts (`vaccine_heat`).
    pub name: String,
    #[serde(flatten)]
    pub kind: RuleKind,
    /// A breach of this rule quarantines the lots it is attributed to.
    #[serde(default)]
    pub quarantine: bool,
}

/// How a class of product must be kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The longest time one reading stands for; a longer silence is a gap.
    pub heartbeat_min: f64,
    /// Defrost masking: while a unit reports a defrost cycle, and for this
    /// long after its last defrost reading, the temperature rules pause (the
    /// masked time neither counts toward a delay or total nor ends an
    /// excursion). 0: defrost is judged like any other warming.
    #[serde(default)]
    pub defrost_mask_min: f64,
    pub rules: Vec<RuleSpec>,
}

impl Profile {
    pub fn heartbeat_ms(&self) -> i64 {
        minutes_ms(self.heartbeat_min)
    }
}

/// Minutes (as configured) in milliseconds.
pub fn minutes_ms(min: f64) -> i64 {
    (min * 60_000.0).round() as i64
}

/// Profiles and which products they judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesConfig {
    pub profiles: Vec<Profile>,
    /// GTIN-14 -> profile name.
    #[serde(default)]
    pub products: BTreeMap<String, String>,
    /// The profile of a logger that watches no known product.
    pub default_profile: String,
    #[serde(default)]
    pub device_policy: DevicePolicy,
}

/// When a device is suspended for sending physically impossible data (its
/// batches are then refused until its owner reinstates it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePolicy {
    /// A temperature outside this range is a broken probe, not a cold chain.
    pub sensor_min_c: f64,
    pub sensor_max_c: f64,
    /// A reading older than the device's latest by more than this: its
    /// clock runs backwards.
    pub backwards_tolerance_min: f64,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        DevicePolicy {
            sensor_min_c: -100.0,
            sensor_max_c: 100.0,
            backwards_tolerance_min: 5.0,
        }
    }
}

impl DevicePolicy {
    /// Why `r` cannot be a real reading, if it cannot.
    pub fn impossible(
        &self,
        r: &ledger::reading::Reading,
        latest_ms: Option<i64>,
    ) -> Option<String> {
        let t = r.temp_c();
        if t < self.sensor_min_c || t > self.sensor_max_c {
            return Some(format!(
                "a reading at {} reports {t:.2} °C, outside any cold-chain sensor's range ({} to {} °C)",
                crate::explain::moment(r.time_ms),
                crate::explain::trim(self.sensor_min_c),
                crate::explain::trim(self.sensor_max_c)
            ));
        }
        let latest = latest_ms?;
        (r.time_ms < latest - minutes_ms(self.backwards_tolerance_min)).then(|| {
            format!(
                "its clock ran backwards: a reading at {} after one at {} (tolerance {})",
                crate::explain::moment(r.time_ms),
                crate::explain::moment(latest),
                crate::explain::duration(minutes_ms(self.backwards_tolerance_min))
            )
        })
    }
}

/// The configuration file's name in a data directory.
pub const RULES_FILE: &str = "rules.json";

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            profiles: builtin_profiles(),
            products: BTreeMap::new(),
            default_profile: "device_health".into(),
            device_policy: DevicePolicy::default(),
        }
    }
}

impl RulesConfig {
    /// Reads `rules.json` from `data_dir`, or the built-in profiles without
    /// product mappings when there is none.
    pub fn load(data_dir: &std::path::Path) -> Result<RulesConfig, AnalyticsError> {
        let path = data_dir.join(RULES_FILE);
        let config = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AnalyticsError::Config(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RulesConfig::default(),
            Err(e) => return Err(AnalyticsError::io(&path, e)),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks names are unique and every reference resolves, and that every
    /// duration and limit is a finite number a rule can use.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |msg: String| Err(AnalyticsError::Config(msg));
        let mut names = std::collections::BTreeSet::new();
        for p in &self.profiles {
            if !names.insert(p.name.as_str()) {
                return bad(format!("profile {:?} is defined twice", p.name));
            }
            if !(p.defrost_mask_min.is_finite() && p.defrost_mask_min >= 0.0) {
                return bad(format!(
                    "profile {:?}: defrost_mask_min must be a number of minutes, 0 or more",
                    p.name
                ));
            }
            if !(p.heartbeat_min.is_finite() && p.heartbeat_min > 0.0) {
                return bad(format!(
                    "profile {:?}: heartbeat_min must be a positive number of minutes",
                    p.name
                ));
            }
            let mut rules = std::collections::BTreeSet::new();
            for r in &p.rules {
                if !rules.insert(r.name.as_str()) {
                    return bad(format!(
                        "profile {:?}: rule {:?} is defined twice",
                        p.name, r.name
                    ));
                }
                if !r.kind.numbers().iter().all(|x| x.is_finite() && *x >= 0.0) {
                    return bad(format!("profile {:?}, rule {:?}: limits and durations must be finite, durations not negative", p.name, r.name));
                }
            }
        }
        let p = &self.device_policy;
        if !(p.sensor_min_c.is_finite()
            && p.sensor_max_c.is_finite()
            && p.sensor_min_c < p.sensor_max_c
            && p.backwards_tolerance_min >= 0.0)
        {
            return bad("device_policy: sensor_min_c must be below sensor_max_c and backwards_tolerance_min not negative".into());
        }
        if self.profile(&self.default_profile).is_none() {
            return bad(format!(
                "default_profile {:?} is not among the profiles",
                self.default_profile
            ));
        }
        for (gtin, name) in &self.products {
            if self.profile(name).is_none() {
                return bad(format!(
                    "product {gtin} names profile {name:?}, which is not defined"
                ));
            }
        }
        Ok(())
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile for a product, or the default one.
    pub fn profile_for_gtin(&self, gtin: Option<&str>) -> &Profile {
        gtin.and_then(|g| self.products.get(g))
            .and_then(|n| self.profile(n))
            .or_else(|| self.profile(&self.default_profile))
            .expect("validate() checked the default profile exists")
    }
}

impl RuleKind {
    /// Whether the rule judges temperature (and pauses under defrost masking).
    pub fn reads_temperature(&self) -> bool {
        match self {
            RuleKind::Limit(l) => l.quantity == Quantity::Temperature,
            RuleKind::RateOfChange { .. }
            | RuleKind::ReeferSwings { .. }
            | RuleKind::Mkt { .. } => true,
            RuleKind::MissingData | RuleKind::Shock { .. } | RuleKind::Dwell { .. } => false,
        }
    }

    /// Every number in the rule, for validation.
    fn numbers(&self) -> Vec<f64> {
        match self {
            RuleKind::Limit(l) => {
                let mut v = vec![l.limit.abs(), l.deadband, l.clear_delay_min];
                match l.timing {
                    Timing::Instant => {}
                    Timing::Consecutive { delay_min } => v.push(delay_min),
                    Timing::Cumulative { total_min } => v.push(total_min),
                }
                v
            }
            RuleKind::RateOfChange {
                delta_c,
                within_min,
                ..
            } => vec![*delta_c, *within_min],
            RuleKind::MissingData => vec![],
            RuleKind::Shock {
                limit_g,
                merge_within_min,
            } => vec![*limit_g, *merge_within_min],
            RuleKind::ReeferSwings {
                swing_c,
                min_duration_min,
                max_between_min,
            } => {
                vec![*swing_c, *min_duration_min, *max_between_min]
            }
            RuleKind::Mkt {
                limit_c,
                window_h,
                delta_h_over_r_k,
            } => vec![limit_c.abs(), *window_h, *delta_h_over_r_k],
            RuleKind::Dwell {
                radius_m,
                max_stop_min,
            } => vec![*radius_m, *max_stop_min],
        }
    }
}

fn limit(
    name: &str,
    quantity: Quantity,
    direction: Direction,
    limit: f64,
    comparison: Comparison,
    timing: Timing,
    quarantine: bool,
) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        kind: RuleKind::Limit(LimitRule {
            quantity,
            direction,
            limit,
            comparison,
            timing,
            deadband: 0.0,
            clear_delay_min: 0.0,
        }),
        quarantine,
    }
}

/// Rules about the logger itself, in every profile.
fn device_rules() -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            name: "missing_data".into(),
            kind: RuleKind::MissingData,
            quarantine: false,
        },
        limit(
            "door_open",
            Quantity::Door,
            Direction::Above,
            0.5,
            Comparison::Strict,
            Timing::Consecutive { delay_min: 15.0 },
            false,
        ),
        RuleSpec {
            name: "shock".into(),
            kind: RuleKind::Shock {
                limit_g: 5.0,
                merge_within_min: 1.0,
            },
            quarantine: false,
        },
        RuleSpec {
            name: "reefer_swings".into(),
            kind: RuleKind::ReeferSwings {
                swing_c: 0.8,
                min_duration_min: 60.0,
                max_between_min: 30.0,
            },
            quarantine: false,
        },
        RuleSpec {
            name: "dwell".into(),
            kind: RuleKind::Dwell {
                radius_m: 500.0,
                max_stop_min: 120.0,
            },
            quarantine: false,
        },
    ]
}

fn with_device_rules(mut rules: Vec<RuleSpec>) -> Vec<RuleSpec> {
    rules.extend(device_rules());
    rules
}

use Comparison::{Inclusive, Strict};
use Direction::{Above, Below};
use Quantity::{Humidity, Temperature};

/// The profiles RULES.md describes, with its reference numbers.
pub fn builtin_profiles() -> Vec<Profile> {
    let mut vaccine_heat = limit(
        "vaccine_heat",
        Temperature,
        Above,
        8.0,
        Strict,
        Timing::Consecutive { delay_min: 600.0 },
        true,
    );
    if let RuleKind::Limit(l) = &mut vaccine_heat.kind {
        l.deadband = 0.5;
    }
    vec![
        Profile {
            name: "vaccines_2_8".into(),
            description: "vaccines 2–8 °C: heat alarm above +8 °C for 10 h, freeze alarm at or below −0.5 °C for 60 min (WHO PQS E006), Q-tag type II cumulative 20 h at or above 10 °C".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: with_device_rules(vec![
                vaccine_heat,
                limit("vaccine_freeze", Temperature, Below, -0.5, Inclusive, Timing::Consecutive { delay_min: 60.0 }, true),
                limit("qtag_cumulative_10c", Temperature, Above, 10.0, Inclusive, Timing::Cumulative { total_min: 1200.0 }, true),
                limit("qtag_single_45c", Temperature, Above, 45.0, Inclusive, Timing::Consecutive { delay_min: 60.0 }, true),
            ]),
        },
        Profile {
            name: "chilled_produce".into(),
            description: "chilled food (FDA Food Code cold holding ≤ 5 °C; FSANZ 2-hour/4-hour rule: cumulative time above 5 °C, 2 h use now, 4 h discard), fast rises, humidity for fresh produce".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 30.0,
            rules: with_device_rules(vec![
                limit("chilled_2h_above_5c", Temperature, Above, 5.0, Strict, Timing::Cumulative { total_min: 120.0 }, true),
                limit("chilled_4h_above_5c", Temperature, Above, 5.0, Strict, Timing::Cumulative { total_min: 240.0 }, true),
                limit("chilled_freeze", Temperature, Below, 0.0, Strict, Timing::Consecutive { delay_min: 60.0 }, false),
                // Rises only: the fast fall back to the setpoint when a door closes is recovery.
                RuleSpec { name: "rate_of_change".into(), kind: RuleKind::RateOfChange { delta_c: 5.0, within_min: 10.0, direction: Change::Rise }, quarantine: false },
                limit("humidity_low", Humidity, Below, 70.0, Strict, Timing::Consecutive { delay_min: 60.0 }, false),
            ]),
        },
        Profile {
            name: "fresh_fish".into(),
            description: "fresh fish near melting ice, 0–2 °C: above 2 °C for 30 min (deadband 0.5 °C)".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 30.0,
            rules: with_device_rules(vec![
                {
                    let mut r = limit("fish_above_2c", Temperature, Above, 2.0, Strict, Timing::Consecutive { delay_min: 30.0 }, true);
                    if let RuleKind::Limit(l) = &mut r.kind {
                        l.deadband = 0.5;
                    }
                    r
                },
            ]),
        },
        Profile {
            name: "frozen".into(),
            description: "quick-frozen food ≤ −18 °C (EU): brief rises up to −15 °C tolerated in transport, so above −15 °C is a breach at once and above −18 °C a breach after 60 min".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 30.0,
            rules: with_device_rules(vec![
                limit("frozen_above_minus15c", Temperature, Above, -15.0, Strict, Timing::Instant, true),
                limit("frozen_above_minus18c", Temperature, Above, -18.0, Strict, Timing::Consecutive { delay_min: 60.0 }, true),
            ]),
        },
        Profile {
            name: "atp_ice_cream".into(),
            description: "ATP maximum for ice cream: −20 °C".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: with_device_rules(vec![limit("atp_max", Temperature, Above, -20.0, Strict, Timing::Instant, true)]),
        },
        Profile {
            name: "atp_red_meat".into(),
            description: "ATP maximum for red meat: +7 °C".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: with_device_rules(vec![limit("atp_max", Temperature, Above, 7.0, Strict, Timing::Instant, true)]),
        },
        Profile {
            name: "atp_poultry".into(),
            description: "ATP maximum for poultry: +4 °C".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: with_device_rules(vec![limit("atp_max", Temperature, Above, 4.0, Strict, Timing::Instant, true)]),
        },
        Profile {
            name: "crt".into(),
            description: "controlled room temperature (USP <659>/<1079>): excursions 15–30 °C allowed if the mean kinetic temperature stays ≤ 25 °C; below 15 or above 30 °C is a breach".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: with_device_rules(vec![
                RuleSpec { name: "crt_mkt".into(), kind: RuleKind::Mkt { limit_c: 25.0, window_h: 720.0, delta_h_over_r_k: DEFAULT_DELTA_H_OVER_R_K }, quarantine: true },
                limit("crt_above_30c", Temperature, Above, 30.0, Strict, Timing::Instant, true),
                limit("crt_below_15c", Temperature, Below, 15.0, Strict, Timing::Instant, true),
            ]),
        },
        Profile {
            name: "device_health".into(),
            description: "a logger watching no known product: only the logger's own health (missing data, door, shock, reefer swings, dwell)".into(),
            heartbeat_min: 60.0,
            defrost_mask_min: 0.0,
            rules: device_rules(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_is_valid_and_round_trips_as_json() {
        let c = RulesConfig::default();
        c.validate().unwrap();
        let json = serde_json::to_string_pretty(&c).unwrap();
        let back: RulesConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_profile_names_are_refused() {
        let mut c = RulesConfig::default();
        c.products.insert("00614141100012".into(), "nope".into());
        assert!(c.validate().unwrap_err().to_string().contains("nope"));
        let c = RulesConfig {
            default_profile: "missing".into(),
            ..RulesConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
