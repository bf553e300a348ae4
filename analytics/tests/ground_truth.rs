//! The fixtures' ground truth: every injected incident is found with the
//! right rule, on the right logger, at the right time, attributed to the lot
//! the logger watched; nothing is raised where nothing was injected; and the
//! streaming consumer's verdicts on the ledger are exactly the batch
//! evaluator's over the persisted tables.

mod common;

use std::collections::BTreeSet;

use analytics::batch::BatchEvaluator;
use analytics::persist::read_parquet;
use analytics::{Consumer, Finding, Options};
use fixtures::{IncidentKind, Scale};

const MIN: i64 = 60_000;

/// The rules an incident of each kind may raise (a 5-hour frozen breach is
/// above −15 °C at once and above −18 °C for more than an hour: both).
fn rules_for(kind: IncidentKind) -> &'static [&'static str] {
    use IncidentKind::*;
    match kind {
        HeatConsecutive => &["vaccine_heat"],
        Freeze => &["vaccine_freeze"],
        CumulativeHeat => &["chilled_2h_above_5c"],
        FrozenBriefRise => &[],
        FrozenBreach => &["frozen_above_minus15c", "frozen_above_minus18c"],
        RateOfChange => &["rate_of_change"],
        MissingData => &["missing_data"],
        DoorOpen => &["door_open"],
        Shock => &["shock"],
        Humidity => &["humidity_low"],
        ReeferFailure => &["reefer_swings"],
        Dwell => &["dwell"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_incident_is_found_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (node, world) = common::load_world(dir.path(), Scale::Tiny, 7, 2).await;
    let config = common::rules_for(&world);
    let mut c = Consumer::open(node.clone(), config.clone(), Options::default()).unwrap();
    c.sync().await.unwrap();

    // The batch evaluator over the flushed `readings` table.
    let watches = c.engine.state.watches.clone();
    let mut batch = BatchEvaluator::new(&config, &watches);
    for f in c.store().files(c.manifest(), "readings") {
        for b in read_parquet(&f).unwrap() {
            batch.push(&b).unwrap();
        }
    }
    let result = batch.finish();
    assert_eq!(result.readings, world.reading_count());

    let interval = |device: &str| {
        world
            .devices
            .iter()
            .find(|d| d.id == device)
            .map(|d| i64::from(d.interval_min) * MIN)
            .unwrap()
    };
    // Air relaxes toward an incident's target over minutes: a threshold is
    // crossed up to ten minutes after the injected change.
    let tolerance = |f: &Finding| interval(&f.device) + 10 * MIN;
    let matches = |f: &Finding, i: &fixtures::Incident| {
        f.device == i.device
            && rules_for(i.kind).contains(&f.rule.as_str())
            && f.from_ms >= i.from_ms - tolerance(f)
            && f.from_ms <= i.to_ms
            && f.to_ms <= i.to_ms + tolerance(f)
    };
    let show = |fs: &[Finding]| {
        fs.iter()
            .map(|f| format!("{} {} {}", f.rule, f.device, f.summary))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let incidents = &world.truth.incidents;
    assert!(
        incidents.len() >= 11,
        "the tiny world carries an incident of every kind: {incidents:?}"
    );
    for i in incidents {
        let found: Vec<&Finding> = result.findings.iter().filter(|f| matches(f, i)).collect();
        if i.kind == IncidentKind::FrozenBriefRise {
            continue;
        }
        assert!(
            !found.is_empty(),
            "incident {:?} on {} ({}) not found; findings:\n{}",
            i.kind,
            i.device,
            i.what,
            show(&result.findings)
        );
        // Starts within a reading interval of the start (plus the time air
        // takes to cross the limit), for rules that judge from the start.
        if !matches!(
            i.kind,
            IncidentKind::CumulativeHeat | IncidentKind::ReeferFailure
        ) {
            let f = found[0];
            assert!(
                (f.from_ms - i.from_ms).abs() <= tolerance(f),
                "{:?}: found from {} for injected {}",
                i.kind,
                f.from_ms,
                i.from_ms
            );
        }
    }
    for f in &result.findings {
        assert!(
            incidents.iter().any(|i| matches(f, i)),
            "a breach where none was injected: {} on {}: {}",
            f.rule,
            f.device,
            f.summary
        );
    }

    // Attribution: the lots the logger watched, nothing else.
    for p in &result.verdicts {
        let f = result
            .findings
            .iter()
            .find(|f| {
                f.rule == p.verdict.rule && f.from_ms == p.verdict.from_ms
                    || f.alarm_ms == p.verdict.from_ms && f.rule == p.verdict.rule
            })
            .unwrap();
        let device = world.devices.iter().find(|d| d.id == f.device).unwrap();
        assert!(
            device.monitors.contains(&p.verdict.subject),
            "{} attributed to {} but {} watches {:?}",
            f.rule,
            p.verdict.subject,
            device.id,
            device.monitors
        );
    }

    // Streaming = batch: the verdicts on the ledger are the batch's verdicts.
    let on_ledger: BTreeSet<String> = common::ledger_verdicts(&node)
        .iter()
        .map(|v| format!("{v:?}"))
        .collect();
    let from_batch: BTreeSet<String> = result
        .verdicts
        .iter()
        .map(|p| format!("{:?}", p.verdict))
        .collect();
    assert_eq!(on_ledger, from_batch);
    assert!(on_ledger.len() >= incidents.len(), "{}", on_ledger.len());
}
