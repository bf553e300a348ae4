//! The JSON forms of ledger values that both the write API (which parses
//! them) and the read side (which shows them) speak.

use ledger::reading::{GeoPoint, Reading};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;

/// One reading, in the ledger's scaled integers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingJson {
    /// Unix epoch milliseconds.
    pub time_ms: i64,
    /// Hundredths of a degree Celsius (412 = 4.12 °C).
    pub temp_centi_c: i32,
    /// Relative humidity in tenths of a percent (0..=1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity_permille: Option<u16>,
    /// Peak acceleration in hundredths of g.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shock_centi_g: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light_lux: Option<u32>,
    /// Latitude in degrees × 10⁷ (with `lon_e7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat_e7: Option<i32>,
    /// Longitude in degrees × 10⁷ (with `lat_e7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon_e7: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_mv: Option<u16>,
    /// The unit is in a defrost cycle (reefers, fridges); false when absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defrost: bool,
}

impl From<&Reading> for ReadingJson {
    fn from(r: &Reading) -> ReadingJson {
        ReadingJson {
            time_ms: r.time_ms,
            temp_centi_c: r.temp_centi_c,
            humidity_permille: r.humidity_permille,
            shock_centi_g: r.shock_centi_g,
            door_open: r.door_open,
            light_lux: r.light_lux,
            lat_e7: r.location.map(|p| p.lat_e7),
            lon_e7: r.location.map(|p| p.lon_e7),
            battery_mv: r.battery_mv,
            defrost: r.defrost,
        }
    }
}

impl ReadingJson {
    pub fn to_reading(&self, at: &str) -> Result<Reading, ApiError> {
        let location = match (self.lat_e7, self.lon_e7) {
            (Some(lat_e7), Some(lon_e7)) => Some(GeoPoint { lat_e7, lon_e7 }),
            (None, None) => None,
            _ => {
                return Err(ApiError::InvalidBody(format!(
                    "{at}: give both lat_e7 and lon_e7, or neither"
                )))
            }
        };
        Ok(Reading {
            time_ms: self.time_ms,
            temp_centi_c: self.temp_centi_c,
            humidity_permille: self.humidity_permille,
            shock_centi_g: self.shock_centi_g,
            door_open: self.door_open,
            light_lux: self.light_lux,
            location,
            battery_mv: self.battery_mv,
            defrost: self.defrost,
        })
    }
}
