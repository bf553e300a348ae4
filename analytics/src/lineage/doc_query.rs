//! The SimpleEventQuery parameters (EPCIS 2.0 §8.2.7.1, the REST binding's
//! `GET /events`) that the event as captured answers rather than the graph:
//! the error declaration family, transformation ids, persistent
//! dispositions, source, destination and business transaction types, and the
//! sensor parameters. They are checked on the candidates the graph's own
//! parameters leave (`Lineage::query`'s document reader), so they narrow a
//! query and never widen it.
//!
//! Sensor parameters hold of one reading: an event matches when one of its
//! sensor reports (with its element's metadata) meets all of them, so
//! `EQ_type=Temperature&GE_value_CEL=8` finds a temperature of 8 °C or more,
//! not a temperature report beside a humidity of 8 %. Values compare across
//! units of one dimension (`GE_value_KEL` matches a report in `CEL`).

use serde_json::Value;

use super::query::{bad, cbv_bare, time, Cmp, QueryError};

/// The document tests of a query, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocFilter {
    event: Vec<EventTest>,
    /// Tests one sensor reading must meet together.
    sensor: Vec<SensorTest>,
    /// `EXISTS_sensorElement`.
    sensor_exists: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum EventTest {
    /// The string (or any string of the array) at `path` is one of `values`,
    /// compared as `bare` says.
    OneOf {
        path: &'static [&'static str],
        values: Vec<String>,
        bare: Bare,
    },
    Time {
        path: &'static [&'static str],
        cmp: Cmp,
        ms: i64,
    },
    /// An entry of `list` whose `type` is `kind` (bare) names one of `values`
    /// in its `field`.
    Typed {
        list: &'static str,
        field: &'static str,
        kind: String,
        bare: Bare,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum SensorTest {
    /// One of `values` in the report's `field`, or (`metadata_too`) its
    /// element's metadata's.
    OneOf {
        field: &'static str,
        metadata_too: bool,
        values: Vec<String>,
        fold: Fold,
    },
    /// The report's time, else the metadata's; or the metadata's start or
    /// end time.
    Time {
        field: &'static str,
        cmp: Cmp,
        ms: i64,
    },
    Number {
        field: &'static str,
        uom: Option<String>,
        cmp: Cmp,
        x: f64,
    },
    Boolean(bool),
}

/// How a string value compares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bare {
    /// As written.
    Exact,
    /// A CBV value in any of its spellings (`cbv_bare`).
    Cbv,
    /// An error reason (`incorrect_data`, `urn:epcglobal:cbv:er:…`, `…/ER-…`).
    ErrorReason,
    /// A source or destination type (`owning_party`, `…:sdt:…`, `…/SDT-…`).
    SourceDestType,
    /// A business transaction type (`po`, `…:btt:…`, `…/BTT-…`).
    TransactionType,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fold {
    Exact,
    /// A measurement type: `Temperature`, `gs1:Temperature`, its URI, and
    /// the draft `MT-` spelling are one.
    MeasurementType,
    /// Hexadecimal, in either case.
    Hex,
}

fn strip<'a>(v: &'a str, prefixes: &[&str]) -> &'a str {
    prefixes.iter().find_map(|p| v.strip_prefix(p)).unwrap_or(v)
}

impl Bare {
    fn of(self, v: &str) -> String {
        match self {
            Bare::Exact => v.to_string(),
            Bare::Cbv => cbv_bare(v).to_string(),
            Bare::ErrorReason => strip(
                v,
                &[
                    "urn:epcglobal:cbv:er:",
                    "https://ref.gs1.org/cbv/ER-",
                    "cbv:ER-",
                ],
            )
            .to_string(),
            Bare::SourceDestType => strip(
                v,
                &[
                    "urn:epcglobal:cbv:sdt:",
                    "https://ref.gs1.org/cbv/SDT-",
                    "cbv:SDT-",
                ],
            )
            .to_string(),
            Bare::TransactionType => strip(
                v,
                &[
                    "urn:epcglobal:cbv:btt:",
                    "https://ref.gs1.org/cbv/BTT-",
                    "cbv:BTT-",
                ],
            )
            .to_string(),
        }
    }
}

impl Fold {
    fn of(self, v: &str) -> String {
        match self {
            Fold::Exact => v.to_string(),
            Fold::Hex => v.to_ascii_lowercase(),
            Fold::MeasurementType => {
                let t = strip(
                    v,
                    &["gs1:", "https://gs1.org/voc/", "https://ref.gs1.org/voc/"],
                );
                t.strip_prefix("MT-").unwrap_or(t).to_string()
            }
        }
    }
}

/// A unit's dimension and how to bring a value in it to the dimension's
/// base unit (`base = v * factor + offset`), by UN/CEFACT Recommendation 20
/// code, for the units cold chains report in.
fn unit(code: &str) -> Option<(&'static str, f64, f64)> {
    Some(match code {
        "KEL" => ("temperature", 1.0, 0.0),
        "CEL" => ("temperature", 1.0, 273.15),
        "FAH" => ("temperature", 5.0 / 9.0, 459.67 * 5.0 / 9.0),
        "KGM" => ("mass", 1.0, 0.0),
        "GRM" => ("mass", 1e-3, 0.0),
        "MGM" => ("mass", 1e-6, 0.0),
        "TNE" => ("mass", 1e3, 0.0),
        "LBR" => ("mass", 0.453_592_37, 0.0),
        "ONZ" => ("mass", 0.028_349_523_125, 0.0),
        "MTR" => ("length", 1.0, 0.0),
        "KMT" => ("length", 1e3, 0.0),
        "CMT" => ("length", 1e-2, 0.0),
        "MMT" => ("length", 1e-3, 0.0),
        "INH" => ("length", 0.0254, 0.0),
        "FOT" => ("length", 0.3048, 0.0),
        "PAL" => ("pressure", 1.0, 0.0),
        "KPA" => ("pressure", 1e3, 0.0),
        "BAR" => ("pressure", 1e5, 0.0),
        "MBR" => ("pressure", 1e2, 0.0),
        "ATM" => ("pressure", 101_325.0, 0.0),
        "SEC" => ("time", 1.0, 0.0),
        "MIN" => ("time", 60.0, 0.0),
        "HUR" => ("time", 3_600.0, 0.0),
        "DAY" => ("time", 86_400.0, 0.0),
        "MTQ" => ("volume", 1.0, 0.0),
        "LTR" => ("volume", 1e-3, 0.0),
        "MLT" => ("volume", 1e-6, 0.0),
        "MTS" => ("speed", 1.0, 0.0),
        "KMH" => ("speed", 1.0 / 3.6, 0.0),
        "P1" => ("fraction", 1e-2, 0.0),
        _ => return None,
    })
}

/// `v` in unit `from` expressed in unit `to`, when both are known and of one
/// dimension (or are the same code).
fn convert(v: f64, from: &str, to: &str) -> Option<f64> {
    if from == to {
        return Some(v);
    }
    let (d1, f1, o1) = unit(from)?;
    let (d2, f2, o2) = unit(to)?;
    (d1 == d2).then(|| (v * f1 + o1 - o2) / f2)
}

fn compare(cmp: Cmp, v: f64, x: f64) -> bool {
    // Conversions leave rounding behind: equal within a part in 10^9.
    let eq = (v - x).abs() <= 1e-9 * v.abs().max(x.abs()).max(1.0);
    match cmp {
        Cmp::Eq => eq,
        Cmp::Gt => v > x && !eq,
        Cmp::Ge => v >= x || eq,
        Cmp::Lt => v < x && !eq,
        Cmp::Le => v <= x || eq,
    }
}

fn cmp_of(prefix: &str) -> Option<Cmp> {
    Some(match prefix {
        "EQ" => Cmp::Eq,
        "GT" => Cmp::Gt,
        "GE" => Cmp::Ge,
        "LT" => Cmp::Lt,
        "LE" => Cmp::Le,
        _ => return None,
    })
}

/// The sensor report fields that hold numbers.
const NUMBERS: &[&str] = &[
    "value",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
];

impl DocFilter {
    /// Whether the query has no document tests.
    pub fn is_empty(&self) -> bool {
        self.event.is_empty() && self.sensor.is_empty() && !self.sensor_exists
    }

    /// Takes parameter `name` with its `values` (pipe-split) if it is one
    /// of the document's; `Ok(false)` if it is not.
    pub(super) fn take(&mut self, name: &str, values: &[String]) -> Result<bool, QueryError> {
        let one = || -> Result<&str, QueryError> {
            match values {
                [v] => Ok(v.as_str()),
                _ => Err(bad(name, "give exactly one value")),
            }
        };
        let list = |bare: Bare| values.iter().map(|v| bare.of(v)).collect::<Vec<_>>();
        let mut event = |t: EventTest| {
            self.event.push(t);
            Ok(true)
        };
        match name {
            "EQ_transformationID" => {
                return event(EventTest::OneOf {
                    path: &["transformationID"],
                    values: list(Bare::Exact),
                    bare: Bare::Exact,
                })
            }
            "EQ_persistentDisposition_set" | "EQ_persistentDisposition_unset" => {
                let path: &'static [&'static str] = if name.ends_with("_set") {
                    &["persistentDisposition", "set"]
                } else {
                    &["persistentDisposition", "unset"]
                };
                return event(EventTest::OneOf {
                    path,
                    values: list(Bare::Cbv),
                    bare: Bare::Cbv,
                });
            }
            "EQ_errorReason" => {
                return event(EventTest::OneOf {
                    path: &["errorDeclaration", "reason"],
                    values: list(Bare::ErrorReason),
                    bare: Bare::ErrorReason,
                })
            }
            "EQ_correctiveEventID" => {
                return event(EventTest::OneOf {
                    path: &["errorDeclaration", "correctiveEventIDs"],
                    values: list(Bare::Exact),
                    bare: Bare::Exact,
                })
            }
            "GE_errorDeclarationTime" | "LT_errorDeclarationTime" => {
                let cmp = if name.starts_with("GE") {
                    Cmp::Ge
                } else {
                    Cmp::Lt
                };
                return event(EventTest::Time {
                    path: &["errorDeclaration", "declarationTime"],
                    cmp,
                    ms: time(name, one()?)?,
                });
            }
            "EXISTS_sensorElement" => {
                if !values.is_empty() {
                    return Err(bad(name, "takes no value"));
                }
                self.sensor_exists = true;
                return Ok(true);
            }
            _ => {}
        }
        for (prefix, list_name, field, bare) in [
            ("EQ_source_", "sourceList", "source", Bare::SourceDestType),
            (
                "EQ_destination_",
                "destinationList",
                "destination",
                Bare::SourceDestType,
            ),
            (
                "EQ_bizTransaction_",
                "bizTransactionList",
                "bizTransaction",
                Bare::TransactionType,
            ),
        ] {
            if let Some(kind) = name.strip_prefix(prefix) {
                if kind.is_empty() {
                    return Err(bad(name, format!("name the type after {prefix}")));
                }
                return event(EventTest::Typed {
                    list: list_name,
                    field,
                    kind: bare.of(kind),
                    bare,
                    values: values.to_vec(),
                });
            }
        }
        let mut sensor = |t: SensorTest| {
            self.sensor.push(t);
            Ok(true)
        };
        let strings = |field: &'static str, metadata_too: bool, fold: Fold| SensorTest::OneOf {
            field,
            metadata_too,
            values: values.iter().map(|v| fold.of(v)).collect(),
            fold,
        };
        match name {
            "EQ_type" => return sensor(strings("type", false, Fold::MeasurementType)),
            "EQ_deviceID" => return sensor(strings("deviceID", true, Fold::Exact)),
            "EQ_dataProcessingMethod" => {
                return sensor(strings("dataProcessingMethod", true, Fold::Exact))
            }
            "EQ_microorganism" => return sensor(strings("microorganism", false, Fold::Exact)),
            "EQ_chemicalSubstance" => {
                return sensor(strings("chemicalSubstance", false, Fold::Exact))
            }
            "EQ_bizRules" => return sensor(strings("bizRules", true, Fold::Exact)),
            "EQ_stringValue" => return sensor(strings("stringValue", false, Fold::Exact)),
            "EQ_hexBinaryValue" => return sensor(strings("hexBinaryValue", false, Fold::Hex)),
            "EQ_uriValue" => return sensor(strings("uriValue", false, Fold::Exact)),
            "EQ_booleanValue" => {
                return sensor(SensorTest::Boolean(match one()? {
                    "true" => true,
                    "false" => false,
                    other => return Err(bad(name, format!("{other:?}: give true or false"))),
                }))
            }
            _ => {}
        }
        let Some((prefix, rest)) = name.split_once('_') else {
            return Ok(false);
        };
        let Some(cmp) = cmp_of(prefix) else {
            return Ok(false);
        };
        for (field, what) in [
            ("time", "time"),
            ("startTime", "startTime"),
            ("endTime", "endTime"),
        ] {
            if rest == what && matches!(cmp, Cmp::Ge | Cmp::Lt) {
                return sensor(SensorTest::Time {
                    field,
                    cmp,
                    ms: time(name, one()?)?,
                });
            }
        }
        let (field, uom) = match rest.split_once('_') {
            Some((f, u)) => (f, Some(u)),
            None => (rest, None),
        };
        let Some(&field) = NUMBERS.iter().find(|f| **f == field) else {
            return Ok(false);
        };
        if let Some(u) = uom {
            if u.is_empty() || u.len() > 3 || !u.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(
                    name,
                    format!("{u:?} is not a UN/CEFACT unit code (such as CEL, KGM, P1)"),
                ));
            }
        }
        let x: f64 = one()?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| bad(name, format!("{:?} is not a number", values.join("|"))))?;
        sensor(SensorTest::Number {
            field,
            uom: uom.map(str::to_string),
            cmp,
            x,
        })
    }

    /// Whether the captured `event` passes every test.
    pub fn matches(&self, event: &Value) -> bool {
        self.event.iter().all(|t| event_test(t, event)) && self.sensor_matches(event)
    }

    fn sensor_matches(&self, event: &Value) -> bool {
        if self.sensor.is_empty() && !self.sensor_exists {
            return true;
        }
        let elements = event["sensorElementList"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if self.sensor.is_empty() {
            return !elements.is_empty();
        }
        elements.iter().any(|el| {
            let meta = &el["sensorMetadata"];
            el["sensorReport"].as_array().is_some_and(|reports| {
                reports
                    .iter()
                    .any(|r| self.sensor.iter().all(|t| sensor_test(t, meta, r)))
            })
        })
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn millis(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn time_ok(cmp: Cmp, t: i64, ms: i64) -> bool {
    match cmp {
        Cmp::Ge => t >= ms,
        Cmp::Lt => t < ms,
        Cmp::Gt => t > ms,
        Cmp::Le => t <= ms,
        Cmp::Eq => t == ms,
    }
}

fn event_test(t: &EventTest, event: &Value) -> bool {
    match t {
        EventTest::OneOf { path, values, bare } => strings(at(event, path))
            .iter()
            .any(|s| values.contains(&bare.of(s))),
        EventTest::Time { path, cmp, ms } => {
            millis(at(event, path)).is_some_and(|t| time_ok(*cmp, t, *ms))
        }
        EventTest::Typed {
            list,
            field,
            kind,
            bare,
            values,
        } => event[*list].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["type"].as_str().is_some_and(|k| bare.of(k) == *kind)
                    && i[*field]
                        .as_str()
                        .is_some_and(|v| values.iter().any(|w| w == v))
            })
        }),
    }
}

fn sensor_test(t: &SensorTest, meta: &Value, report: &Value) -> bool {
    match t {
        SensorTest::OneOf {
            field,
            metadata_too,
            values,
            fold,
        } => {
            let own = report[*field].as_str();
            let v = own.or_else(|| metadata_too.then(|| meta[*field].as_str()).flatten());
            v.is_some_and(|v| values.contains(&fold.of(v)))
        }
        SensorTest::Time { field, cmp, ms } => {
            let v = if *field == "time" {
                millis(&report["time"]).or_else(|| millis(&meta["time"]))
            } else {
                millis(&meta[*field])
            };
            v.is_some_and(|t| time_ok(*cmp, t, *ms))
        }
        SensorTest::Number { field, uom, cmp, x } => {
            let Some(v) = report[*field].as_f64() else {
                return false;
            };
            match (uom, report["uom"].as_str()) {
                (None, _) => compare(*cmp, v, *x),
                (Some(want), Some(has)) => {
                    convert(v, has, want).is_some_and(|v| compare(*cmp, v, *x))
                }
                (Some(_), None) => false,
            }
        }
        SensorTest::Boolean(b) => report["booleanValue"].as_bool() == Some(*b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(params: &[(&str, &str)]) -> DocFilter {
        let mut f = DocFilter::default();
        for (n, v) in params {
            let values: Vec<String> = if v.is_empty() {
                Vec::new()
            } else {
                v.split('|').map(str::to_string).collect()
            };
            assert!(f.take(n, &values).unwrap(), "{n} is a document parameter");
        }
        f
    }

    fn reefer() -> Value {
        json!({
            "type": "ObjectEvent",
            "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:0614141.00001"}],
            "destinationList": [{"type": "urn:epcglobal:cbv:sdt:location", "destination": "urn:epc:id:sgln:0614141.00002.0"}],
            "bizTransactionList": [{"type": "https://ref.gs1.org/cbv/BTT-po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000005:PO-1"}],
            "persistentDisposition": {"set": ["completeness_verified"], "unset": ["https://ref.gs1.org/cbv/Disp-needs_replacement"]},
            "errorDeclaration": {"declarationTime": "2026-11-03T10:00:00Z", "reason": "urn:epcglobal:cbv:er:incorrect_data", "correctiveEventIDs": ["urn:uuid:1", "urn:uuid:2"]},
            "sensorElementList": [
                {"sensorMetadata": {"time": "2026-11-02T08:00:00Z", "deviceID": "urn:epc:id:giai:0614141.L1", "bizRules": "https://example.com/rules/1"},
                 "sensorReport": [
                    {"type": "gs1:Temperature", "value": 9.5, "uom": "CEL", "minValue": 2.0, "maxValue": 9.5},
                    {"type": "gs1:RelativeHumidity", "value": 80, "uom": "P1"},
                    {"type": "gs1:Temperature", "value": 4.0, "uom": "CEL", "time": "2026-11-02T09:00:00Z", "hexBinaryValue": "BEEF", "booleanValue": true}
                 ]}
            ]
        })
    }

    #[test]
    fn each_document_parameter_selects_as_the_standard_says() {
        let e = reefer();
        for (params, expected) in [
            (
                vec![("EQ_source_owning_party", "urn:epc:id:pgln:0614141.00001")],
                true,
            ),
            (
                vec![(
                    "EQ_source_urn:epcglobal:cbv:sdt:owning_party",
                    "urn:epc:id:pgln:0614141.00001",
                )],
                true,
            ),
            (
                vec![(
                    "EQ_source_possessing_party",
                    "urn:epc:id:pgln:0614141.00001",
                )],
                false,
            ),
            (
                vec![(
                    "EQ_destination_location",
                    "x|urn:epc:id:sgln:0614141.00002.0",
                )],
                true,
            ),
            (
                vec![(
                    "EQ_bizTransaction_po",
                    "urn:epcglobal:cbv:bt:0614141000005:PO-1",
                )],
                true,
            ),
            (
                vec![(
                    "EQ_bizTransaction_inv",
                    "urn:epcglobal:cbv:bt:0614141000005:PO-1",
                )],
                false,
            ),
            (
                vec![(
                    "EQ_persistentDisposition_set",
                    "urn:epcglobal:cbv:disp:completeness_verified",
                )],
                true,
            ),
            (
                vec![("EQ_persistentDisposition_unset", "needs_replacement")],
                true,
            ),
            (
                vec![("EQ_persistentDisposition_set", "needs_replacement")],
                false,
            ),
            (vec![("EQ_errorReason", "incorrect_data")], true),
            (vec![("EQ_errorReason", "did_not_occur")], false),
            (
                vec![("EQ_correctiveEventID", "urn:uuid:9|urn:uuid:2")],
                true,
            ),
            (
                vec![("GE_errorDeclarationTime", "2026-11-03T10:00:00Z")],
                true,
            ),
            (
                vec![("LT_errorDeclarationTime", "2026-11-03T10:00:00Z")],
                false,
            ),
            (vec![("EQ_transformationID", "urn:uuid:t")], false),
            (vec![("EXISTS_sensorElement", "")], true),
            (vec![("EQ_type", "Temperature")], true),
            (vec![("EQ_type", "Pressure")], false),
            (vec![("EQ_deviceID", "urn:epc:id:giai:0614141.L1")], true),
            (vec![("EQ_bizRules", "https://example.com/rules/1")], true),
            (vec![("EQ_hexBinaryValue", "beef")], true),
            (vec![("EQ_booleanValue", "false")], false),
            // One reading meets all the sensor tests together.
            (
                vec![("EQ_type", "Temperature"), ("GE_value_CEL", "9")],
                true,
            ),
            (
                vec![("EQ_type", "Temperature"), ("GE_value_CEL", "10")],
                false,
            ),
            (
                vec![("EQ_type", "RelativeHumidity"), ("GE_value_P1", "50")],
                true,
            ),
            (vec![("EQ_type", "Temperature"), ("GE_value", "50")], false),
            // Across units: 9.5 °C is 282.65 K and 49.1 °F.
            (vec![("GE_value_KEL", "282.6")], true),
            (vec![("EQ_value_KEL", "282.65")], true),
            (vec![("GT_value_FAH", "49.2")], false),
            (
                vec![("LT_maxValue_CEL", "10"), ("GE_minValue_CEL", "2")],
                true,
            ),
            (vec![("GE_value_KGM", "0")], false),
            (
                vec![
                    ("GE_time", "2026-11-02T08:30:00Z"),
                    ("EQ_type", "Temperature"),
                ],
                true,
            ),
            (
                vec![("GE_time", "2026-11-02T08:30:00Z"), ("GE_value_CEL", "9")],
                false,
            ),
        ] {
            assert_eq!(filter(&params).matches(&e), expected, "{params:?}");
        }
        let bare = json!({"type": "ObjectEvent"});
        assert!(!filter(&[("EXISTS_sensorElement", "")]).matches(&bare));
        assert!(filter(&[]).matches(&bare));
    }

    #[test]
    fn malformed_document_parameters_are_named() {
        for (n, v) in [
            ("GE_value_CEL", "warm"),
            ("GE_value_TOOLONG", "1"),
            ("EQ_booleanValue", "yes"),
            ("GE_errorDeclarationTime", "today"),
            ("EQ_source_", "x"),
            ("GE_value", "1|2"),
        ] {
            let mut f = DocFilter::default();
            let values: Vec<String> = v.split('|').map(str::to_string).collect();
            let e = f.take(n, &values).unwrap_err();
            assert_eq!(e.parameter, n, "{e}");
        }
        let mut f = DocFilter::default();
        assert!(!f.take("EQ_bizStp", &["x".into()]).unwrap());
        assert!(!f.take("GE_colour", &["1".into()]).unwrap());
    }
}
