//! SQL over the tables: flushed Parquet parts and the rows not yet flushed
//! answer together, before and after a flush.

mod common;

use analytics::datafusion::arrow::array::{AsArray, RecordBatch};
use analytics::datafusion::arrow::datatypes::Int64Type;
use analytics::{Consumer, Options};
use fixtures::Scale;

async fn one_number(c: &mut Consumer, sql: &str) -> i64 {
    let ctx = c.session().await.unwrap();
    let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_flushed_and_unflushed_rows_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (node, world) = common::load_world(dir.path(), Scale::Tiny, 7, 2).await;
    let options = Options {
        flush_rows: usize::MAX,
        ..Options::default()
    };
    let mut c = Consumer::open(node, common::rules_for(&world), options).unwrap();
    c.catch_up().await.unwrap();
    assert!(c.manifest().parts.is_empty(), "nothing flushed yet");
    let readings = world.reading_count() as i64;
    assert_eq!(
        one_number(&mut c, "SELECT count(*) FROM readings").await,
        readings
    );
    let events = one_number(&mut c, "SELECT count(*) FROM events").await;
    assert_eq!(events, world.events.len() as i64);

    c.sync().await.unwrap();
    assert!(!c.manifest().parts.is_empty());
    assert_eq!(
        one_number(&mut c, "SELECT count(*) FROM readings").await,
        readings
    );
    assert_eq!(
        one_number(&mut c, "SELECT count(*) FROM events").await,
        events
    );
    // Every reading names the entry it came in, and that entry's device.
    assert_eq!(
        one_number(&mut c, "SELECT count(DISTINCT device) FROM readings").await,
        world.devices.len() as i64
    );
    assert_eq!(
        one_number(&mut c, "SELECT count(*) FROM readings WHERE owner IS NULL").await,
        0,
        "every reading's owner is known"
    );
    // The association intervals: each logger set to watch its lots.
    assert!(
        one_number(
            &mut c,
            "SELECT count(*) FROM associations WHERE kind = 'association'"
        )
        .await
            > 0
    );
    // A cross-table question: breaches per product lot joined with the events about it.
    let n = one_number(
        &mut c,
        "SELECT count(DISTINCT v.subject) FROM verdicts v JOIN event_subjects s ON s.subject = v.subject WHERE v.kind = 'breach'",
    )
    .await;
    assert!(n > 0);
}
