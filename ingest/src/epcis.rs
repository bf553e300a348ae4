//! EPCIS 2.0 capture: an `EPCISDocument` (or `EPCISQueryDocument`) in JSON /
//! JSON-LD becomes custody events on the ledger.
//!
//! The fields coldtrail indexes are lifted into [`CustodyEvent`]: type,
//! action, time, CBV business step and disposition, read point, business
//! location, the identifiers by role, and `sensorElementList` readings in the
//! device-batch reading model. The event itself is kept whole (with the
//! document's `@context`), so a query returns it unchanged in meaning.

use chrono::DateTime;
use ledger::entry::{Action, CustodyEvent, EventKind, Quantity, Subject, SubjectRole};
use ledger::reading::Reading;
use serde_json::{Map, Value};

use api::problem::ApiError;

/// One captured event and the identifier that homes it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub partition_key: String,
    pub event: CustodyEvent,
    /// The event carries an `errorDeclaration`: it corrects an earlier event
    /// with the same `eventID`.
    pub declares_error: bool,
    /// Canonical JSON of the event, for telling a resent event from a new one.
    pub fingerprint: String,
}

/// Accepts an EPC URN (`urn:epc:id:…`, `urn:epc:class:…`, `urn:epc:idpat:…`;
/// the GS1 key schemes checked in full) or a GS1 Digital Link URI (the
/// whole URI syntax: keys, qualifiers, attributes, check digits).
pub fn check_identifier(id: &str) -> Result<(), ApiError> {
    gs1::check_identifier(id).map_err(|e| match e.check_digit_of() {
        Some(("01", gtin)) => ApiError::InvalidGtin(gtin.to_string()),
        _ => ApiError::InvalidIdentifier {
            id: id.to_string(),
            reason: match e {
                gs1::Gs1Error::NotDigitalLink(_, why) => format!(
                    "{why}; use an EPC URN (urn:epc:id:…, urn:epc:class:…) or a GS1 Digital Link URI"
                ),
                gs1::Gs1Error::Epc(_, why) => why,
                other => other.to_string(),
            },
        },
    })
}

fn str_field<'a>(
    e: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, ApiError> {
    match e.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::InvalidEvent(format!(
            "{at}: `{key}` must be a string"
        ))),
    }
}

fn id_field(e: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, ApiError> {
    match e.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => match o.get("id") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(ApiError::InvalidEvent(format!(
                "{at}: `{key}` must be {{\"id\": \"…\"}}"
            ))),
        },
        Some(_) => Err(ApiError::InvalidEvent(format!(
            "{at}: `{key}` must be an object with an `id`"
        ))),
    }
}

fn parse_time(s: &str, what: &str, at: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::InvalidEvent(format!("{at}: `{what}` {s:?} is not an ISO 8601 time with an offset (like 2026-11-28T10:00:00.000+01:00)")))
}

/// `eventTimeZoneOffset` as the EPCIS grammar has it: `+hh:mm` or `-hh:mm`,
/// two digits each, hours 00–13 with any minutes 00–59, or exactly 14:00.
pub fn parse_offset(s: &str, at: &str) -> Result<i16, ApiError> {
    let bad = || {
        ApiError::InvalidEvent(format!(
            "{at}: `eventTimeZoneOffset` {s:?} must be ±hh:mm between -14:00 and +14:00, like +01:00 or -05:30"
        ))
    };
    let &[sign, h1, h2, b':', m1, m2] = s.as_bytes() else {
        return Err(bad());
    };
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let digit = |b: u8| {
        b.is_ascii_digit()
            .then(|| i16::from(b - b'0'))
            .ok_or_else(bad)
    };
    let (h, m) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
    if m > 59 || h > 14 || (h == 14 && m != 0) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

fn subjects_of(
    e: &Map<String, Value>,
    key: &str,
    role: SubjectRole,
    at: &str,
    out: &mut Vec<Subject>,
) -> Result<(), ApiError> {
    match e.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            for item in items {
                let id = item.as_str().ok_or_else(|| {
                    ApiError::InvalidEvent(format!(
                        "{at}: `{key}` must list identifiers as strings"
                    ))
                })?;
                check_identifier(id)?;
                out.push(Subject {
                    role,
                    id: id.to_string(),
                    quantity: None,
                });
            }
            Ok(())
        }
        Some(_) => Err(ApiError::InvalidEvent(format!(
            "{at}: `{key}` must be an array"
        ))),
    }
}

fn quantities_of(
    e: &Map<String, Value>,
    key: &str,
    role: SubjectRole,
    at: &str,
    out: &mut Vec<Subject>,
) -> Result<(), ApiError> {
    let Some(v) = e.get(key) else { return Ok(()) };
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::InvalidEvent(format!("{at}: `{key}` must be an array")))?;
    for item in items {
        let o = item.as_object().ok_or_else(|| {
            ApiError::InvalidEvent(format!("{at}: each of `{key}` must be an object"))
        })?;
        let class = o.get("epcClass").and_then(Value::as_str).ok_or_else(|| {
            ApiError::InvalidEvent(format!("{at}: each of `{key}` needs an `epcClass`"))
        })?;
        check_identifier(class)?;
        let quantity = match o.get("quantity") {
            None => None,
            Some(q) => {
                let q = q
                    .as_f64()
                    .filter(|q| q.is_finite() && q.abs() < 1e15)
                    .ok_or_else(|| {
                        ApiError::InvalidEvent(format!(
                            "{at}: a `quantity` in `{key}` must be a number"
                        ))
                    })?;
                Some(Quantity {
                    milli: (q * 1000.0).round() as i64,
                    uom: o.get("uom").and_then(Value::as_str).map(str::to_string),
                })
            }
        };
        out.push(Subject {
            role,
            id: class.to_string(),
            quantity,
        });
    }
    Ok(())
}

/// What one sensor element reported at one time, in SI-ish units.
#[derive(Default)]
struct Sample {
    time: i64,
    temp_c: Option<f64>,
    humidity_pct: Option<f64>,
    lux: Option<f64>,
}

/// Readings from `sensorElementList`: one per distinct time, where a
/// temperature was reported (the reading model's one required quantity).
fn readings_of(
    e: &Map<String, Value>,
    event_time: i64,
    at: &str,
) -> Result<Vec<Reading>, ApiError> {
    let Some(list) = e.get("sensorElementList") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| {
        ApiError::InvalidEvent(format!("{at}: `sensorElementList` must be an array"))
    })?;
    let mut out: Vec<Reading> = Vec::new();
    for element in list {
        let meta_time = match element
            .pointer("/sensorMetadata/time")
            .and_then(Value::as_str)
        {
            Some(t) => parse_time(t, "sensorMetadata.time", at)?,
            None => event_time,
        };
        let reports = element
            .get("sensorReport")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ApiError::InvalidEvent(format!(
                    "{at}: each sensor element needs a `sensorReport` array"
                ))
            })?;
        let mut by_time: Vec<Sample> = Vec::new();
        for r in reports {
            let time = match r.get("time").and_then(Value::as_str) {
                Some(t) => parse_time(t, "sensorReport.time", at)?,
                None => meta_time,
            };
            let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
            let kind = kind.strip_prefix("gs1:").unwrap_or(kind);
            let value = ["value", "meanValue"]
                .iter()
                .find_map(|k| r.get(*k).and_then(Value::as_f64));
            let (Some(value), uom) = (value, r.get("uom").and_then(Value::as_str)) else {
                continue;
            };
            let slot = match by_time.iter().position(|s| s.time == time) {
                Some(i) => i,
                None => {
                    by_time.push(Sample {
                        time,
                        ..Sample::default()
                    });
                    by_time.len() - 1
                }
            };
            let sample = &mut by_time[slot];
            match (kind, uom) {
                ("Temperature", Some("CEL") | None) => sample.temp_c = Some(value),
                ("Temperature", Some("FAH")) => sample.temp_c = Some((value - 32.0) * 5.0 / 9.0),
                ("Temperature", Some("KEL")) => sample.temp_c = Some(value - 273.15),
                ("RelativeHumidity", Some("P1") | None) => sample.humidity_pct = Some(value),
                ("Illuminance", Some("LUX") | None) => sample.lux = Some(value),
                _ => {}
            }
        }
        for Sample {
            time,
            temp_c,
            humidity_pct: humidity,
            lux,
        } in by_time
        {
            let Some(temp) = temp_c else { continue };
            let r = Reading {
                humidity_permille: humidity.map(|h| (h * 10.0).round().clamp(0.0, 1000.0) as u16),
                light_lux: lux.map(|l| l.round().clamp(0.0, u32::MAX as f64) as u32),
                ..Reading::new(time, (temp * 100.0).round().clamp(-1e9, 1e9) as i32)
            };
            r.validate().map_err(|err| {
                ApiError::InvalidEvent(format!("{at}: sensor reading at {time}: {err}"))
            })?;
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.time_ms);
    Ok(out)
}

/// JSON with object keys sorted, whatever order they came in.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&m[*k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    s
}

/// Parses a capture body into events ready to append.
pub fn parse_document(body: &[u8], recorded_by: &str) -> Result<Vec<Captured>, ApiError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ApiError::InvalidBody("an EPCIS document is a JSON object".into()))?;
    let events = match obj.get("type").and_then(Value::as_str) {
        Some("EPCISDocument") => doc.pointer("/epcisBody/eventList"),
        Some("EPCISQueryDocument") => doc.pointer("/epcisBody/queryResults/resultsBody/eventList"),
        other => {
            return Err(ApiError::InvalidBody(format!(
                "`type` is {other:?}; capture takes an EPCISDocument (or EPCISQueryDocument)"
            )))
        }
    };
    let events = events.and_then(Value::as_array).ok_or_else(|| {
        ApiError::InvalidBody("the document has no `epcisBody.eventList` array".into())
    })?;
    if events.is_empty() {
        return Err(ApiError::InvalidBody(
            "`eventList` is empty; capture at least one event".into(),
        ));
    }
    let context = obj.get("@context").cloned();
    events
        .iter()
        .enumerate()
        .map(|(i, ev)| parse_event(ev, i, context.as_ref(), recorded_by))
        .collect()
}

fn parse_event(
    ev: &Value,
    i: usize,
    context: Option<&Value>,
    recorded_by: &str,
) -> Result<Captured, ApiError> {
    let at = format!("eventList[{i}]");
    let e = ev
        .as_object()
        .ok_or_else(|| ApiError::InvalidEvent(format!("{at} is not an object")))?;
    let type_name = str_field(e, "type", &at)?.unwrap_or("");
    let kind = match type_name {
        "ObjectEvent" => EventKind::Object,
        "AggregationEvent" => EventKind::Aggregation,
        "TransformationEvent" => EventKind::Transformation,
        "AssociationEvent" => EventKind::Association,
        "TransactionEvent" => EventKind::Transaction,
        other => return Err(ApiError::UnknownEventType(other.to_string())),
    };
    let event_time_ms = parse_time(
        str_field(e, "eventTime", &at)?
            .ok_or_else(|| ApiError::InvalidEvent(format!("{at}: `eventTime` is required")))?,
        "eventTime",
        &at,
    )?;
    let tz_offset_min = parse_offset(
        str_field(e, "eventTimeZoneOffset", &at)?.ok_or_else(|| {
            ApiError::InvalidEvent(format!("{at}: `eventTimeZoneOffset` is required"))
        })?,
        &at,
    )?;
    let action = event_action(e, kind, type_name, &at)?;
    let subjects = event_subjects(e, &at)?;
    let read_point = id_field(e, "readPoint", &at)?;
    let biz_location = id_field(e, "bizLocation", &at)?;
    let readings = readings_of(e, event_time_ms, &at)?;

    // The event as stored: itself, with the document's context unless it has its own.
    let mut stored = e.clone();
    if let (Some(ctx), false) = (context, stored.contains_key("@context")) {
        stored.insert("@context".into(), ctx.clone());
    }
    let stored = Value::Object(stored);
    let fingerprint = ledger::Domain::EventFingerprint
        .hash(canonical_json(&stored).as_bytes())
        .to_hex();
    let event_id = match str_field(e, "eventID", &at)? {
        Some(id) => id.to_string(),
        // No eventID: name the event by its content, so a resend is recognised.
        None => format!("urn:coldtrail:event:{fingerprint}"),
    };
    crate::wire::check_id(&event_id, "eventID").map_err(|_| {
        ApiError::InvalidEvent(format!("{at}: `eventID` is not a usable identifier"))
    })?;

    let partition_key = home_key(kind, &subjects, &read_point, &biz_location, &event_id);

    Ok(Captured {
        partition_key,
        declares_error: e.contains_key("errorDeclaration"),
        fingerprint,
        event: CustodyEvent {
            recorded_by: recorded_by.to_string(),
            event_id,
            kind,
            action,
            event_time_ms,
            tz_offset_min,
            biz_step: str_field(e, "bizStep", &at)?.map(str::to_string),
            disposition: str_field(e, "disposition", &at)?.map(str::to_string),
            read_point,
            biz_location,
            subjects,
            readings,
            document: serde_json::to_vec(&stored).expect("JSON serialises"),
        },
    })
}

/// An event's `action`: required, and ADD, OBSERVE or DELETE, except on a
/// TransformationEvent, which has none.
fn event_action(
    e: &serde_json::Map<String, Value>,
    kind: EventKind,
    type_name: &str,
    at: &str,
) -> Result<Option<Action>, ApiError> {
    Ok(match str_field(e, "action", at)? {
        None if kind == EventKind::Transformation => None,
        None => {
            return Err(ApiError::InvalidEvent(format!(
                "{at}: `action` (ADD, OBSERVE or DELETE) is required for {type_name}"
            )))
        }
        Some("ADD") => Some(Action::Add),
        Some("OBSERVE") => Some(Action::Observe),
        Some("DELETE") => Some(Action::Delete),
        Some(other) => {
            return Err(ApiError::InvalidEvent(format!(
                "{at}: `action` {other:?} is not ADD, OBSERVE or DELETE"
            )))
        }
    })
}

/// Everything an event names, each with its role: the parent, objects,
/// children, inputs and outputs, by EPC and by class with quantity, every
/// identifier checked.
fn event_subjects(e: &serde_json::Map<String, Value>, at: &str) -> Result<Vec<Subject>, ApiError> {
    let mut subjects = Vec::new();
    if let Some(parent) = str_field(e, "parentID", at)? {
        check_identifier(parent)?;
        subjects.push(Subject {
            role: SubjectRole::Parent,
            id: parent.to_string(),
            quantity: None,
        });
    }
    subjects_of(e, "epcList", SubjectRole::Object, at, &mut subjects)?;
    quantities_of(e, "quantityList", SubjectRole::Object, at, &mut subjects)?;
    subjects_of(e, "childEPCs", SubjectRole::Child, at, &mut subjects)?;
    quantities_of(
        e,
        "childQuantityList",
        SubjectRole::Child,
        at,
        &mut subjects,
    )?;
    subjects_of(e, "inputEPCList", SubjectRole::Input, at, &mut subjects)?;
    quantities_of(
        e,
        "inputQuantityList",
        SubjectRole::Input,
        at,
        &mut subjects,
    )?;
    subjects_of(e, "outputEPCList", SubjectRole::Output, at, &mut subjects)?;
    quantities_of(
        e,
        "outputQuantityList",
        SubjectRole::Output,
        at,
        &mut subjects,
    )?;
    Ok(subjects)
}

/// The event's home: the identifier it is chiefly about (a transformation's
/// first output or input; an aggregation's, association's or transaction's
/// parent; an object event's first object), else where it happened, else
/// its id.
fn home_key(
    kind: EventKind,
    subjects: &[Subject],
    read_point: &Option<String>,
    biz_location: &Option<String>,
    event_id: &str,
) -> String {
    let first_of = |role: SubjectRole| {
        subjects
            .iter()
            .find(|s| s.role == role)
            .map(|s| s.id.clone())
    };
    match kind {
        EventKind::Transformation => {
            first_of(SubjectRole::Output).or_else(|| first_of(SubjectRole::Input))
        }
        EventKind::Aggregation | EventKind::Association | EventKind::Transaction => {
            first_of(SubjectRole::Parent).or_else(|| subjects.first().map(|s| s.id.clone()))
        }
        EventKind::Object => first_of(SubjectRole::Object),
    }
    .or_else(|| read_point.clone())
    .or_else(|| biz_location.clone())
    .unwrap_or_else(|| event_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zone_offsets_follow_the_epcis_grammar_exactly() {
        for (s, min) in [
            ("+01:00", 60),
            ("-05:30", -330),
            ("+00:00", 0),
            ("-00:00", 0),
            ("+13:59", 839),
            ("+14:00", 840),
            ("-14:00", -840),
        ] {
            assert_eq!(parse_offset(s, "e").unwrap(), min, "{s}");
        }
        // Found by outside testing: "+-9:-32768" overflowed, "+01:-30" was accepted.
        for s in [
            "+-9:-32768",
            "+01:-30",
            "+1:00",
            "+01:0",
            "+001:00",
            "01:00",
            "Z",
            "+14:01",
            "+15:00",
            "+01:60",
            "+01-00",
            "",
            "+",
            "+٠١:٠٠",
            "+01:00 ",
        ] {
            assert!(parse_offset(s, "e").is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn identifiers_follow_gs1() {
        assert!(check_identifier("https://id.gs1.org/01/09506000134352/21/12345").is_ok());
        assert!(matches!(
            check_identifier("https://id.gs1.org/01/09506000134353/10/L1"),
            Err(ApiError::InvalidGtin(_))
        ));
        assert!(check_identifier("https://id.example.com/8003/00614141000012345").is_ok());
        // Query strings, fragments and any host's case are Digital Link too.
        for ok in [
            "https://id.gs1.org/01/09520123456788?3103=000195",
            "https://id.gs1.org/01/09520123456788#frag",
            "https://ID.GS1.ORG/01/09520123456788",
        ] {
            assert!(check_identifier(ok).is_ok(), "{ok}");
        }
        // What people type is for the resolver, not for captured data: an
        // upper-case scheme, short names, a GTIN-13, a qualifier in the query.
        for typed in [
            "HTTPS://id.gs1.org/01/09520123456788",
            "https://id.gs1.org/gtin/09520123456788",
            "https://id.gs1.org/01/9520123456788",
            "https://id.gs1.org/01/09520123456788?10=L1",
        ] {
            let e = check_identifier(typed).unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidIdentifier { .. }),
                "{typed}: {e:?}"
            );
        }
        // Keys other than the GTIN are checked too.
        for bad in [
            "https://id.gs1.org/00/106141411234567898",
            "https://id.gs1.org/414/9520123456789",
            "https://id.gs1.org/01/09520123456788/10/",
            "https://id.gs1.org/01/09520123456788/21/S/10/L",
            "https://id.gs1.org/01/09520123456788?17=261231&17=261231",
            "https://id.gs1.org/01/09520123456788?9999=1",
            "urn:epc:id:sgtin:0614141.81234.6789",
        ] {
            let e = check_identifier(bad).unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidIdentifier { .. }),
                "{bad}: {e:?}"
            );
        }
        assert!(check_identifier("urn:epc:class:lgtin:4012345.012345.998877").is_ok());
        assert!(matches!(
            check_identifier("urn:epc:id:"),
            Err(ApiError::InvalidIdentifier { .. })
        ));
        assert!(matches!(
            check_identifier("lot-42"),
            Err(ApiError::InvalidIdentifier { .. })
        ));
    }

    #[test]
    fn offsets_and_times_parse_strictly() {
        assert_eq!(parse_offset("+01:00", "x").unwrap(), 60);
        assert_eq!(parse_offset("-05:30", "x").unwrap(), -330);
        assert!(parse_offset("0100", "x").is_err());
        assert_eq!(
            parse_time("2019-04-02T15:00:00.000+01:00", "t", "x").unwrap(),
            1_554_213_600_000
        );
        assert!(parse_time("yesterday", "t", "x").is_err());
    }
}
