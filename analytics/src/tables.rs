//! The Arrow tables analytics builds from committed entries.
//!
//! Every row names the ledger entry it came from (`shard`, `entry_index`,
//! `entry_id`), so any answer built on these tables can be proven. Values are
//! stored exactly as the ledger holds them: temperatures as `DECIMAL(7,2)`
//! °C, humidity as `DECIMAL(4,1)` %RH, shocks as `DECIMAL(5,2)` g, positions as
//! `DECIMAL(10,7)` degrees; times as UTC millisecond timestamps.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Decimal128Builder, FixedSizeBinaryBuilder,
    Int16Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use ledger::entry::{CustodyEvent, SubjectRole};
use ledger::reading::Reading;

use crate::rules::Evidence;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn entry_fields() -> Vec<Field> {
    vec![
        Field::new("shard", DataType::UInt32, false),
        Field::new("entry_index", DataType::UInt64, false),
        Field::new("entry_id", DataType::FixedSizeBinary(32), false),
    ]
}

fn list_of_strings(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

/// `readings`: one row per sensor reading.
pub fn readings_schema() -> SchemaRef {
    let mut f = entry_fields();
    f.extend([
        Field::new("device", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, true),
        Field::new("seq", DataType::UInt64, false),
        Field::new("time", ts(), false),
        Field::new("temp_c", DataType::Decimal128(7, 2), false),
        Field::new("humidity_pct", DataType::Decimal128(4, 1), true),
        Field::new("shock_g", DataType::Decimal128(5, 2), true),
        Field::new("door_open", DataType::Boolean, true),
        Field::new("light_lux", DataType::UInt32, true),
        Field::new("lat", DataType::Decimal128(10, 7), true),
        Field::new("lon", DataType::Decimal128(10, 7), true),
        Field::new("battery_mv", DataType::UInt16, true),
        Field::new("defrost", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(f))
}

/// `events`: one row per EPCIS event, flattened.
pub fn events_schema() -> SchemaRef {
    let mut f = entry_fields();
    f.extend([
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, true),
        Field::new("biz_step", DataType::Utf8, true),
        Field::new("disposition", DataType::Utf8, true),
        Field::new("event_time", ts(), false),
        Field::new("tz_offset_min", DataType::Int16, false),
        Field::new("recorded_by", DataType::Utf8, false),
        Field::new("read_point", DataType::Utf8, true),
        Field::new("biz_location", DataType::Utf8, true),
        Field::new("parent", DataType::Utf8, true),
        list_of_strings("epcs"),
        list_of_strings("children"),
        list_of_strings("inputs"),
        list_of_strings("outputs"),
        list_of_strings("sources"),
        list_of_strings("destinations"),
        Field::new("sensor_readings", DataType::UInt32, false),
    ]);
    Arc::new(Schema::new(f))
}

/// `event_subjects`: one row per identifier an event names, with its
/// role and quantity (the join table for lots and their quantities).
pub fn event_subjects_schema() -> SchemaRef {
    let mut f = entry_fields();
    f.extend([
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_time", ts(), false),
        Field::new("role", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("quantity", DataType::Float64, true),
        Field::new("uom", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(f))
}

/// `associations`: which logger (or container) held which subject, when.
pub fn associations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("parent", DataType::Utf8, false),
        Field::new("child", DataType::Utf8, false),
        Field::new("from_time", ts(), false),
        Field::new("to_time", ts(), true),
        Field::new("add_event_id", DataType::Utf8, false),
        Field::new("remove_event_id", DataType::Utf8, true),
        Field::new("shard", DataType::UInt32, false),
        Field::new("entry_index", DataType::UInt64, false),
    ]))
}

/// `verdicts`: the rule verdicts on the ledger.
pub fn verdicts_schema() -> SchemaRef {
    let mut f = entry_fields();
    f.extend([
        Field::new("rule", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("from_time", ts(), false),
        Field::new("to_time", ts(), true),
        Field::new("explanation", DataType::Utf8, false),
        list_of_strings("evidence"),
    ]);
    Arc::new(Schema::new(f))
}

/// A builder's column: taken (the builder starts empty) or copied.
fn out(b: &mut dyn ArrayBuilder, take: bool) -> ArrayRef {
    if take {
        b.finish()
    } else {
        b.finish_cloned()
    }
}

fn decimal(precision: u8, scale: i8) -> Decimal128Builder {
    Decimal128Builder::new()
        .with_precision_and_scale(precision, scale)
        .expect("static precision and scale are valid")
}

/// The entry columns every table but `associations` starts with.
struct EntryCols {
    shard: UInt32Builder,
    index: UInt64Builder,
    id: FixedSizeBinaryBuilder,
}

impl EntryCols {
    fn new() -> EntryCols {
        EntryCols {
            shard: UInt32Builder::new(),
            index: UInt64Builder::new(),
            id: FixedSizeBinaryBuilder::new(32),
        }
    }

    fn append(&mut self, at: &Evidence) {
        self.shard.append_value(at.shard);
        self.index.append_value(at.index);
        self.id.append_value(at.id).expect("ids are 32 bytes");
    }

    fn build(&mut self, take: bool) -> Vec<ArrayRef> {
        vec![
            out(&mut self.shard, take),
            out(&mut self.index, take),
            out(&mut self.id, take),
        ]
    }
}

/// A table's rows not yet written, gathered column by column.
pub trait Rows {
    type Batch;

    /// The rows so far as a batch, emptying the builder when `take`.
    fn build(&mut self, take: bool) -> Self::Batch;

    /// The rows so far as a batch; the builder starts empty again.
    fn finish(&mut self) -> Self::Batch {
        self.build(true)
    }

    /// The rows so far as a batch, keeping them.
    fn snapshot(&mut self) -> Self::Batch {
        self.build(false)
    }
}

/// Rows of `readings` not yet written.
pub struct ReadingsBuilder {
    entry: EntryCols,
    device: StringBuilder,
    owner: StringBuilder,
    seq: UInt64Builder,
    time: TimestampMillisecondBuilder,
    temp: Decimal128Builder,
    humidity: Decimal128Builder,
    shock: Decimal128Builder,
    door: BooleanBuilder,
    light: UInt32Builder,
    lat: Decimal128Builder,
    lon: Decimal128Builder,
    battery: UInt16Builder,
    defrost: BooleanBuilder,
    len: usize,
}

impl Default for ReadingsBuilder {
    fn default() -> Self {
        ReadingsBuilder {
            entry: EntryCols::new(),
            device: StringBuilder::new(),
            owner: StringBuilder::new(),
            seq: UInt64Builder::new(),
            time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            temp: decimal(7, 2),
            humidity: decimal(4, 1),
            shock: decimal(5, 2),
            door: BooleanBuilder::new(),
            light: UInt32Builder::new(),
            lat: decimal(10, 7),
            lon: decimal(10, 7),
            battery: UInt16Builder::new(),
            defrost: BooleanBuilder::new(),
            len: 0,
        }
    }
}

impl ReadingsBuilder {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn append(
        &mut self,
        at: &Evidence,
        device: &str,
        owner: Option<&str>,
        seq: u64,
        r: &Reading,
    ) {
        self.entry.append(at);
        self.device.append_value(device);
        self.owner.append_option(owner);
        self.seq.append_value(seq);
        self.time.append_value(r.time_ms);
        self.temp.append_value(i128::from(r.temp_centi_c));
        self.humidity
            .append_option(r.humidity_permille.map(i128::from));
        self.shock.append_option(r.shock_centi_g.map(i128::from));
        self.door.append_option(r.door_open);
        self.light.append_option(r.light_lux);
        self.lat
            .append_option(r.location.map(|p| i128::from(p.lat_e7)));
        self.lon
            .append_option(r.location.map(|p| i128::from(p.lon_e7)));
        self.battery.append_option(r.battery_mv);
        self.defrost.append_value(r.defrost);
        self.len += 1;
    }
}

impl Rows for ReadingsBuilder {
    type Batch = RecordBatch;

    fn build(&mut self, take: bool) -> RecordBatch {
        let mut cols = self.entry.build(take);
        cols.extend([
            out(&mut self.device, take),
            out(&mut self.owner, take),
            out(&mut self.seq, take),
            out(&mut self.time, take),
            out(&mut self.temp, take),
            out(&mut self.humidity, take),
            out(&mut self.shock, take),
            out(&mut self.door, take),
            out(&mut self.light, take),
            out(&mut self.lat, take),
            out(&mut self.lon, take),
            out(&mut self.battery, take),
            out(&mut self.defrost, take),
        ]);
        if take {
            self.len = 0;
        }
        RecordBatch::try_new(readings_schema(), cols).expect("columns match the schema")
    }
}

/// Rows of `events` and `event_subjects` not yet written.
pub struct EventsBuilder {
    entry: EntryCols,
    event_id: StringBuilder,
    event_type: StringBuilder,
    action: StringBuilder,
    biz_step: StringBuilder,
    disposition: StringBuilder,
    time: TimestampMillisecondBuilder,
    tz: Int16Builder,
    recorded_by: StringBuilder,
    read_point: StringBuilder,
    biz_location: StringBuilder,
    parent: StringBuilder,
    lists: [ListBuilder<StringBuilder>; 6],
    sensor: UInt32Builder,
    subjects: SubjectsBuilder,
    len: usize,
}

struct SubjectsBuilder {
    entry: EntryCols,
    event_id: StringBuilder,
    time: TimestampMillisecondBuilder,
    role: StringBuilder,
    subject: StringBuilder,
    quantity: datafusion::arrow::array::Float64Builder,
    uom: StringBuilder,
}

impl Default for EventsBuilder {
    fn default() -> Self {
        let list = || ListBuilder::new(StringBuilder::new());
        EventsBuilder {
            entry: EntryCols::new(),
            event_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            action: StringBuilder::new(),
            biz_step: StringBuilder::new(),
            disposition: StringBuilder::new(),
            time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            tz: Int16Builder::new(),
            recorded_by: StringBuilder::new(),
            read_point: StringBuilder::new(),
            biz_location: StringBuilder::new(),
            parent: StringBuilder::new(),
            lists: [list(), list(), list(), list(), list(), list()],
            sensor: UInt32Builder::new(),
            subjects: SubjectsBuilder {
                entry: EntryCols::new(),
                event_id: StringBuilder::new(),
                time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
                role: StringBuilder::new(),
                subject: StringBuilder::new(),
                quantity: Default::default(),
                uom: StringBuilder::new(),
            },
            len: 0,
        }
    }
}

/// `sourceList` / `destinationList` ids of the event document, as received.
/// A custody event's document as captured, parsed once per reader (the
/// lists it carries beyond the entry's fields: sources, destinations,
/// business transactions); `Null` if it does not parse.
pub(crate) fn document(e: &CustodyEvent) -> serde_json::Value {
    serde_json::from_slice(&e.document).unwrap_or_default()
}

pub(crate) fn party_list(doc: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    doc.get(list)
        .and_then(|l| l.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get(field).and_then(|v| v.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl EventsBuilder {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `doc`: the event's parsed document (`document`).
    pub fn append(&mut self, at: &Evidence, e: &CustodyEvent, doc: &serde_json::Value) {
        self.entry.append(at);
        self.event_id.append_value(&e.event_id);
        self.event_type.append_value(e.kind.name());
        self.action
            .append_option(e.action.map(ledger::entry::Action::name));
        self.biz_step.append_option(e.biz_step.as_deref());
        self.disposition.append_option(e.disposition.as_deref());
        self.time.append_value(e.event_time_ms);
        self.tz.append_value(e.tz_offset_min);
        self.recorded_by.append_value(&e.recorded_by);
        self.read_point.append_option(e.read_point.as_deref());
        self.biz_location.append_option(e.biz_location.as_deref());
        let of = |role: SubjectRole| {
            e.subjects
                .iter()
                .filter(move |s| s.role == role)
                .map(|s| s.id.clone())
        };
        self.parent.append_option(of(SubjectRole::Parent).next());
        let lists: [Vec<String>; 6] = [
            of(SubjectRole::Object).collect(),
            of(SubjectRole::Child).collect(),
            of(SubjectRole::Input).collect(),
            of(SubjectRole::Output).collect(),
            party_list(doc, "sourceList", "source"),
            party_list(doc, "destinationList", "destination"),
        ];
        for (b, items) in self.lists.iter_mut().zip(lists) {
            for i in items {
                b.values().append_value(i);
            }
            b.append(true);
        }
        self.sensor.append_value(e.readings.len() as u32);
        let s = &mut self.subjects;
        for subj in &e.subjects {
            s.entry.append(at);
            s.event_id.append_value(&e.event_id);
            s.time.append_value(e.event_time_ms);
            s.role.append_value(subj.role.name());
            s.subject.append_value(&subj.id);
            s.quantity
                .append_option(subj.quantity.as_ref().map(|q| q.milli as f64 / 1000.0));
            s.uom
                .append_option(subj.quantity.as_ref().and_then(|q| q.uom.as_deref()));
        }
        self.len += 1;
    }
}

/// Its batches are (`events`, `event_subjects`).
impl Rows for EventsBuilder {
    type Batch = (RecordBatch, RecordBatch);

    fn build(&mut self, take: bool) -> (RecordBatch, RecordBatch) {
        let mut cols = self.entry.build(take);
        cols.extend([
            out(&mut self.event_id, take),
            out(&mut self.event_type, take),
            out(&mut self.action, take),
            out(&mut self.biz_step, take),
            out(&mut self.disposition, take),
            out(&mut self.time, take),
            out(&mut self.tz, take),
            out(&mut self.recorded_by, take),
            out(&mut self.read_point, take),
            out(&mut self.biz_location, take),
            out(&mut self.parent, take),
        ]);
        for b in self.lists.iter_mut() {
            cols.push(out(b, take));
        }
        cols.push(out(&mut self.sensor, take));
        let events = RecordBatch::try_new(events_schema(), cols).expect("columns match the schema");
        let s = &mut self.subjects;
        let mut cols = s.entry.build(take);
        cols.extend([
            out(&mut s.event_id, take),
            out(&mut s.time, take),
            out(&mut s.role, take),
            out(&mut s.subject, take),
            out(&mut s.quantity, take),
            out(&mut s.uom, take),
        ]);
        let subjects =
            RecordBatch::try_new(event_subjects_schema(), cols).expect("columns match the schema");
        if take {
            self.len = 0;
        }
        (events, subjects)
    }
}

/// Rows of `verdicts` not yet written.
pub struct VerdictsBuilder {
    entry: EntryCols,
    rule: StringBuilder,
    subject: StringBuilder,
    kind: StringBuilder,
    from: TimestampMillisecondBuilder,
    to: TimestampMillisecondBuilder,
    explanation: StringBuilder,
    evidence: ListBuilder<StringBuilder>,
    len: usize,
}

impl Default for VerdictsBuilder {
    fn default() -> Self {
        VerdictsBuilder {
            entry: EntryCols::new(),
            rule: StringBuilder::new(),
            subject: StringBuilder::new(),
            kind: StringBuilder::new(),
            from: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            to: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            explanation: StringBuilder::new(),
            evidence: ListBuilder::new(StringBuilder::new()),
            len: 0,
        }
    }
}

impl VerdictsBuilder {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn append(&mut self, at: &Evidence, v: &ledger::entry::RuleVerdict) {
        self.entry.append(at);
        self.rule.append_value(&v.rule);
        self.subject.append_value(&v.subject);
        self.kind.append_value(v.kind.name());
        self.from.append_value(v.from_ms);
        self.to.append_option(v.to_ms);
        self.explanation.append_value(&v.explanation);
        for e in &v.evidence {
            self.evidence
                .values()
                .append_value(format!("{}/{}", e.shard, e.index));
        }
        self.evidence.append(true);
        self.len += 1;
    }
}

impl Rows for VerdictsBuilder {
    type Batch = RecordBatch;

    fn build(&mut self, take: bool) -> RecordBatch {
        let mut cols = self.entry.build(take);
        cols.extend([
            out(&mut self.rule, take),
            out(&mut self.subject, take),
            out(&mut self.kind, take),
            out(&mut self.from, take),
            out(&mut self.to, take),
            out(&mut self.explanation, take),
            out(&mut self.evidence, take),
        ]);
        if take {
            self.len = 0;
        }
        RecordBatch::try_new(verdicts_schema(), cols).expect("columns match the schema")
    }
}

/// The whole `associations` table from the watch intervals.
pub fn associations_batch(watches: &crate::watches::Watches) -> RecordBatch {
    let (mut kind, mut parent, mut child) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut from = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut to = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let (mut add, mut remove) = (StringBuilder::new(), StringBuilder::new());
    let (mut shard, mut index) = (UInt32Builder::new(), UInt64Builder::new());
    for (p, w) in watches.all() {
        kind.append_value(match w.kind {
            crate::watches::WatchKind::Association => "association",
            crate::watches::WatchKind::Aggregation => "aggregation",
        });
        parent.append_value(p);
        child.append_value(&w.child);
        from.append_value(w.from_ms);
        to.append_option(w.to_ms);
        add.append_value(&w.add_event);
        remove.append_option(w.remove_event.as_deref());
        shard.append_value(w.at.shard);
        index.append_value(w.at.index);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(kind.finish()),
        Arc::new(parent.finish()),
        Arc::new(child.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(add.finish()),
        Arc::new(remove.finish()),
        Arc::new(shard.finish()),
        Arc::new(index.finish()),
    ];
    RecordBatch::try_new(associations_schema(), cols).expect("columns match the schema")
}
