//! Sensor readings and the compact, canonical encoding of a device's batch.
//!
//! Readings are stored as scaled integers (0.01 °C, 0.1 %RH, 0.01 g, 1e-7°)
//! so the encoding is exact and deterministic. A batch is laid out column by
//! column: timestamps as delta-of-deltas, every other quantity as deltas
//! against the previous reading that had it, all as zig-zag varints. Regular
//! one-minute data becomes long runs of identical small bytes, which the
//! store's lz4 block compression then folds further.

use crate::codec::{DecodeError, Reader, Writer};

/// Earliest and latest accepted timestamps (Unix epoch ms, years 1970–9999).
/// Bounding time keeps every delta computation far from overflow.
pub const MIN_TIME_MS: i64 = 0;
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
/// Temperatures are physically bounded well inside ±1000 °C.
pub const MAX_ABS_TEMP_CENTI_C: i32 = 100_000;
/// At most this many readings in one batch.
pub const MAX_READINGS_PER_BATCH: usize = 100_000;
/// Device ids are short identifiers (EPC URIs, serials).
pub const MAX_DEVICE_ID_LEN: usize = 256;

/// A position in WGS 84, degrees × 10⁷.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeoPoint {
    pub lat_e7: i32,
    pub lon_e7: i32,
}

/// One sensor sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Unix epoch milliseconds.
    pub time_ms: i64,
    /// Hundredths of a degree Celsius.
    pub temp_centi_c: i32,
    /// Relative humidity in tenths of a percent, 0..=1000.
    pub humidity_permille: Option<u16>,
    /// Peak acceleration in hundredths of g.
    pub shock_centi_g: Option<u16>,
    pub door_open: Option<bool>,
    pub light_lux: Option<u32>,
    pub location: Option<GeoPoint>,
    /// Battery voltage in millivolts.
    pub battery_mv: Option<u16>,
    /// The unit reports a defrost cycle in progress (reefers, fridges): the
    /// air warms on purpose, and rules may mask it.
    pub defrost: bool,
}

impl Reading {
    /// A reading with only the required fields.
    pub fn new(time_ms: i64, temp_centi_c: i32) -> Self {
        Reading {
            time_ms,
            temp_centi_c,
            humidity_permille: None,
            shock_centi_g: None,
            door_open: None,
            light_lux: None,
            location: None,
            battery_mv: None,
            defrost: false,
        }
    }

    /// Temperature in °C, for display and rules.
    pub fn temp_c(&self) -> f64 {
        f64::from(self.temp_centi_c) / 100.0
    }

    /// Checks the physical bounds the encoding relies on.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&self.time_ms) {
            return Err(DecodeError::OutOfRange {
                what: "reading time",
                value: self.time_ms as u64,
            });
        }
        if self.temp_centi_c.unsigned_abs() > MAX_ABS_TEMP_CENTI_C as u32 {
            return Err(DecodeError::OutOfRange {
                what: "temperature",
                value: self.temp_centi_c as u64,
            });
        }
        if let Some(h) = self.humidity_permille {
            if h > 1000 {
                return Err(DecodeError::OutOfRange {
                    what: "humidity",
                    value: u64::from(h),
                });
            }
        }
        if let Some(p) = self.location {
            if p.lat_e7.unsigned_abs() > 900_000_000 || p.lon_e7.unsigned_abs() > 1_800_000_000 {
                return Err(DecodeError::Invalid {
                    what: "location",
                    reason: "latitude must be within ±90° and longitude within ±180°",
                });
            }
        }
        Ok(())
    }
}

/// The readings a device sends in one signed batch. Reading `i` carries the
/// device's sequence number `first_seq + i`; sequence numbers only grow, so a
/// replayed or rewound batch is recognisable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBatch {
    pub device: String,
    pub first_seq: u64,
    pub readings: Vec<Reading>,
}

const HAS_HUMIDITY: u8 = 1 << 0;
const HAS_SHOCK: u8 = 1 << 1;
const HAS_DOOR: u8 = 1 << 2;
const DOOR_OPEN: u8 = 1 << 3;
const HAS_LIGHT: u8 = 1 << 4;
const HAS_LOCATION: u8 = 1 << 5;
const HAS_BATTERY: u8 = 1 << 6;
const DEFROST: u8 = 1 << 7;

fn mask_of(r: &Reading) -> u8 {
    let mut m = 0;
    if r.humidity_permille.is_some() {
        m |= HAS_HUMIDITY;
    }
    if r.shock_centi_g.is_some() {
        m |= HAS_SHOCK;
    }
    if let Some(open) = r.door_open {
        m |= HAS_DOOR;
        if open {
            m |= DOOR_OPEN;
        }
    }
    if r.light_lux.is_some() {
        m |= HAS_LIGHT;
    }
    if r.location.is_some() {
        m |= HAS_LOCATION;
    }
    if r.battery_mv.is_some() {
        m |= HAS_BATTERY;
    }
    if r.defrost {
        m |= DEFROST;
    }
    m
}

/// Delta-encodes one optional column, skipping readings without a value.
fn put_delta_column(w: &mut Writer, values: impl Iterator<Item = Option<i64>>) {
    let mut prev = 0i64;
    for v in values.flatten() {
        w.svarint(v - prev);
        prev = v;
    }
}

impl DeviceBatch {
    /// Checks every reading and the batch's own bounds.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.device.is_empty() || self.device.len() > MAX_DEVICE_ID_LEN {
            return Err(DecodeError::Invalid {
                what: "device id",
                reason: "must be 1 to 256 bytes long",
            });
        }
        if self.readings.len() > MAX_READINGS_PER_BATCH {
            return Err(DecodeError::OutOfRange {
                what: "readings per batch",
                value: self.readings.len() as u64,
            });
        }
        if self
            .first_seq
            .checked_add(self.readings.len() as u64)
            .is_none()
        {
            return Err(DecodeError::OutOfRange {
                what: "sequence number",
                value: self.first_seq,
            });
        }
        self.readings.iter().try_for_each(Reading::validate)
    }

    /// The sequence number after this batch's last reading.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.readings.len() as u64
    }

    /// The canonical bytes (what a device signs). The batch must be valid.
    pub fn encode(&self, w: &mut Writer) {
        debug_assert!(self.validate().is_ok(), "encoding an invalid batch");
        w.str(&self.device);
        w.varint(self.first_seq);
        encode_readings(w, &self.readings);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16 + self.readings.len() * 6);
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes canonical bytes; anything else is refused.
    pub fn decode(r: &mut Reader<'_>) -> Result<DeviceBatch, DecodeError> {
        let device = r.string("device id")?;
        let first_seq = r.varint("first sequence number")?;
        let readings = decode_readings(r)?;
        let batch = DeviceBatch {
            device,
            first_seq,
            readings,
        };
        batch.validate()?;
        Ok(batch)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceBatch, DecodeError> {
        let mut r = Reader::new(bytes);
        let b = DeviceBatch::decode(&mut r)?;
        r.finish()?;
        Ok(b)
    }
}

/// The columnar encoding of a run of readings (count, then the columns);
/// the readings must be valid.
pub fn encode_readings(w: &mut Writer, rs: &[Reading]) {
    w.varint(rs.len() as u64);
    let Some(first) = rs.first() else { return };
    // Time: first absolute, then delta-of-delta.
    w.svarint(first.time_ms);
    let mut prev_t = first.time_ms;
    let mut prev_d = 0i64;
    for r in &rs[1..] {
        let d = r.time_ms - prev_t;
        w.svarint(d - prev_d);
        prev_t = r.time_ms;
        prev_d = d;
    }
    for r in rs {
        w.u8(mask_of(r));
    }
    put_delta_column(w, rs.iter().map(|r| Some(i64::from(r.temp_centi_c))));
    put_delta_column(w, rs.iter().map(|r| r.humidity_permille.map(i64::from)));
    for s in rs.iter().filter_map(|r| r.shock_centi_g) {
        w.varint(u64::from(s));
    }
    put_delta_column(w, rs.iter().map(|r| r.light_lux.map(i64::from)));
    put_delta_column(
        w,
        rs.iter().map(|r| r.location.map(|p| i64::from(p.lat_e7))),
    );
    put_delta_column(
        w,
        rs.iter().map(|r| r.location.map(|p| i64::from(p.lon_e7))),
    );
    put_delta_column(w, rs.iter().map(|r| r.battery_mv.map(i64::from)));
}

/// Decodes what [`encode_readings`] wrote; refuses anything else.
pub fn decode_readings(r: &mut Reader<'_>) -> Result<Vec<Reading>, DecodeError> {
    let n = r.varint("reading count")?;
    // Each reading costs at least two bytes (time and mask), which bounds n
    // by the input before anything is allocated.
    if n > MAX_READINGS_PER_BATCH as u64 || n.saturating_mul(2) > r.remaining() as u64 {
        return Err(DecodeError::OutOfRange {
            what: "reading count",
            value: n,
        });
    }
    let n = n as usize;
    let mut readings = Vec::with_capacity(n);
    if n > 0 {
        let mut t = r.svarint("first reading time")?;
        check_time(t)?;
        readings.push(Reading::new(t, 0));
        let mut d = 0i64;
        for _ in 1..n {
            let dd = r.svarint("time delta")?;
            d = d.checked_add(dd).ok_or(DecodeError::Invalid {
                what: "time delta",
                reason: "overflows",
            })?;
            t = t.checked_add(d).ok_or(DecodeError::Invalid {
                what: "reading time",
                reason: "overflows",
            })?;
            check_time(t)?;
            readings.push(Reading::new(t, 0));
        }
    }
    let masks = r.take(n, "presence masks")?;
    if let Some(bad) = masks
        .iter()
        // Every bit has a meaning; the only impossible mask is an open door without a door.
        .find(|&&m| m & DOOR_OPEN != 0 && m & HAS_DOOR == 0)
    {
        return Err(DecodeError::UnknownTag {
            what: "presence mask",
            tag: u64::from(*bad),
        });
    }
    let mut temp = 0i64;
    for reading in &mut readings {
        temp = delta_step(r, temp, "temperature")?;
        reading.temp_centi_c = to_int(temp, "temperature")?;
    }
    let mut hum = 0i64;
    for (reading, m) in readings.iter_mut().zip(masks) {
        if m & HAS_HUMIDITY != 0 {
            hum = delta_step(r, hum, "humidity")?;
            reading.humidity_permille = Some(to_int(hum, "humidity")?);
        }
    }
    for (reading, m) in readings.iter_mut().zip(masks) {
        if m & HAS_SHOCK != 0 {
            reading.shock_centi_g = Some(r.varint_as("shock")?);
        }
        if m & HAS_DOOR != 0 {
            reading.door_open = Some(m & DOOR_OPEN != 0);
        }
        reading.defrost = m & DEFROST != 0;
    }
    let mut light = 0i64;
    for (reading, m) in readings.iter_mut().zip(masks) {
        if m & HAS_LIGHT != 0 {
            light = delta_step(r, light, "light")?;
            reading.light_lux = Some(to_int(light, "light")?);
        }
    }
    let mut lat = 0i64;
    for (reading, m) in readings.iter_mut().zip(masks) {
        if m & HAS_LOCATION != 0 {
            lat = delta_step(r, lat, "latitude")?;
            reading.location = Some(GeoPoint {
                lat_e7: to_int(lat, "latitude")?,
                lon_e7: 0,
            });
        }
    }
    let mut lon = 0i64;
    for reading in &mut readings {
        if let Some(p) = reading.location.as_mut() {
            lon = delta_step(r, lon, "longitude")?;
            p.lon_e7 = to_int(lon, "longitude")?;
        }
    }
    let mut battery = 0i64;
    for (reading, m) in readings.iter_mut().zip(masks) {
        if m & HAS_BATTERY != 0 {
            battery = delta_step(r, battery, "battery")?;
            reading.battery_mv = Some(to_int(battery, "battery")?);
        }
    }
    readings.iter().try_for_each(Reading::validate)?;
    Ok(readings)
}

fn check_time(t: i64) -> Result<(), DecodeError> {
    if (MIN_TIME_MS..=MAX_TIME_MS).contains(&t) {
        Ok(())
    } else {
        Err(DecodeError::OutOfRange {
            what: "reading time",
            value: t as u64,
        })
    }
}

fn delta_step(r: &mut Reader<'_>, prev: i64, what: &'static str) -> Result<i64, DecodeError> {
    prev.checked_add(r.svarint(what)?)
        .ok_or(DecodeError::Invalid {
            what,
            reason: "delta overflows",
        })
}

fn to_int<T: TryFrom<i64>>(v: i64, what: &'static str) -> Result<T, DecodeError> {
    T::try_from(v).map_err(|_| DecodeError::OutOfRange {
        what,
        value: v as u64,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_reading() -> impl Strategy<Value = Reading> {
        (
            MIN_TIME_MS..=MAX_TIME_MS,
            -MAX_ABS_TEMP_CENTI_C..=MAX_ABS_TEMP_CENTI_C,
            proptest::option::of(0u16..=1000),
            any::<Option<u16>>(),
            any::<Option<bool>>(),
            any::<Option<u32>>(),
            proptest::option::of((
                -900_000_000i32..=900_000_000,
                -1_800_000_000i32..=1_800_000_000,
            )),
            (any::<Option<u16>>(), any::<bool>()),
        )
            .prop_map(|(t, temp, h, s, d, l, loc, (b, defrost))| Reading {
                time_ms: t,
                temp_centi_c: temp,
                humidity_permille: h,
                shock_centi_g: s,
                door_open: d,
                light_lux: l,
                location: loc.map(|(lat_e7, lon_e7)| GeoPoint { lat_e7, lon_e7 }),
                battery_mv: b,
                defrost,
            })
    }

    pub fn arb_batch() -> impl Strategy<Value = DeviceBatch> {
        (
            "[a-z0-9:.-]{1,40}",
            0u64..u64::MAX / 2,
            proptest::collection::vec(arb_reading(), 0..40),
        )
            .prop_map(|(device, first_seq, readings)| DeviceBatch {
                device,
                first_seq,
                readings,
            })
    }

    proptest! {
        #[test]
        fn batches_round_trip(batch in arb_batch()) {
            let bytes = batch.to_bytes();
            prop_assert_eq!(DeviceBatch::from_bytes(&bytes).unwrap(), batch);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = DeviceBatch::from_bytes(&bytes);
        }
    }

    #[test]
    fn accepted_bytes_are_canonical() {
        let flips = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4);
        crate::codec::counting::decoded_share(
            "accepted_bytes_are_canonical",
            (arb_batch(), flips),
            0.1,
            |(batch, flips)| {
                let mut bytes = batch.to_bytes();
                for (i, b) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] = b;
                }
                let Ok(decoded) = DeviceBatch::from_bytes(&bytes) else {
                    return Ok(false);
                };
                prop_assert_eq!(decoded.to_bytes(), bytes);
                Ok(true)
            },
        );
    }

    #[test]
    fn regular_minute_data_is_small_before_compression() {
        let readings = (0..1000)
            .map(|i| Reading {
                humidity_permille: Some(850 + (i % 3) as u16),
                battery_mv: Some(3600),
                ..Reading::new(1_700_000_000_000 + i * 60_000, 400 + (i % 7) as i32 - 3)
            })
            .collect();
        let batch = DeviceBatch {
            device: "urn:epc:id:giai:0614141.logger-1".into(),
            first_seq: 0,
            readings,
        };
        let bytes = batch.to_bytes();
        // Five columns (time, mask, temperature, humidity, battery), each one
        // byte per reading for small deltas, plus the header.
        assert!(bytes.len() <= 1000 * 5 + 64, "{} bytes", bytes.len());
    }
}
