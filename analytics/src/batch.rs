//! The batch evaluator: the same rules ([`crate::rules`]) over the `readings`
//! table, instead of over the feed.
//!
//! The table's rows are in feed order, in which every logger's readings are
//! in its sequence order (a logger's batches live on one shard and the feed
//! hands each shard out in order), so the batch evaluator needs no sort: it
//! walks the rows once, handing each to its logger's state machine, exactly
//! as the streaming consumer did. Same definition, same verdicts.

use std::collections::HashMap;

use datafusion::arrow::array::{
    Array, BooleanArray, Decimal128Array, FixedSizeBinaryArray, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array, UInt64Array,
};

use ledger::reading::{GeoPoint, Reading};

use crate::engine::{attribute, profile_for, EngineState, Proposal};
use crate::profile::RulesConfig;
use crate::rules::{DeviceEval, Evidence, Finding};
use crate::AnalyticsError;

/// What the batch evaluator found.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub findings: Vec<Finding>,
    /// The verdicts those findings make, attributed as the streaming
    /// consumer attributes them.
    pub verdicts: Vec<Proposal>,
    /// Each logger's final state.
    pub devices: HashMap<String, DeviceEval>,
    pub readings: u64,
}

/// Runs every rule over `batches` of the `readings` table, in table order.
pub struct BatchEvaluator<'a> {
    config: &'a RulesConfig,
    /// What the streaming engine knows of watches and custody: findings
    /// are attributed and profiles chosen by it.
    state: &'a EngineState,
    result: BatchResult,
}

fn col<'b, T: 'static>(b: &'b RecordBatch, name: &str) -> Result<&'b T, AnalyticsError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            AnalyticsError::Config(format!(
                "readings table: column {name} is missing or of another type"
            ))
        })
}

impl<'a> BatchEvaluator<'a> {
    pub fn new(config: &'a RulesConfig, state: &'a EngineState) -> BatchEvaluator<'a> {
        BatchEvaluator {
            config,
            state,
            result: BatchResult::default(),
        }
    }

    /// Takes the next rows of the `readings` table.
    pub fn push(&mut self, b: &RecordBatch) -> Result<(), AnalyticsError> {
        let shard: &UInt32Array = col(b, "shard")?;
        let index: &UInt64Array = col(b, "entry_index")?;
        let id: &FixedSizeBinaryArray = col(b, "entry_id")?;
        let device: &StringArray = col(b, "device")?;
        let time: &TimestampMillisecondArray = col(b, "time")?;
        let temp: &Decimal128Array = col(b, "temp_c")?;
        let humidity: &Decimal128Array = col(b, "humidity_pct")?;
        let shock: &Decimal128Array = col(b, "shock_g")?;
        let door: &BooleanArray = col(b, "door_open")?;
        let light: &UInt32Array = col(b, "light_lux")?;
        let lat: &Decimal128Array = col(b, "lat")?;
        let lon: &Decimal128Array = col(b, "lon")?;
        let battery: &UInt16Array = col(b, "battery_mv")?;
        let defrost: &BooleanArray = col(b, "defrost")?;
        let opt = |a: &Decimal128Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
        let mut current: Option<(String, Evidence)> = None;
        let mut found = Vec::new();
        for i in 0..b.num_rows() {
            let d = device.value(i);
            let ev = Evidence {
                shard: shard.value(i),
                index: index.value(i),
                id: id
                    .value(i)
                    .try_into()
                    .map_err(|_| AnalyticsError::Config("entry_id must be 32 bytes".into()))?,
            };
            if current.as_ref().is_none_or(|(cd, ce)| cd != d || *ce != ev) {
                current = Some((d.to_string(), ev));
            }
            let (_, ev) = current.as_ref().expect("set above");
            let r = Reading {
                time_ms: time.value(i),
                temp_centi_c: temp.value(i) as i32,
                humidity_permille: opt(humidity, i).map(|v| v as u16),
                shock_centi_g: opt(shock, i).map(|v| v as u16),
                door_open: (!door.is_null(i)).then(|| door.value(i)),
                light_lux: (!light.is_null(i)).then(|| light.value(i)),
                location: opt(lat, i).zip(opt(lon, i)).map(|(a, o)| GeoPoint {
                    lat_e7: a as i32,
                    lon_e7: o as i32,
                }),
                battery_mv: (!battery.is_null(i)).then(|| battery.value(i)),
                defrost: defrost.value(i),
            };
            let eval = match self.result.devices.get_mut(d) {
                Some(e) => e,
                None => {
                    let profile = profile_for(self.config, self.state, d);
                    self.result
                        .devices
                        .entry(d.to_string())
                        .or_insert_with(|| DeviceEval::new(d, profile))
                }
            };
            let profile = self
                .config
                .profile(&eval.profile)
                .expect("states are built from this configuration's profiles");
            eval.push(profile, &r, ev, &mut found);
            self.result.readings += 1;
        }
        for f in found {
            self.result.verdicts.extend(attribute(&f, self.state));
            self.result.findings.push(f);
        }
        Ok(())
    }

    pub fn finish(self) -> BatchResult {
        self.result
    }
}

/// Runs every rule over the `readings` table stored in `files` (in order).
pub fn evaluate_files(
    config: &RulesConfig,
    state: &EngineState,
    files: &[std::path::PathBuf],
) -> Result<BatchResult, AnalyticsError> {
    let mut eval = BatchEvaluator::new(config, state);
    for f in files {
        let file = std::fs::File::open(f).map_err(|e| AnalyticsError::io(f, e))?;
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )?
            .with_batch_size(65_536)
            .build()?;
        for b in reader {
            eval.push(&b?)?;
        }
    }
    Ok(eval.finish())
}
