//! Downsampled readings come from the ledger and agree with the readings the
//! fixtures generated; a second question reads only the entries it needs;
//! the loggers that watched a lot are found through its containers.

mod common;

use std::collections::BTreeMap;

use analytics::readings::{ReadingsIndex, SeriesError};
use fixtures::Scale;

const HOUR: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_buckets_match_the_generated_readings() {
    let dir = tempfile::tempdir().unwrap();
    let (node, world) = common::load_world(dir.path(), Scale::Tiny, 7, 2).await;
    let device = world
        .devices
        .iter()
        .max_by_key(|d| d.to_ms - d.from_ms)
        .unwrap();
    let mut expected: BTreeMap<i64, (u64, i32, i32, i64)> = BTreeMap::new();
    for b in world.signed_batches(device, 720) {
        for r in &b.batch.readings {
            let e = expected
                .entry(r.time_ms.div_euclid(HOUR) * HOUR)
                .or_insert((0, i32::MAX, i32::MIN, 0));
            e.0 += 1;
            e.1 = e.1.min(r.temp_centi_c);
            e.2 = e.2.max(r.temp_centi_c);
            e.3 += i64::from(r.temp_centi_c);
        }
    }
    assert!(
        expected.len() > 24,
        "the device reports for more than a day"
    );
    let index = ReadingsIndex::new();
    let (from, to) = (i64::MIN / 2, i64::MAX / 2);
    assert!(matches!(
        index.series(&node, &device.id, from, to, HOUR),
        Err(SeriesError::TooManyBuckets { .. })
    ));
    let (first, last) = (
        *expected.keys().next().unwrap(),
        *expected.keys().last().unwrap() + HOUR,
    );
    let all = index.series(&node, &device.id, first, last, HOUR).unwrap();
    assert_eq!(all.buckets.len(), expected.len());
    for (b, (start, (count, min, max, sum))) in all.buckets.iter().zip(&expected) {
        assert_eq!(b.from_ms, *start);
        assert_eq!(b.count, *count);
        assert_eq!(b.min_c, f64::from(*min) / 100.0);
        assert_eq!(b.max_c, f64::from(*max) / 100.0);
        assert!((b.mean_c - *sum as f64 / *count as f64 / 100.0).abs() < 0.006);
        assert!(!b.entries.is_empty());
    }
    let whole = all.entries_read;

    // One day in the middle: only the entries that meet it are read again.
    let day = index
        .series(
            &node,
            &device.id,
            first + 24 * HOUR,
            first + 48 * HOUR,
            HOUR,
        )
        .unwrap();
    assert_eq!(day.buckets.len(), 24);
    assert!(
        day.entries_read * 2 < whole,
        "a day read {} entries, the whole series {whole}",
        day.entries_read
    );
    // A device nobody registered has no readings.
    let none = index
        .series(&node, "urn:epc:id:giai:0614141.nothing", first, last, HOUR)
        .unwrap();
    assert!(none.buckets.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lots_watchers_include_its_pallet_logger() {
    let dir = tempfile::tempdir().unwrap();
    let (node, world) = common::load_world(dir.path(), Scale::Tiny, 7, 2).await;
    let (g, _) = analytics::lineage::scan(&node).unwrap();
    let mut checked = 0;
    for d in &world.devices {
        for lot in &d.monitors {
            let w = g.watchers(lot, i64::MIN, i64::MAX);
            assert!(
                w.iter().any(|w| w.device == d.id),
                "{} watched {lot}: {w:?}",
                d.id
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    // Verdicts are in the graph: every breach the rules recorded is about a
    // subject the graph knows.
    let lot = &world.lots[0];
    let gtin = analytics::watches::gtin_of(&lot.id).unwrap();
    let number = analytics::lineage::lot_number(&lot.id).unwrap();
    assert_eq!(
        g.lot_named(&gtin, &number).as_deref(),
        Some(lot.id.as_str())
    );
    let view = g.lot(&lot.id).unwrap();
    assert_eq!(view.gtin.as_deref(), Some(gtin.as_str()));
    assert_eq!(view.origin, world.orgs[lot.origin].id);
}
