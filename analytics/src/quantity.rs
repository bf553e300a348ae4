//! What a reading measures that a rule can read (temperature, humidity, the
//! door), with its scale in the ledger's integers. Below rules, profiles
//! and the words verdicts are written in, which all name it.

use serde::{Deserialize, Serialize};

/// What a limit rule reads from each reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// °C, compared in hundredths.
    Temperature,
    /// %RH, compared in tenths.
    Humidity,
    /// The door: open is 1, closed is 0 (a limit of `above 0.5` means "open").
    Door,
}

impl Quantity {
    /// Scaled integer units per display unit.
    pub fn scale(self) -> f64 {
        match self {
            Quantity::Temperature => 100.0,
            Quantity::Humidity => 10.0,
            Quantity::Door => 1.0,
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Temperature => " °C",
            Quantity::Humidity => " %RH",
            Quantity::Door => "",
        }
    }

    /// The reading's value in scaled units, if it carries this quantity.
    pub fn of(self, r: &ledger::reading::Reading) -> Option<i64> {
        match self {
            Quantity::Temperature => Some(i64::from(r.temp_centi_c)),
            Quantity::Humidity => r.humidity_permille.map(i64::from),
            Quantity::Door => r.door_open.map(i64::from),
        }
    }
}
