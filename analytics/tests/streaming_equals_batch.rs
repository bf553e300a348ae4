//! One definition, two evaluators: over random logger streams, cut into
//! random batches and interleaved at random, the streaming engine (entries
//! as the feed hands them out) and the batch evaluator (the `readings`
//! table, sliced at random) record the same verdicts.

use analytics::batch::BatchEvaluator;
use analytics::engine::Engine;
use analytics::tables::Rows;
use analytics::{EngineState, RulesConfig};
use ledger::entry::{Action, CustodyEvent, Entry, EventKind, SignedBatch, Subject, SubjectRole};
use ledger::reading::{DeviceBatch, GeoPoint, Reading};
use proptest::prelude::*;

const T0: i64 = 1_794_096_000_000;

/// The GTINs of the lots the loggers watch, one per profile under test.
const LOTS: [(&str, &str, &str); 4] = [
    (
        "urn:epc:class:lgtin:0614141.010006.V1",
        "00614141100064",
        "vaccines_2_8",
    ),
    (
        "urn:epc:class:lgtin:0614141.010001.L1",
        "00614141100019",
        "chilled_produce",
    ),
    (
        "urn:epc:class:lgtin:0614141.010005.F1",
        "00614141100057",
        "frozen",
    ),
    (
        "urn:epc:class:lgtin:0614141.010004.S1",
        "00614141100040",
        "fresh_fish",
    ),
];

fn config() -> RulesConfig {
    let mut c = RulesConfig::default();
    for (_, gtin, profile) in LOTS {
        c.products.insert(gtin.into(), profile.into());
    }
    c.validate().unwrap();
    c
}

#[derive(Debug, Clone)]
struct Step {
    dt_s: i64,
    dtemp: i32,
    jump: Option<i32>,
    door: Option<bool>,
    humidity: u16,
    shock: Option<u16>,
    moved: bool,
    defrost: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![6 => 30i64..600, 2 => 600i64..3600, 1 => 3600i64..10_800, 1 => -120i64..30],
        -60i32..60,
        prop::option::weighted(0.05, -1500i32..1500),
        prop::option::weighted(0.5, prop::bool::weighted(0.2)),
        500u16..1000,
        prop::option::weighted(0.03, 0u16..900),
        (prop::bool::weighted(0.7), prop::bool::weighted(0.05)),
    )
        .prop_map(
            |(dt_s, dtemp, jump, door, humidity, shock, (moved, defrost))| Step {
                dt_s,
                dtemp,
                jump,
                door,
                humidity,
                shock,
                moved,
                defrost,
            },
        )
}

/// A logger's readings from random steps around `base` (0.01 °C).
fn readings(base: i32, steps: &[Step]) -> Vec<Reading> {
    let (mut t, mut temp, mut lat) = (T0, base, 500_000_000i32);
    steps
        .iter()
        .map(|s| {
            t += s.dt_s * 1000;
            temp = (temp + s.dtemp + s.jump.unwrap_or(0)).clamp(-5000, 5000);
            if s.moved {
                lat += 30_000;
            }
            Reading {
                time_ms: t,
                temp_centi_c: temp,
                humidity_permille: Some(s.humidity),
                shock_centi_g: s.shock,
                door_open: s.door,
                light_lux: None,
                location: Some(GeoPoint {
                    lat_e7: lat,
                    lon_e7: 0,
                }),
                battery_mv: Some(3600),
                defrost: s.defrost,
            }
        })
        .collect()
}

fn event(kind: EventKind, subjects: Vec<(SubjectRole, &str)>, event_id: String) -> Entry {
    Entry::Custody(CustodyEvent {
        recorded_by: "urn:epc:id:sgln:0614141.00001.0".into(),
        event_id,
        kind,
        action: Some(Action::Add),
        event_time_ms: T0,
        tz_offset_min: 0,
        biz_step: Some("installing".into()),
        disposition: None,
        read_point: None,
        biz_location: None,
        subjects: subjects
            .into_iter()
            .map(|(role, id)| Subject {
                role,
                id: id.into(),
                quantity: None,
            })
            .collect(),
        readings: Vec::new(),
        document: b"{}".to_vec(),
    })
}

/// The lot made by the organisation that then puts its logger on it (an
/// association counts only for the lot's holder).
fn commission(lot: &str, n: usize) -> Entry {
    event(
        EventKind::Object,
        vec![(SubjectRole::Object, lot)],
        format!("urn:uuid:00000000-0000-4000-9000-{n:012}"),
    )
}

fn association(device: &str, lot: &str, n: usize) -> Entry {
    event(
        EventKind::Association,
        vec![(SubjectRole::Parent, device), (SubjectRole::Child, lot)],
        format!("urn:uuid:00000000-0000-4000-8000-{n:012}"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn streaming_and_batch_record_the_same_verdicts(
        streams in prop::collection::vec((0usize..5, prop::collection::vec(step(), 1..400)), 1..4),
        cuts in prop::collection::vec(1usize..80, 1..40),
        order_seed in any::<u64>(),
        slice in 1usize..500,
    ) {
        let config = config();
        let mut entries = Vec::new();
        // Each logger's batches, in its own order.
        let mut per_device: Vec<Vec<Entry>> = Vec::new();
        for (d, (lot, steps)) in streams.iter().enumerate() {
            let device = format!("urn:epc:id:giai:0614141.P{d:05}");
            let base = [500, 200, -2200, 0, 2000][*lot];
            if let Some((lot_id, _, _)) = LOTS.get(*lot) {
                entries.push(commission(lot_id, d));
                entries.push(association(&device, lot_id, d));
            }
            let rs = readings(base, steps);
            let mut batches = Vec::new();
            let (mut i, mut k) = (0, 0);
            while i < rs.len() {
                let n = cuts[k % cuts.len()].min(rs.len() - i);
                batches.push(Entry::Readings(SignedBatch {
                    batch: DeviceBatch { device: device.clone(), first_seq: i as u64, readings: rs[i..i + n].to_vec() },
                    signature: [0; 64],
                }));
                i += n;
                k += 1;
            }
            per_device.push(batches);
        }
        // Interleave the loggers' batches at random, each logger in order.
        let mut rng = order_seed;
        let mut next = vec![0usize; per_device.len()];
        loop {
            let open: Vec<usize> = (0..per_device.len()).filter(|&d| next[d] < per_device[d].len()).collect();
            if open.is_empty() { break; }
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let d = open[(rng >> 33) as usize % open.len()];
            entries.push(per_device[d][next[d]].clone());
            next[d] += 1;
        }

        let mut engine = Engine::new(config.clone(), EngineState::default());
        let mut streamed = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            engine.apply(0, i as u64, &e.to_bytes());
            streamed.append(&mut engine.outbox);
        }
        // Every logger put on a lot watches it (its holder put it there).
        for (d, (lot, _)) in streams.iter().enumerate() {
            let device = format!("urn:epc:id:giai:0614141.P{d:05}");
            let watched = engine.state.first_watched(&device);
            prop_assert_eq!(watched.as_deref(), LOTS.get(*lot).map(|(l, _, _)| *l));
        }
        let table = engine.tail.readings.finish();
        let state = engine.state.clone();
        let mut batch = BatchEvaluator::new(&config, &state);
        let mut at = 0;
        while at < table.num_rows() {
            let n = slice.min(table.num_rows() - at);
            batch.push(&table.slice(at, n)).unwrap();
            at += n;
        }
        let result = batch.finish();
        let key = |p: &analytics::engine::Proposal| format!("{:?}", p.verdict);
        // Suspending a device is a policy action on the stream (it depends on
        // reinstatements recorded since); the batch evaluator judges readings.
        let mut a: Vec<String> = streamed.iter().filter(|p| p.verdict.kind != ledger::entry::VerdictKind::Suspend).map(key).collect();
        let mut b: Vec<String> = result.verdicts.iter().map(key).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        // And the loggers' states agree, to the last reading.
        for (device, eval) in &engine.state.devices {
            prop_assert_eq!(Some(eval), result.devices.get(device));
        }
    }
}
