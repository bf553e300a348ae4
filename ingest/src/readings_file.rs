//! Readings from files a gateway writes: CSV with a header row, or JSON
//! lines in the wire form ([`crate::wire::ReadingJson`]). For `coldtrail
//! push`; every mistake names its line and column.
//!
//! CSV columns (by header name, any order; unknown columns are refused):
//! `time` (RFC 3339, or Unix ms) or `time_ms`; `temp_c` (°C, decimal) or
//! `temp_centi_c`; optional `humidity_pct` (%RH, decimal) or
//! `humidity_permille`, `shock_centi_g`, `door_open` (true/false/1/0),
//! `light_lux`, `lat` and `lon` (degrees) or `lat_e7` and `lon_e7`,
//! `battery_mv`, `defrost`. An empty cell is "not measured".

use ledger::reading::{GeoPoint, Reading};

/// Why a file could not be read as readings.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {what}")]
pub struct FileError {
    pub path: String,
    pub line: u64,
    pub what: String,
}

/// Reads `bytes` (the file at `path`): JSON lines when the name ends in
/// `.jsonl` or `.ndjson`, else CSV.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Vec<Reading>, FileError> {
    let readings = if path.ends_with(".jsonl") || path.ends_with(".ndjson") {
        parse_jsonl(path, bytes)?
    } else {
        parse_csv(path, bytes)?
    };
    for (i, r) in readings.iter().enumerate() {
        r.validate().map_err(|e| FileError {
            path: path.into(),
            line: i as u64 + 1,
            what: format!("reading {}: {e}", i + 1),
        })?;
    }
    Ok(readings)
}

fn parse_jsonl(path: &str, bytes: &[u8]) -> Result<Vec<Reading>, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FileError {
        path: path.into(),
        line: 0,
        what: format!("not UTF-8: {e}"),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", i + 1);
        let err = |what: String| FileError {
            path: path.into(),
            line: i as u64 + 1,
            what,
        };
        let json: crate::wire::ReadingJson =
            serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        out.push(json.to_reading(&at).map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

/// One CSV cell, parsed by column name.
fn number<T: std::str::FromStr>(column: &str, cell: &str) -> Result<T, String> {
    cell.parse().map_err(|_| {
        format!(
            "column `{column}`: {cell:?} is not a valid {}",
            std::any::type_name::<T>()
        )
    })
}

/// A decimal scaled to an integer (`4.12` °C at 100 → 412), rounded.
fn scaled(column: &str, cell: &str, scale: f64) -> Result<i64, String> {
    let v: f64 = number(column, cell)?;
    if !v.is_finite() || (v * scale).abs() > 1e15 {
        return Err(format!("column `{column}`: {cell:?} is out of range"));
    }
    Ok((v * scale).round() as i64)
}

fn flag(column: &str, cell: &str) -> Result<bool, String> {
    match cell.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("column `{column}`: {cell:?} is not true/false")),
    }
}

fn fits<T: TryFrom<i64>>(column: &str, v: i64) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("column `{column}`: {v} is out of range"))
}

fn time_ms(cell: &str) -> Result<i64, String> {
    if let Ok(ms) = cell.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(cell)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            format!(
                "column `time`: {cell:?} is neither RFC 3339 (2026-11-02T08:00:00Z) nor Unix ms"
            )
        })
}

const COLUMNS: &[&str] = &[
    "time",
    "time_ms",
    "temp_c",
    "temp_centi_c",
    "humidity_pct",
    "humidity_permille",
    "shock_centi_g",
    "door_open",
    "light_lux",
    "lat",
    "lon",
    "lat_e7",
    "lon_e7",
    "battery_mv",
    "defrost",
];

fn reading(row: &std::collections::HashMap<&str, &str>) -> Result<Reading, String> {
    let get = |c: &str| row.get(c).copied().filter(|v| !v.is_empty());
    let time = match (get("time"), get("time_ms")) {
        (Some(t), None) => time_ms(t)?,
        (None, Some(t)) => number("time_ms", t)?,
        _ => return Err("give exactly one of `time` and `time_ms`".into()),
    };
    let temp = match (get("temp_c"), get("temp_centi_c")) {
        (Some(t), None) => fits("temp_c", scaled("temp_c", t, 100.0)?)?,
        (None, Some(t)) => number("temp_centi_c", t)?,
        _ => return Err("give exactly one of `temp_c` and `temp_centi_c`".into()),
    };
    let mut r = Reading::new(time, temp);
    r.humidity_permille = match (get("humidity_pct"), get("humidity_permille")) {
        (Some(h), None) => Some(fits("humidity_pct", scaled("humidity_pct", h, 10.0)?)?),
        (None, Some(h)) => Some(number("humidity_permille", h)?),
        (None, None) => None,
        _ => return Err("give `humidity_pct` or `humidity_permille`, not both".into()),
    };
    r.shock_centi_g = get("shock_centi_g")
        .map(|v| number("shock_centi_g", v))
        .transpose()?;
    r.door_open = get("door_open").map(|v| flag("door_open", v)).transpose()?;
    r.light_lux = get("light_lux")
        .map(|v| number("light_lux", v))
        .transpose()?;
    r.battery_mv = get("battery_mv")
        .map(|v| number("battery_mv", v))
        .transpose()?;
    r.defrost = get("defrost")
        .map(|v| flag("defrost", v))
        .transpose()?
        .unwrap_or(false);
    r.location = match (get("lat"), get("lon"), get("lat_e7"), get("lon_e7")) {
        (None, None, None, None) => None,
        (Some(lat), Some(lon), None, None) => Some(GeoPoint {
            lat_e7: fits("lat", scaled("lat", lat, 1e7)?)?,
            lon_e7: fits("lon", scaled("lon", lon, 1e7)?)?,
        }),
        (None, None, Some(lat), Some(lon)) => Some(GeoPoint {
            lat_e7: number("lat_e7", lat)?,
            lon_e7: number("lon_e7", lon)?,
        }),
        _ => return Err("give both `lat` and `lon` (or `lat_e7` and `lon_e7`), or neither".into()),
    };
    Ok(r)
}

fn parse_csv(path: &str, bytes: &[u8]) -> Result<Vec<Reading>, FileError> {
    let err = |line: u64, what: String| FileError {
        path: path.into(),
        line,
        what,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = rdr.headers().map_err(|e| err(1, e.to_string()))?.clone();
    if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(err(
            1,
            format!(
                "unknown column `{unknown}`; columns are {}",
                COLUMNS.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for record in rdr.records() {
        let record =
            record.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let row = headers.iter().zip(record.iter()).collect();
        out.push(reading(&row).map_err(|what| err(line, what))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_units_people_use_becomes_scaled_readings() {
        let csv = "time,temp_c,humidity_pct,door_open,lat,lon\n\
                   2026-11-02T08:00:00Z,4.12,85.3,false,36.7783,-119.6538\n\
                   1793606460000,-0.35,,1,,\n";
        let rs = parse("r.csv", csv.as_bytes()).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].time_ms, 1_793_606_400_000);
        assert_eq!(rs[0].temp_centi_c, 412);
        assert_eq!(rs[0].humidity_permille, Some(853));
        assert_eq!(rs[0].door_open, Some(false));
        assert_eq!(
            rs[0].location,
            Some(GeoPoint {
                lat_e7: 367_783_000,
                lon_e7: -1_196_538_000
            })
        );
        assert_eq!(rs[1].temp_centi_c, -35);
        assert_eq!(
            (rs[1].humidity_permille, rs[1].door_open, rs[1].location),
            (None, Some(true), None)
        );
    }

    #[test]
    fn jsonl_in_the_wire_form() {
        let text = "{\"time_ms\": 1000, \"temp_centi_c\": 400}\n\n{\"time_ms\": 61000, \"temp_centi_c\": 401, \"defrost\": true}\n";
        let rs = parse("r.jsonl", text.as_bytes()).unwrap();
        assert_eq!(rs.len(), 2);
        assert!(rs[1].defrost);
    }

    #[test]
    fn mistakes_name_their_line_and_column() {
        let cases = [
            ("time,temp_c\n2026-11-02T08:00:00Z,warm\n", ":2:", "temp_c"),
            ("time,temp_c,colour\n", ":1:", "unknown column `colour`"),
            (
                "time,temp_c,lat\n1000,4,36.7\n",
                ":2:",
                "both `lat` and `lon`",
            ),
            ("time,temp_c\nyesterday,4\n", ":2:", "RFC 3339"),
            ("time,temp_c\n1000,4000\n", ":1:", "temperature"),
            ("time_ms,temp_c\n1000,4,5\n", ":2:", "fields"),
        ];
        for (text, line, what) in cases {
            let e = parse("r.csv", text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(line) && e.contains(what), "{text:?}: {e}");
        }
        let e = parse("r.jsonl", b"{\"time_ms\": 1}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.jsonl:1:") && e.contains("temp_centi_c"),
            "{e}"
        );
    }
}
