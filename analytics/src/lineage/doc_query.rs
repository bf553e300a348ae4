//! The SimpleEventQuery parameters (EPCIS 2.0 §8.2.7.1, the REST binding's
//! `GET /events`) that the event as captured answers rather than the graph:
//! the error declaration family, transformation ids, persistent
//! dispositions, source, destination and business transaction types, and the
//! sensor parameters. They are checked on the candidates the graph's own
//! parameters leave (`Lineage::query`'s document reader), so they narrow a
//! query and never widen it.
//!
//! Extension fields are named by their full IRI, the namespace and the
//! local name (`https://ns.example.com/epcis/temperatureBand`, or with `#`
//! between them as EPCIS 1.x wrote it), whatever prefix an event's
//! `@context` gave them: `EQ_{field}`, `GT_|GE_|LT_|LE_{field}` (numbers
//! compared as numbers, times as times), `EXISTS_{field}`, each for a
//! top-level extension field, with `ILMD_`, `readPoint_`, `bizLocation_`,
//! `ERROR_DECLARATION_`, `SENSORELEMENT_`, `SENSORMETADATA_` or
//! `SENSORREPORT_` before the field for one inside that element, and
//! `INNER_` first for one nested at any depth inside an extension field.
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
    /// Extension fields.
    fields: Vec<FieldTest>,
}

/// Where an extension field is looked for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Event,
    Ilmd,
    ReadPoint,
    BizLocation,
    ErrorDeclaration,
    SensorElement,
    SensorMetadata,
    SensorReport,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldTest {
    scope: Scope,
    /// Nested at any depth inside a top-level extension field.
    inner: bool,
    /// The field's full IRI, as the parameter names it.
    field: String,
    test: FieldCmp,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldCmp {
    Exists,
    OneOf(Vec<String>),
    Number(Cmp, f64),
    Time(Cmp, i64),
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

/// The equality parameters on event-level string fields: parameter, path,
/// how values compare. `take` parses them from here and `doc_keys` indexes
/// the same paths, so every such test has its index lists.
const ONE_OF_PATHS: &[(&str, &[&str], Bare)] = &[
    ("EQ_transformationID", &["transformationID"], Bare::Exact),
    (
        "EQ_persistentDisposition_set",
        &["persistentDisposition", "set"],
        Bare::Cbv,
    ),
    (
        "EQ_persistentDisposition_unset",
        &["persistentDisposition", "unset"],
        Bare::Cbv,
    ),
    (
        "EQ_errorReason",
        &["errorDeclaration", "reason"],
        Bare::ErrorReason,
    ),
    (
        "EQ_correctiveEventID",
        &["errorDeclaration", "correctiveEventIDs"],
        Bare::Exact,
    ),
];

/// The typed lists (`EQ_source_{type}`…): parameter prefix, list, field,
/// how the type compares.
const TYPED_LISTS: &[(&str, &str, &str, Bare)] = &[
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
];

/// The sensor equality parameters: parameter, field, whether the
/// element's metadata may hold it, how values compare.
const SENSOR_FIELDS: &[(&str, &str, bool, Fold)] = &[
    ("EQ_type", "type", false, Fold::MeasurementType),
    ("EQ_deviceID", "deviceID", true, Fold::Exact),
    (
        "EQ_dataProcessingMethod",
        "dataProcessingMethod",
        true,
        Fold::Exact,
    ),
    ("EQ_microorganism", "microorganism", false, Fold::Exact),
    (
        "EQ_chemicalSubstance",
        "chemicalSubstance",
        false,
        Fold::Exact,
    ),
    ("EQ_bizRules", "bizRules", true, Fold::Exact),
    ("EQ_stringValue", "stringValue", false, Fold::Exact),
    ("EQ_hexBinaryValue", "hexBinaryValue", false, Fold::Hex),
    ("EQ_uriValue", "uriValue", false, Fold::Exact),
];

fn one_of_key(path: &[&str], value: &str) -> String {
    format!("{}\u{1f}{value}", path.join("/"))
}

fn typed_key(list: &str, kind: &str, value: &str) -> String {
    format!("{list}\u{1f}{kind}\u{1f}{value}")
}

fn sensor_key(field: &str, value: &str) -> String {
    format!("sensor/{field}\u{1f}{value}")
}

/// Where the events a document test could keep are listed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Probe {
    /// A document key's list.
    Key(String),
    /// An axis's buckets from `low` to `high`, both included.
    Buckets { axis: String, low: i64, high: i64 },
}

/// The buckets of `axis` that can hold a number `cmp` keeps against `x`,
/// where values within `within` × 10⁻⁹ of `x` count as equal to it
/// (`compare`'s tolerance: `within` is the tolerance's scale, in the
/// axis's unit) and the axis value may be off by rounding.
fn number_probe(axis: String, cmp: Cmp, x: f64, within: f64) -> Probe {
    let slack = 2e-9 * within + 1e-12 * x.abs();
    let (low, high) = (number_bucket(x - slack), number_bucket(x + slack));
    let (low, high) = match cmp {
        Cmp::Eq => (low, high),
        Cmp::Gt | Cmp::Ge => (low, i64::MAX),
        Cmp::Lt | Cmp::Le => (i64::MIN, high),
    };
    Probe::Buckets { axis, low, high }
}

/// The buckets of `axis` that can hold a time `cmp` keeps against `ms`.
fn time_probe(axis: String, cmp: Cmp, ms: i64) -> Probe {
    let b = time_bucket(ms);
    let (low, high) = match cmp {
        Cmp::Eq => (b, b),
        Cmp::Gt | Cmp::Ge => (b, i64::MAX),
        Cmp::Lt | Cmp::Le => (i64::MIN, b),
    };
    Probe::Buckets { axis, low, high }
}

/// The key every event declaring an error is indexed under.
pub(super) const DECLARES_ERROR: &str = "errorDeclaration";
/// The key every event with sensor elements is indexed under.
const HAS_SENSORS: &str = "sensorElementList";
/// The key every event with ILMD is indexed under.
const HAS_ILMD: &str = "ilmd";

/// Where a captured event is filed in the index: the keys it is listed
/// under (one per value an equality or presence test could match it by,
/// normalised as the test compares) and the buckets of the axes its
/// compared values fall on. A superset: the test itself still decides.
#[derive(Debug, Default)]
pub(super) struct DocIndex {
    pub keys: Vec<String>,
    /// (axis, bucket), as [`number_bucket`] and [`time_bucket`] cut them.
    pub ranked: Vec<(String, i64)>,
}

/// A number's bucket: its IEEE 754 bits in order, cut to the sign, the
/// exponent and 10 bits of mantissa. 1,024 buckets a power of two, each
/// under 0.1 % wide; an axis has as many as it has such values.
fn number_bucket(x: f64) -> i64 {
    ordered_bits(x) >> 42
}

/// A time's bucket: 2^22 ms (70 minutes).
fn time_bucket(ms: i64) -> i64 {
    ms >> 22
}

/// The float's bits as an `i64` in the float's order (IEEE 754's bits in
/// two's complement order: negative floats have their magnitude flipped).
fn ordered_bits(f: f64) -> i64 {
    let b = f.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

/// The axis of sensor report field `field` whose values a query with unit
/// `uom` compares: every value as written (no unit); those of a known
/// unit's dimension in its base unit (`dimension_value`); those of another
/// code as written, that code only.
fn number_axis(field: &str, uom: Option<&str>) -> String {
    match uom {
        None => format!("n/{field}"),
        Some(u) => match unit(u) {
            Some((dim, ..)) => format!("n/{field}/{dim}"),
            None => format!("n/{field}/={u}"),
        },
    }
}

/// `v` in unit `u` on its dimension's axis: the base unit, but Celsius for
/// temperatures, where the float's buckets are fine around cold-chain
/// thresholds (near 273 K they are a quarter of a kelvin wide).
fn dimension_value(v: f64, u: &str) -> Option<f64> {
    let (dim, factor, offset) = unit(u)?;
    let base = v * factor + offset;
    Some(if dim == "temperature" {
        base - 273.15
    } else {
        base
    })
}

fn time_axis(path: &[&str]) -> String {
    format!("t/{}", path.join("/"))
}

/// The keys and axes of an extension field: `?` its presence, `=` its
/// string (and boolean) values, `n` its numbers, `t` its times.
fn extension_key(kind: char, scope: Scope, inner: bool, iri: &str) -> String {
    format!(
        "x{kind}/{scope:?}/{}/{iri}",
        if inner { "inner" } else { "" }
    )
}

pub(super) fn doc_index(doc: &Value) -> DocIndex {
    let mut keys = Vec::new();
    let mut ranked = Vec::new();
    for (_, path, bare) in ONE_OF_PATHS {
        for s in strings(at(doc, path)) {
            keys.push(one_of_key(path, &bare.of(s)));
        }
    }
    for (_, list, field, bare) in TYPED_LISTS {
        for item in doc[*list].as_array().into_iter().flatten() {
            if let (Some(kind), Some(value)) = (item["type"].as_str(), item[*field].as_str()) {
                keys.push(typed_key(list, &bare.of(kind), value));
            }
        }
    }
    for element in doc["sensorElementList"].as_array().into_iter().flatten() {
        let meta = &element["sensorMetadata"];
        let reports = || element["sensorReport"].as_array().into_iter().flatten();
        for (_, field, metadata_too, fold) in SENSOR_FIELDS {
            if *metadata_too {
                if let Some(v) = meta[*field].as_str() {
                    keys.push(sensor_key(field, &fold.of(v)));
                }
            }
            for report in reports() {
                if let Some(v) = report[*field].as_str() {
                    keys.push(sensor_key(field, &fold.of(v)));
                }
            }
        }
        for field in ["startTime", "endTime"] {
            if let Some(ms) = millis(&meta[field]) {
                ranked.push((time_axis(&["sensor", field]), time_bucket(ms)));
            }
        }
        for report in reports() {
            if let Some(ms) = millis(&report["time"]).or_else(|| millis(&meta["time"])) {
                ranked.push((time_axis(&["sensor", "time"]), time_bucket(ms)));
            }
            let uom = report["uom"].as_str();
            for field in NUMBERS {
                let Some(v) = report[*field].as_f64() else {
                    continue;
                };
                ranked.push((number_axis(field, None), number_bucket(v)));
                if let Some(u) = uom {
                    let on_axis = dimension_value(v, u).unwrap_or(v);
                    ranked.push((number_axis(field, Some(u)), number_bucket(on_axis)));
                }
            }
        }
    }
    if let Some(ms) = millis(at(doc, ERROR_TIME)) {
        ranked.push((time_axis(ERROR_TIME), time_bucket(ms)));
    }
    if doc.get("errorDeclaration").is_some() {
        keys.push(DECLARES_ERROR.to_string());
    }
    if doc["sensorElementList"]
        .as_array()
        .is_some_and(|l| !l.is_empty())
    {
        keys.push(HAS_SENSORS.to_string());
    }
    if doc.get("ilmd").is_some() {
        keys.push(HAS_ILMD.to_string());
    }
    index_extensions(doc, &mut keys, &mut ranked);
    keys.sort();
    keys.dedup();
    // `Index::insert` files each (axis, bucket) once.
    DocIndex { keys, ranked }
}

const ERROR_TIME: &[&str] = &["errorDeclaration", "declarationTime"];

const SCOPES: [Scope; 8] = [
    Scope::Event,
    Scope::Ilmd,
    Scope::ReadPoint,
    Scope::BizLocation,
    Scope::ErrorDeclaration,
    Scope::SensorElement,
    Scope::SensorMetadata,
    Scope::SensorReport,
];

/// Files the extension fields of `doc`, in every scope, at the top of the
/// scope and (`INNER_`) nested inside a top-level one, under every full
/// name a query could give them (`names`).
fn index_extensions(doc: &Value, keys: &mut Vec<String>, ranked: &mut Vec<(String, i64)>) {
    // (scope, top-level key, value): the extension fields, namespaced keys.
    let mut found: Vec<(Scope, &str, &Value)> = Vec::new();
    for scope in SCOPES {
        for o in scope_objects(scope, doc) {
            for (k, v) in o.as_object().into_iter().flatten() {
                if k.contains(':') {
                    found.push((scope, k, v));
                }
            }
        }
    }
    if found.is_empty() {
        return;
    }
    let ctx = prefixes(doc);
    let mut file = |scope: Scope, inner: bool, key: &str, v: &Value| {
        for iri in full_names(key, &ctx) {
            keys.push(extension_key('?', scope, inner, &iri));
            let scalars = match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            };
            for s in scalars {
                let number = match s {
                    Value::String(text) => {
                        keys.push(format!(
                            "{}\u{1f}{text}",
                            extension_key('=', scope, inner, &iri)
                        ));
                        if let Some(ms) = date_or_time(text) {
                            ranked.push((extension_key('t', scope, inner, &iri), time_bucket(ms)));
                        }
                        text.parse::<f64>().ok().filter(|x| x.is_finite())
                    }
                    Value::Bool(b) => {
                        keys.push(format!(
                            "{}\u{1f}{b}",
                            extension_key('=', scope, inner, &iri)
                        ));
                        None
                    }
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                };
                if let Some(x) = number {
                    ranked.push((extension_key('n', scope, inner, &iri), number_bucket(x)));
                }
            }
        }
    };
    fn nested<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    out.push((k, v));
                    nested(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| nested(i, out)),
            _ => {}
        }
    }
    for (scope, key, v) in found {
        file(scope, false, key, v);
        let mut inside = Vec::new();
        nested(v, &mut inside);
        for (k, v) in inside {
            file(scope, true, k, v);
        }
    }
}

/// Every full name under which `names` takes key `key` to be the field: the
/// key itself, and for `prefix:local` the namespace and local name joined
/// as they are and with `#` between them.
fn full_names(key: &str, ctx: &std::collections::HashMap<String, String>) -> Vec<String> {
    let mut out = vec![key.to_string()];
    if let Some((prefix, local)) = key.split_once(':') {
        if let Some(ns) = ctx.get(prefix) {
            out.push(format!("{ns}{local}"));
            out.push(format!("{}#{local}", ns.trim_end_matches(['/', '#', ':'])));
        }
    }
    out.sort();
    out.dedup();
    out
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
        self.event.is_empty()
            && self.sensor.is_empty()
            && !self.sensor_exists
            && self.fields.is_empty()
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
        if let Some((_, path, bare)) = ONE_OF_PATHS.iter().find(|(p, ..)| *p == name) {
            return event(EventTest::OneOf {
                path,
                values: list(*bare),
                bare: *bare,
            });
        }
        match name {
            "GE_errorDeclarationTime" | "LT_errorDeclarationTime" => {
                let cmp = if name.starts_with("GE") {
                    Cmp::Ge
                } else {
                    Cmp::Lt
                };
                return event(EventTest::Time {
                    path: ERROR_TIME,
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
        for &(prefix, list_name, field, bare) in TYPED_LISTS {
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
        if let Some(&(_, field, metadata_too, fold)) =
            SENSOR_FIELDS.iter().find(|(p, ..)| *p == name)
        {
            return sensor(SensorTest::OneOf {
                field,
                metadata_too,
                values: values.iter().map(|v| fold.of(v)).collect(),
                fold,
            });
        }
        if name == "EQ_booleanValue" {
            return sensor(SensorTest::Boolean(match one()? {
                "true" => true,
                "false" => false,
                other => return Err(bad(name, format!("{other:?}: give true or false"))),
            }));
        }
        let Some((prefix, rest)) = name.split_once('_') else {
            return Ok(false);
        };
        if let Some((scope, inner, field)) = extension_field(rest) {
            let test = match (prefix, cmp_of(prefix)) {
                ("EXISTS", _) if values.is_empty() => FieldCmp::Exists,
                ("EXISTS", _) => return Err(bad(name, "takes no value")),
                ("EQ", _) => FieldCmp::OneOf(values.to_vec()),
                (_, Some(cmp)) => {
                    let v = one()?;
                    match (v.parse::<f64>(), date_or_time(v)) {
                        (Ok(x), _) if x.is_finite() => FieldCmp::Number(cmp, x),
                        (_, Some(ms)) => FieldCmp::Time(cmp, ms),
                        _ => {
                            return Err(bad(
                                name,
                                format!("{v:?}: compare with a number or a time (RFC 3339, or a date YYYY-MM-DD)"),
                            ))
                        }
                    }
                }
                _ => return Ok(false),
            };
            self.fields.push(FieldTest {
                scope,
                inner,
                field: field.to_string(),
                test,
            });
            return Ok(true);
        }
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

    /// For each test, the index lists an event it keeps must be in one
    /// of ([`doc_index`]): the candidates a query can start from.
    pub(super) fn candidates(&self) -> Vec<Vec<Probe>> {
        let key = |k: String| vec![Probe::Key(k)];
        let mut out = Vec::new();
        for t in &self.event {
            out.push(match t {
                EventTest::OneOf { path, values, .. } => values
                    .iter()
                    .map(|v| Probe::Key(one_of_key(path, v)))
                    .collect(),
                EventTest::Typed {
                    list, kind, values, ..
                } => values
                    .iter()
                    .map(|v| Probe::Key(typed_key(list, kind, v)))
                    .collect(),
                EventTest::Time { path, cmp, ms } => vec![time_probe(time_axis(path), *cmp, *ms)],
            });
        }
        // Whatever a test asks of sensors, error declarations or ILMD, the
        // event has them: a choice of its own when the tests' own lists are
        // larger (a comparison most readings meet).
        if self.sensor_exists
            || !self.sensor.is_empty()
            || self.fields.iter().any(|f| {
                matches!(
                    f.scope,
                    Scope::SensorElement | Scope::SensorMetadata | Scope::SensorReport
                )
            })
        {
            out.push(key(HAS_SENSORS.to_string()));
        }
        if self
            .event
            .iter()
            .any(|t| matches!(t, EventTest::Time { path, .. } if *path == ERROR_TIME))
            || self
                .fields
                .iter()
                .any(|f| f.scope == Scope::ErrorDeclaration)
        {
            out.push(key(DECLARES_ERROR.to_string()));
        }
        if self.fields.iter().any(|f| f.scope == Scope::Ilmd) {
            out.push(key(HAS_ILMD.to_string()));
        }
        for t in &self.sensor {
            match t {
                SensorTest::OneOf { field, values, .. } => out.push(
                    values
                        .iter()
                        .map(|v| Probe::Key(sensor_key(field, v)))
                        .collect(),
                ),
                SensorTest::Time { field, cmp, ms } => {
                    out.push(vec![time_probe(time_axis(&["sensor", field]), *cmp, *ms)])
                }
                SensorTest::Number { field, uom, cmp, x } => {
                    // The test converts the report's value into the query's
                    // unit; the axis holds it in the dimension's.
                    let (on_axis, scale) = match uom.as_deref() {
                        None => (Some(*x), 1.0),
                        Some(u) => match unit(u) {
                            Some((_, factor, _)) => (dimension_value(*x, u), factor),
                            None => (Some(*x), 1.0),
                        },
                    };
                    if let Some(v) = on_axis {
                        out.push(vec![number_probe(
                            number_axis(field, uom.as_deref()),
                            *cmp,
                            v,
                            x.abs().max(1.0) * scale,
                        )]);
                    }
                }
                SensorTest::Boolean(_) => {}
            }
        }
        for f in &self.fields {
            let axis = |kind| extension_key(kind, f.scope, f.inner, &f.field);
            out.push(match &f.test {
                FieldCmp::Exists => key(axis('?')),
                FieldCmp::OneOf(values) => values
                    .iter()
                    .flat_map(|v| {
                        let number = v.parse::<f64>().ok().filter(|x| x.is_finite());
                        std::iter::once(Probe::Key(format!("{}\u{1f}{v}", axis('=')))).chain(
                            number.map(|x| number_probe(axis('n'), Cmp::Eq, x, x.abs().max(1.0))),
                        )
                    })
                    .collect(),
                FieldCmp::Number(cmp, x) => {
                    vec![number_probe(axis('n'), *cmp, *x, x.abs().max(1.0))]
                }
                FieldCmp::Time(cmp, ms) => vec![time_probe(axis('t'), *cmp, *ms)],
            });
        }
        out
    }

    /// Whether the captured `event` passes every test.
    pub fn matches(&self, event: &Value) -> bool {
        self.event.iter().all(|t| event_test(t, event))
            && self.sensor_matches(event)
            && (self.fields.is_empty() || {
                let ctx = prefixes(event);
                self.fields.iter().all(|t| field_test(t, event, &ctx))
            })
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

/// The scope, nesting and IRI an extension-field parameter names after its
/// `EQ_`/`GT_`/…/`EXISTS_`; `None` if what follows is not one.
fn extension_field(rest: &str) -> Option<(Scope, bool, &str)> {
    let (inner, rest) = match rest.strip_prefix("INNER_") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (scope, field) = [
        ("ILMD_", Scope::Ilmd),
        ("readPoint_", Scope::ReadPoint),
        ("bizLocation_", Scope::BizLocation),
        ("ERROR_DECLARATION_", Scope::ErrorDeclaration),
        ("SENSORELEMENT_", Scope::SensorElement),
        ("SENSORMETADATA_", Scope::SensorMetadata),
        ("SENSORREPORT_", Scope::SensorReport),
    ]
    .into_iter()
    .find_map(|(p, scope)| rest.strip_prefix(p).map(|f| (scope, f)))
    .unwrap_or((Scope::Event, rest));
    let iri = field.contains("://") || field.starts_with("urn:");
    (iri && field.len() > 8).then_some((scope, inner, field))
}

/// Where event `event` sorts by `field` (`orderBy`): `recordTime`, or an
/// extension field at the event's top level named by its full IRI. Times
/// sort as their instants (milliseconds), numbers as numbers (an order-
/// keeping map of the float onto `i64`); `None` for an event without the
/// field or with another kind of value (such events sort last).
pub fn sort_key(field: &str, event: &Value) -> Option<i64> {
    let value = if field == "recordTime" {
        &event["recordTime"]
    } else {
        let t = FieldTest {
            scope: Scope::Event,
            inner: false,
            field: field.to_string(),
            test: FieldCmp::Exists,
        };
        *field_values(&t, event, &prefixes(event)).first()?
    };
    match value {
        Value::Number(n) => n.as_f64().map(ordered_bits),
        Value::String(s) => date_or_time(s),
        _ => None,
    }
}

/// A time as RFC 3339, or a date (midnight UTC), in milliseconds.
fn date_or_time(v: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis())
        })
}

/// The prefixes an event's `@context` (and EPCIS 2.0's own) defines.
fn prefixes(event: &Value) -> std::collections::HashMap<String, String> {
    // The prefixes EPCIS 2.0's own context defines, which an event's may
    // redefine.
    let mut out: std::collections::HashMap<String, String> = [
        ("epcis", "https://ref.gs1.org/epcis/"),
        ("cbv", "https://ref.gs1.org/cbv/"),
        ("cbvmda", "urn:epcglobal:cbv:mda:"),
        ("gs1", "https://gs1.org/voc/"),
        ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
        ("owl", "http://www.w3.org/2002/07/owl#"),
        ("xsd", "http://www.w3.org/2001/XMLSchema#"),
        ("dcterms", "http://purl.org/dc/terms/"),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n.to_string()))
    .collect();
    let ctx = &event["@context"];
    let objects: Vec<&Value> = match ctx {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for o in objects.into_iter().filter_map(Value::as_object) {
        for (p, n) in o {
            if let Some(n) = n.as_str().or_else(|| n["@id"].as_str()) {
                out.insert(p.clone(), n.to_string());
            }
        }
    }
    out
}

/// Whether key `key` (a compact `prefix:local`, or an IRI) names `field`:
/// namespace and local name joined as they are, or with `#` between them.
fn names(key: &str, ctx: &std::collections::HashMap<String, String>, field: &str) -> bool {
    if key == field {
        return true;
    }
    let Some((prefix, local)) = key.split_once(':') else {
        return false;
    };
    let Some(ns) = ctx.get(prefix) else {
        return false;
    };
    field.strip_prefix(ns.as_str()) == Some(local)
        || field
            .strip_prefix(ns.trim_end_matches(['/', '#', ':']))
            .and_then(|r| r.strip_prefix('#'))
            == Some(local)
}

/// The objects of `scope` in `event`.
fn scope_objects(scope: Scope, event: &Value) -> Vec<&Value> {
    let elements = || event["sensorElementList"].as_array().into_iter().flatten();
    match scope {
        Scope::Event => vec![event],
        Scope::Ilmd => vec![&event["ilmd"]],
        Scope::ReadPoint => vec![&event["readPoint"]],
        Scope::BizLocation => vec![&event["bizLocation"]],
        Scope::ErrorDeclaration => vec![&event["errorDeclaration"]],
        Scope::SensorElement => elements().collect(),
        Scope::SensorMetadata => elements().map(|e| &e["sensorMetadata"]).collect(),
        Scope::SensorReport => elements()
            .flat_map(|e| e["sensorReport"].as_array().into_iter().flatten())
            .collect(),
    }
}

/// The values of `t`'s field in `event`.
fn field_values<'a>(
    t: &FieldTest,
    event: &'a Value,
    ctx: &std::collections::HashMap<String, String>,
) -> Vec<&'a Value> {
    fn nested<'a>(
        v: &'a Value,
        ctx: &std::collections::HashMap<String, String>,
        field: &str,
        out: &mut Vec<&'a Value>,
    ) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    if names(k, ctx, field) {
                        out.push(v);
                    }
                    nested(v, ctx, field, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| nested(i, ctx, field, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for o in scope_objects(t.scope, event) {
        let Some(o) = o.as_object() else { continue };
        // Extension fields are the ones with a namespace: `prefix:local` or an IRI.
        for (k, v) in o.iter().filter(|(k, _)| k.contains(':')) {
            if t.inner {
                nested(v, ctx, &t.field, &mut out);
            } else if names(k, ctx, &t.field) {
                out.push(v);
            }
        }
    }
    out
}

fn field_test(
    t: &FieldTest,
    event: &Value,
    ctx: &std::collections::HashMap<String, String>,
) -> bool {
    let found = field_values(t, event, ctx);
    let scalars = found.iter().flat_map(|v| match v {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        other => vec![*other],
    });
    match &t.test {
        FieldCmp::Exists => !found.is_empty(),
        FieldCmp::OneOf(values) => scalars.into_iter().any(|v| match v {
            Value::String(s) => values.contains(s),
            Value::Number(n) => n.as_f64().is_some_and(|n| {
                values
                    .iter()
                    .any(|w| w.parse::<f64>().is_ok_and(|w| compare(Cmp::Eq, n, w)))
            }),
            Value::Bool(b) => values.iter().any(|w| w == &b.to_string()),
            _ => false,
        }),
        FieldCmp::Number(cmp, x) => scalars.into_iter().any(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .is_some_and(|v| compare(*cmp, v, *x))
        }),
        FieldCmp::Time(cmp, ms) => scalars.into_iter().any(|v| {
            v.as_str()
                .and_then(date_or_time)
                .is_some_and(|t| time_ok(*cmp, t, *ms))
        }),
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

    /// Whether `filed` is in one of `choice`'s lists.
    fn listed(choice: &[Probe], filed: &DocIndex) -> bool {
        choice.iter().any(|p| match p {
            Probe::Key(k) => filed.keys.contains(k),
            Probe::Buckets { axis, low, high } => filed
                .ranked
                .iter()
                .any(|(a, b)| a == axis && (low..=high).contains(&b)),
        })
    }

    /// The index's promise: an event a filter keeps is in every one of
    /// its candidate choices, so starting from any of them loses nothing.
    fn assert_listed(f: &DocFilter, event: &Value) {
        if f.matches(event) {
            let filed = doc_index(event);
            for choice in f.candidates() {
                assert!(listed(&choice, &filed), "{choice:?} misses {filed:?}");
            }
        }
    }

    proptest::proptest! {
        /// Any reading, in any temperature unit, against any threshold near
        /// it in any unit (or none), by every comparison: a match is in the
        /// buckets the comparison starts from.
        #[test]
        fn a_reading_a_comparison_keeps_is_in_its_buckets(
            v in -60.0f64..60.0,
            digits in 0u32..4,
            has in 0usize..3,
            want in 0usize..4,
            nudge in -2i32..=2,
            cmp in 0usize..5,
        ) {
            let units = ["CEL", "FAH", "KEL"];
            let scale = 10f64.powi(digits as i32);
            let v = (v * scale).round() / scale;
            let event = json!({"sensorElementList": [{"sensorReport": [
                {"type": "Temperature", "value": v, "maxValue": v, "uom": units[has]}
            ]}]});
            // The threshold: the reading in the query's unit, nudged by an
            // ulp or by a hundredth either way.
            let (name, x) = match units.get(want) {
                Some(u) => (format!("_maxValue_{u}"), convert(v, units[has], u).unwrap()),
                None => ("_value".to_string(), v),
            };
            let x = match nudge {
                -2 => x - 0.01,
                2 => x + 0.01,
                -1 => x.next_down(),
                1 => x.next_up(),
                _ => x,
            };
            let prefix = ["EQ", "GT", "GE", "LT", "LE"][cmp];
            let f = filter(&[(&format!("{prefix}{name}"), &x.to_string())]);
            assert_listed(&f, &event);
        }
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
            let f = filter(&params);
            assert_eq!(f.matches(&e), expected, "{params:?}");
            assert_listed(&f, &e);
        }
        let bare = json!({"type": "ObjectEvent"});
        assert!(!filter(&[("EXISTS_sensorElement", "")]).matches(&bare));
        assert!(filter(&[]).matches(&bare));
    }

    #[test]
    fn extension_fields_are_found_by_their_full_name_whatever_their_prefix() {
        let e = json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "https://ns.example.com/epcis/"}],
            "type": "ObjectEvent",
            "ex:band": "chilled",
            "ex:pallets": 12,
            "ex:inspected": "2026-11-02T10:00:00Z",
            "ex:outer": {"ex:inner": {"ex:deep": 7}},
            "ilmd": {"ex:bestBefore": "2026-12-01", "ex:grower": "Farm A"},
            "readPoint": {"id": "urn:epc:id:sgln:0614141.00001.0", "ex:dock": "D4"},
            "sensorElementList": [{"sensorMetadata": {"ex:calibrated": true}, "sensorReport": [{"type": "Temperature", "value": 3, "ex:probe": "P2"}]}]
        });
        let ns = "https://ns.example.com/epcis/";
        for (params, expected) in [
            (vec![(format!("EQ_{ns}band"), "chilled")], true),
            (vec![(format!("EQ_{ns}band"), "frozen|ambient")], false),
            (
                vec![(
                    "EQ_https://ns.example.com/epcis#band".to_string(),
                    "chilled",
                )],
                true,
            ),
            (vec![(format!("EQ_{ns}pallets"), "12.0")], true),
            (vec![(format!("GE_{ns}pallets"), "12")], true),
            (vec![(format!("GT_{ns}pallets"), "12")], false),
            (vec![(format!("LT_{ns}inspected"), "2026-11-03")], true),
            (
                vec![(format!("GE_ILMD_{ns}bestBefore"), "2026-11-30T00:00:00Z")],
                true,
            ),
            (vec![(format!("EQ_ILMD_{ns}grower"), "Farm A")], true),
            (vec![(format!("EQ_{ns}grower"), "Farm A")], false),
            (vec![(format!("EXISTS_ILMD_{ns}grower"), "")], true),
            (vec![(format!("EXISTS_{ns}missing"), "")], false),
            (vec![(format!("EQ_INNER_{ns}deep"), "7")], true),
            (vec![(format!("EQ_{ns}deep"), "7")], false),
            (vec![(format!("EQ_readPoint_{ns}dock"), "D4")], true),
            (
                vec![(format!("EQ_SENSORMETADATA_{ns}calibrated"), "true")],
                true,
            ),
            (vec![(format!("EQ_SENSORREPORT_{ns}probe"), "P2")], true),
            (vec![(format!("EQ_SENSORREPORT_{ns}probe"), "P1")], false),
        ] {
            let p: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            let f = filter(&p);
            assert_eq!(f.matches(&e), expected, "{params:?}");
            assert_listed(&f, &e);
        }
    }

    /// Every equality parameter's test is one the index keeps keys for
    /// (else a query by it alone would walk every event).
    #[test]
    fn every_equality_parameter_has_index_keys() {
        for name in [
            "EQ_transformationID",
            "EQ_persistentDisposition_set",
            "EQ_persistentDisposition_unset",
            "EQ_errorReason",
            "EQ_correctiveEventID",
            "EQ_source_owning_party",
            "EQ_destination_location",
            "EQ_bizTransaction_po",
            "EQ_type",
            "EQ_deviceID",
            "EQ_dataProcessingMethod",
            "EQ_microorganism",
            "EQ_chemicalSubstance",
            "EQ_bizRules",
            "EQ_stringValue",
            "EQ_hexBinaryValue",
            "EQ_uriValue",
        ] {
            let f = filter(&[(name, "x")]);
            assert!(!f.candidates().is_empty(), "{name}");
        }
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
            ("GT_https://ns.example.com/epcis/pallets", "many"),
            ("EXISTS_https://ns.example.com/epcis/pallets", "1"),
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
