//! Lineage against the fixtures' ground truth, through a real node: the
//! forward trace of the contaminated lot is exactly the lots that descend from
//! it; a transformed lot's backward trace is exactly what it was made from;
//! co-exposure finds what rode in the same reefer; every item names entries
//! that hold the events it rests on.

mod common;

use std::collections::BTreeSet;

use analytics::lineage::{self, At, Direction, Limits};
use fixtures::Scale;
use ledger::entry::Entry;

/// The world of seed 7 at `scale`, loaded into a new two-shard node in
/// `dir`, and the graph a scan of its logs builds.
async fn loaded(
    dir: &std::path::Path,
    scale: Scale,
) -> (
    fixtures::World,
    std::sync::Arc<shards::Node>,
    lineage::Lineage,
) {
    let world = fixtures::generate(7, scale, common::START_MS);
    let node = common::open(dir, 2);
    fixtures::load::events_into_node(&node, &world)
        .await
        .unwrap();
    let (graph, _) = lineage::scan(&node).unwrap();
    (world, node, graph)
}

/// The lots `lot` was made from, directly or not, per the world's own record.
fn ancestors(world: &fixtures::World, lot: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut frontier = vec![lot.to_string()];
    while let Some(l) = frontier.pop() {
        if let Some(x) = world.lots.iter().find(|x| x.id == l) {
            for i in &x.inputs {
                if out.insert(i.clone()) {
                    frontier.push(i.clone());
                }
            }
        }
    }
    out
}

/// The entry `at` holds a custody event with `event_id`.
fn holds_event(node: &shards::Node, at: &At, event_id: &str) {
    let bytes = node
        .shard(at.shard)
        .unwrap()
        .store()
        .entry(at.index)
        .unwrap();
    assert_eq!(
        ledger::entry_id(&bytes).0,
        at.id,
        "the named id is the entry's"
    );
    match Entry::from_bytes(&bytes).unwrap() {
        Entry::Custody(e) => assert_eq!(e.event_id, event_id),
        other => panic!("entry {}/{} is a {}", at.shard, at.index, other.kind_name()),
    }
}

async fn check(scale: Scale) {
    let dir = tempfile::tempdir().unwrap();
    let (world, node, graph) = loaded(dir.path(), scale).await;

    let truth = &world.truth;
    let forward = graph
        .trace(
            &truth.contaminated_lot,
            Direction::Forward,
            Limits::default(),
        )
        .unwrap();
    assert!(forward.cut.is_empty(), "{:?}", forward.cut);
    let found: BTreeSet<&str> = forward.others().collect();
    let expected: BTreeSet<&str> = truth.affected_lots.iter().map(String::as_str).collect();
    assert_eq!(
        found, expected,
        "{scale:?}: the forward trace is the truth's affected set"
    );
    assert!(!expected.is_empty());
    for lot in &forward.lots {
        for e in &lot.events {
            holds_event(&node, &e.entry, &e.event_id);
        }
        for link in &lot.links {
            holds_event(&node, &link.event.entry, &link.event.event_id);
        }
        if lot.lot != forward.root {
            assert!(!lot.links.is_empty(), "{} says how it was reached", lot.lot);
            let now = lot.now.as_ref().expect("every descendant is somewhere");
            assert!(!now.holder.is_empty());
        }
    }

    let mut transformed = 0;
    for lot in world.lots.iter().filter(|l| !l.inputs.is_empty()) {
        let back = graph
            .trace(&lot.id, Direction::Backward, Limits::default())
            .unwrap();
        let found: BTreeSet<String> = back.others().map(str::to_string).collect();
        assert_eq!(
            found,
            ancestors(&world, &lot.id),
            "{scale:?}: backward from {}",
            lot.id
        );
        transformed += 1;
    }
    assert!(transformed >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_match_the_ground_truth_in_the_tiny_world() {
    check(Scale::Tiny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_match_the_ground_truth_in_the_demo_world() {
    check(Scale::Demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_match_the_ground_truth_in_the_large_world() {
    check(Scale::Large).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_exposure_finds_the_lots_that_shared_the_breached_reefer() {
    let dir = tempfile::tempdir().unwrap();
    let (world, _node, graph) = loaded(dir.path(), Scale::Demo).await;
    // The breach the truth planted on a reefer, and the lots that reefer carried.
    let incident = world
        .truth
        .incidents
        .iter()
        .find(|i| {
            world.devices.iter().any(|d| {
                d.id == i.device && d.kind == fixtures::DeviceKind::Reefer && d.monitors.len() > 1
            })
        })
        .expect("a breach on a shared reefer");
    let reefer = world
        .devices
        .iter()
        .find(|d| d.id == incident.device)
        .unwrap();
    let (first, others) = reefer.monitors.split_first().unwrap();
    let found = graph
        .co_exposure(first, incident.from_ms, incident.to_ms)
        .unwrap();
    let via_reefer: BTreeSet<&str> = found
        .exposures
        .iter()
        .filter(|x| x.shared == reefer.id)
        .map(|x| x.subject.as_str())
        .collect();
    let expected: BTreeSet<&str> = others.iter().map(String::as_str).collect();
    assert_eq!(via_reefer, expected);
    for x in &found.exposures {
        assert!(x.from_ms <= incident.to_ms && x.to_ms.is_none_or(|t| t >= incident.from_ms));
        assert_eq!(x.entries.len(), 2, "each side's association entry");
    }
    // Outside any ride the reefer shares nothing with it.
    let before = graph
        .co_exposure(
            first,
            world.start_ms - 10 * 86_400_000,
            world.start_ms - 86_400_000,
        )
        .unwrap();
    assert!(before.exposures.iter().all(|x| x.shared != reefer.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsma_204_lists_every_cte_of_the_contaminated_lots_chain_with_its_kdes() {
    use analytics::lineage::fsma204::{cells, required, Cte, CteRow, MasterData, Place, COLUMNS};
    let dir = tempfile::tempdir().unwrap();
    let (world, node, graph) = loaded(dir.path(), Scale::Demo).await;
    let chain = graph.chain(&world.truth.contaminated_lot).unwrap();
    // The master data the demo publishes: products' names, sites' places.
    let master = MasterData {
        products: world
            .products
            .iter()
            .map(|p| (p.gtin.clone(), p.name.to_string()))
            .collect(),
        places: world
            .orgs
            .iter()
            .map(|o| {
                let place = Place {
                    address: o.address.into(),
                    phone: o.phone.into(),
                };
                (gs1::gln_of(&o.id).unwrap(), place)
            })
            .collect(),
    };
    let rows = graph.cte_rows(&chain, &master);

    // Every event of the world that is a CTE of a lot in the chain has its
    // row; a lot a transformation made is no raw commodity.
    let packed: Vec<&str> = world
        .events
        .iter()
        .filter(|ev| ev.event["type"] == "AggregationEvent" && ev.event["bizStep"] == "packing")
        .flat_map(|ev| {
            ev.event["childQuantityList"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|q| q["epcClass"].as_str())
        .collect();
    let made: Vec<&str> = world
        .events
        .iter()
        .flat_map(|ev| {
            ev.event["outputQuantityList"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|q| q["epcClass"].as_str())
        .collect();
    let cte = |e: &serde_json::Value, org_role: ledger::entry::OrgRole, lot: &str| -> Option<Cte> {
        let raw = !made.contains(&lot);
        match (
            e["type"].as_str()?,
            e["bizStep"].as_str(),
            e["action"].as_str(),
        ) {
            ("TransformationEvent", _, _) => Some(Cte::Transformation),
            ("ObjectEvent", Some("shipping"), _) => Some(Cte::Shipping),
            ("ObjectEvent", Some("receiving"), _) => Some(Cte::Receiving),
            ("ObjectEvent", Some("commissioning"), Some("ADD")) => {
                if org_role == ledger::entry::OrgRole::Grower {
                    Some(Cte::Harvesting)
                } else if packed.contains(&lot) {
                    None
                } else {
                    Some(Cte::InitialPacking)
                }
            }
            ("AggregationEvent", Some("packing"), Some("ADD")) if raw => Some(Cte::InitialPacking),
            _ => None,
        }
    };
    let mut expected = 0;
    for ev in &world.events {
        let e = &ev.event;
        let names: Vec<&str> = [
            "quantityList",
            "inputQuantityList",
            "outputQuantityList",
            "childQuantityList",
        ]
        .iter()
        .flat_map(|k| e[*k].as_array().into_iter().flatten())
        .filter_map(|q| q["epcClass"].as_str())
        .collect();
        let Some(lot) = names.iter().find(|n| chain.iter().any(|c| c == *n)) else {
            continue;
        };
        let Some(kind) = cte(e, world.orgs[ev.org].role, lot) else {
            continue;
        };
        let id = e["eventID"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r.epcis_event_id == id)
            .unwrap_or_else(|| panic!("no row for the {kind:?} event {id}"));
        expected += 1;
        assert_eq!(row.cte, kind, "{id}");
        let at = row.ledger_entry.split('/').collect::<Vec<_>>();
        let bytes = node
            .shard(at[0].parse().unwrap())
            .unwrap()
            .store()
            .entry(at[1].parse().unwrap())
            .unwrap();
        assert_eq!(ledger::entry_id(&bytes).to_hex(), at[2]);
    }
    assert!(expected >= 10, "{expected} CTEs checked");
    assert!(
        rows.iter().any(|r| r.reference_document_type == "desadv"),
        "shipments cite their despatch advice"
    );
    assert_eq!(
        rows.len(),
        expected,
        "no row that is not a CTE of the chain"
    );

    // Every KDE the rule requires of each CTE is there; locations carry
    // their business name, address and phone; products their name.
    let product = |lot: &str| {
        let gtin = analytics::watches::gtin_of(lot).unwrap();
        world.products.iter().find(|p| p.gtin == gtin).unwrap().name
    };
    for r in &rows {
        let cells = cells(r);
        for col in required(r.cte) {
            let i = COLUMNS.iter().position(|c| c == col).unwrap();
            assert!(!cells[i].is_empty(), "{:?} lacks {col}: {r:#?}", r.cte);
        }
        assert_eq!(r.product_description, product(&r.traceability_lot_code));
        for l in [
            &r.location,
            &r.previous_source,
            &r.subsequent_recipient,
            &r.traceability_lot_code_source,
        ]
        .into_iter()
        .flatten()
        {
            let org = world
                .orgs
                .iter()
                .find(|o| gs1::gln_of(&o.id) == gs1::gln_of(&l.id))
                .unwrap_or_else(|| panic!("{} is a world site", l.id));
            for part in [org.name.as_str(), org.address, org.phone] {
                assert!(
                    l.description.contains(part),
                    "{} lacks {part}: {}",
                    l.id,
                    l.description
                );
            }
        }
        if r.cte == Cte::Transformation {
            let lots = r
                .input_traceability_lot_codes
                .as_deref()
                .unwrap()
                .split(';')
                .count();
            let quantities: Vec<&str> = r.input_quantities.as_deref().unwrap().split(';').collect();
            assert_eq!(quantities.len(), lots, "{r:?}");
            assert!(quantities.iter().all(|q| q.ends_with(" KGM")), "{r:?}");
        }
    }
    // A shipment's recipient is where the lot is received next; a receipt's
    // source is where it was shipped from; a harvest's (or packing's)
    // recipient is the next shipment's.
    fn same_lot(r: &CteRow) -> impl Fn(&&CteRow) -> bool + '_ {
        move |x| x.traceability_lot_code == r.traceability_lot_code
    }
    let id = |l: &Option<analytics::lineage::fsma204::Location>| l.as_ref().map(|l| l.id.clone());
    for (i, r) in rows.iter().enumerate() {
        let next = |cte: Cte| {
            rows[i + 1..]
                .iter()
                .filter(same_lot(r))
                .find(|x| x.cte == cte)
        };
        match r.cte {
            Cte::Shipping => {
                if let Some(next) = next(Cte::Receiving) {
                    assert_eq!(id(&r.subsequent_recipient), id(&next.location), "{r:?}");
                }
            }
            Cte::Harvesting | Cte::InitialPacking => {
                if let Some(ship) = next(Cte::Shipping) {
                    assert_eq!(
                        id(&r.subsequent_recipient),
                        id(&ship.subsequent_recipient),
                        "{r:?}"
                    );
                }
            }
            Cte::Receiving => {
                let prev = rows[..i]
                    .iter()
                    .rev()
                    .filter(same_lot(r))
                    .find(|x| x.cte == Cte::Shipping);
                assert_eq!(
                    id(&r.previous_source),
                    prev.and_then(|p| id(&p.location)),
                    "{r:?}"
                );
            }
            _ => {}
        }
    }
    let csv = analytics::lineage::fsma204::to_csv(&rows);
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert_eq!(csv.lines().next().unwrap(), COLUMNS.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_gives_the_same_graph_and_the_tail_follows_it() {
    use analytics::lineage::checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let (world, node, scanned) = loaded(dir.path(), Scale::Tiny).await;
    assert!(checkpoint::load(&node).is_none(), "no checkpoint yet");
    checkpoint::save(&node, &scanned).unwrap();
    let (loaded, positions) = checkpoint::load(&node).expect("the checkpoint matches the logs");
    assert_eq!(loaded.event_count(), scanned.event_count());
    assert_eq!(loaded.identifier_count(), scanned.identifier_count());
    let lot = &world.truth.contaminated_lot;
    for dir in [Direction::Forward, Direction::Backward] {
        assert_eq!(
            loaded.trace(lot, dir, Limits::default()),
            scanned.trace(lot, dir, Limits::default())
        );
    }

    // Entries committed after the checkpoint are read from where it stopped.
    let extra = ledger::entry::Entry::Custody(ledger::entry::CustodyEvent {
        recorded_by: world.orgs[0].id.clone(),
        event_id: "urn:uuid:after-the-snapshot".into(),
        kind: ledger::entry::EventKind::Object,
        action: Some(ledger::entry::Action::Observe),
        event_time_ms: common::START_MS,
        tz_offset_min: 0,
        biz_step: Some("inspecting".into()),
        disposition: None,
        read_point: None,
        biz_location: None,
        subjects: vec![ledger::entry::Subject {
            role: ledger::entry::SubjectRole::Object,
            id: lot.clone(),
            quantity: None,
        }],
        readings: Vec::new(),
        document: b"{}".to_vec(),
    });
    node.append(lot, vec![extra]).await.unwrap();
    let graph = std::sync::Arc::new(std::sync::RwLock::new(loaded));
    let task = lineage::follow(node.clone(), graph.clone(), positions).unwrap();
    let committed: Vec<u64> = node.shards().iter().map(|s| s.committed()).collect();
    for _ in 0..500 {
        if graph.read().unwrap().covers(&committed) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    let (rescanned, _) = lineage::scan(&node).unwrap();
    assert_eq!(graph.read().unwrap().event_count(), rescanned.event_count());
    assert_eq!(rescanned.event_count(), scanned.event_count() + 1);

    // A checkpoint changed by one bit is not used.
    let path = shards::checkpoint::path(dir.path(), checkpoint::NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(checkpoint::load(&node).is_none());
    let (opened, _) = lineage::open(&node).unwrap();
    assert_eq!(
        opened.event_count(),
        rescanned.event_count(),
        "a scan instead"
    );
}

/// Every EPCIS query a single-field index answers, alone, combined and in a
/// time range, gives exactly the events an independent reading of the
/// world's own documents selects, each once, in eventTime order either way,
/// however it is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_epcis_queries_select_what_the_documents_say() {
    use analytics::lineage::query::EventQuery;
    use serde_json::Value;

    let dir = tempfile::tempdir().unwrap();
    let (world, node, graph) = loaded(dir.path(), Scale::Demo).await;
    let event_of = |at: &At| -> String {
        let bytes = node
            .shard(at.shard)
            .unwrap()
            .store()
            .entry(at.index)
            .unwrap();
        match Entry::from_bytes(&bytes).unwrap() {
            Entry::Custody(e) => e.event_id,
            other => panic!("{} is not an event", other.kind_name()),
        }
    };
    let docs: Vec<&Value> = world.events.iter().map(|e| &e.event).collect();
    let bare = |v: &str| analytics::lineage::query::cbv_bare(v).to_string();
    let field = |d: &Value, f: &str| -> Option<String> {
        match &d[f] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    };
    let distinct =
        |f: &str| -> BTreeSet<String> { docs.iter().filter_map(|d| field(d, f)).collect() };
    let time = |d: &Value| {
        chrono::DateTime::parse_from_rfc3339(d["eventTime"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let (t0, t1) = (
        common::START_MS + 86_400_000,
        common::START_MS + 4 * 86_400_000,
    );
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };

    // (parameters, what the oracle keeps)
    type Keep<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let mut cases: Vec<(Vec<(String, String)>, Keep)> = Vec::new();
    for step in distinct("bizStep") {
        let b = bare(&step);
        let b2 = b.clone();
        cases.push((
            vec![("EQ_bizStep".into(), step.clone())],
            Box::new(move |d: &Value| field(d, "bizStep").is_some_and(|s| bare(&s) == b)),
        ));
        cases.push((
            vec![
                ("EQ_bizStep".into(), b2.clone()),
                ("GE_eventTime".into(), iso(t0)),
                ("LT_eventTime".into(), iso(t1)),
            ],
            Box::new(move |d: &Value| {
                field(d, "bizStep").is_some_and(|s| bare(&s) == b2) && (t0..t1).contains(&time(d))
            }),
        ));
    }
    for disp in distinct("disposition") {
        let b = bare(&disp);
        cases.push((
            vec![("EQ_disposition".into(), b.clone())],
            Box::new(move |d: &Value| field(d, "disposition").is_some_and(|s| bare(&s) == b)),
        ));
    }
    for (param, f) in [
        ("EQ_readPoint", "readPoint"),
        ("EQ_bizLocation", "bizLocation"),
    ] {
        for place in distinct(f).into_iter().take(4) {
            let p = place.clone();
            cases.push((
                vec![(param.into(), place)],
                Box::new(move |d: &Value| field(d, f).as_deref() == Some(p.as_str())),
            ));
        }
    }
    for kind in [
        "ObjectEvent",
        "AggregationEvent",
        "TransformationEvent",
        "AssociationEvent",
        "TransactionEvent",
    ] {
        cases.push((
            vec![("eventType".into(), kind.into())],
            Box::new(move |d: &Value| d["type"] == kind),
        ));
        cases.push((
            vec![
                ("eventType".into(), kind.into()),
                ("EQ_action".into(), "OBSERVE".into()),
            ],
            Box::new(move |d: &Value| d["type"] == kind && d["action"] == "OBSERVE"),
        ));
    }
    for action in ["ADD", "OBSERVE", "DELETE"] {
        cases.push((
            vec![("EQ_action".into(), action.into())],
            Box::new(move |d: &Value| d["action"] == action),
        ));
    }
    for d in docs.iter().step_by(97).take(4) {
        let id = d["eventID"].as_str().unwrap().to_string();
        let i2 = id.clone();
        cases.push((
            vec![("EQ_eventID".into(), id)],
            Box::new(move |d: &Value| d["eventID"] == i2.as_str()),
        ));
    }
    cases.push((
        vec![("GE_eventTime".into(), iso(t0))],
        Box::new(move |d: &Value| time(d) >= t0),
    ));
    // Lists: several values of one field merge their index lists (a value
    // named twice, or one no event has, changes nothing).
    let steps: Vec<String> = distinct("bizStep")
        .into_iter()
        .map(|s| bare(&s))
        .take(3)
        .collect();
    let wanted = steps.clone();
    cases.push((
        vec![(
            "EQ_bizStep".into(),
            format!("{}|{}|no_such_step", steps.join("|"), steps[0]),
        )],
        Box::new(move |d: &Value| field(d, "bizStep").is_some_and(|s| wanted.contains(&bare(&s)))),
    ));
    cases.push((
        vec![
            ("eventType".into(), "ObjectEvent|AggregationEvent".into()),
            ("EQ_action".into(), "ADD|DELETE".into()),
            ("GE_eventTime".into(), iso(t0)),
        ],
        Box::new(move |d: &Value| {
            (d["type"] == "ObjectEvent" || d["type"] == "AggregationEvent")
                && (d["action"] == "ADD" || d["action"] == "DELETE")
                && time(d) >= t0
        }),
    ));
    assert!(cases.len() > 25, "{} cases", cases.len());

    let lengths: Vec<u64> = node.shards().iter().map(|s| s.committed()).collect();
    let window = analytics::lineage::query::RecordWindow {
        from: lengths.iter().map(|l| l / 3).collect(),
        to: lengths.iter().map(|l| Some(2 * l / 3)).collect(),
    };
    let mut windowed = 0;
    // Every page of `q`, `per` a page, from the indexes or the scan.
    let every_page = |q: &EventQuery, per: usize, scan: bool| {
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let page = if scan {
                graph.query_by_scan(q, after, per, None).unwrap()
            } else {
                graph.query(q, after, per).unwrap()
            };
            out.extend(page.events);
            after = page.next;
            if after.is_none() {
                return out;
            }
        }
    };
    let mut nonempty = 0;
    let mut visible = 0;
    for (params, keep) in &cases {
        let expected: BTreeSet<String> = docs
            .iter()
            .filter(|d| keep(d))
            .map(|d| d["eventID"].as_str().unwrap().to_string())
            .collect();
        nonempty += usize::from(!expected.is_empty());
        // As each partner asks (their token's organisation): the pages of
        // the indexed path, which starts from what names the partner's own
        // places and parties, are the scan's.
        for org in world
            .orgs
            .iter()
            .map(|o| o.id.clone())
            .chain(["urn:epc:id:sgln:9999999.00000.0".into()])
        {
            let mut q = EventQuery::from_params(params).unwrap();
            q.visible_to = Some(org.clone());
            let indexed = every_page(&q, 50, false);
            visible += indexed.len();
            assert_eq!(indexed, every_page(&q, 50, true), "{params:?} as {org}");
        }
        // Within a window of entries (a span of record times, or what a
        // subscription has not seen yet): the middle third of each log.
        {
            let mut q = EventQuery::from_params(params).unwrap();
            q.record_window = Some(window.clone());
            let indexed = every_page(&q, 5, false);
            assert_eq!(indexed, every_page(&q, 5, true), "{params:?} in a window");
            assert!(indexed.iter().all(|at| window.holds(at)));
            windowed += indexed.len();
        }
        // Counted forms: the first three in the query's order, and a
        // maxEventCount the matches exceed (or not), as the scan has them.
        for (extra, value) in [("eventCountLimit", "3"), ("maxEventCount", "4")] {
            for descending in [false, true] {
                let mut ps = params.clone();
                ps.push((extra.into(), value.into()));
                if descending {
                    ps.push(("orderDirection".into(), "DESC".into()));
                }
                let q = EventQuery::from_params(&ps).unwrap();
                let indexed = graph.query(&q, None, 2).map(|p| (p.events, p.next));
                let scanned = graph
                    .query_by_scan(&q, None, 2, None)
                    .map(|p| (p.events, p.next));
                assert_eq!(indexed, scanned, "{ps:?}");
                if let Ok((_, Some(after))) = indexed {
                    assert_eq!(
                        graph.query(&q, Some(after), 2).map(|p| p.events),
                        graph
                            .query_by_scan(&q, Some(after), 2, None)
                            .map(|p| p.events),
                        "{ps:?}, second page"
                    );
                }
            }
        }
        for descending in [false, true] {
            let mut ps = params.clone();
            if descending {
                ps.push(("orderDirection".into(), "DESC".into()));
            }
            let q = EventQuery::from_params(&ps).unwrap();
            let (mut got, mut after) = (Vec::new(), None);
            loop {
                let page = graph.query(&q, after, 7).unwrap();
                for at in &page.events {
                    got.push(event_of(at));
                }
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
            // The same pages as every event evaluated and sorted.
            let (mut scanned, mut after) = (Vec::new(), None);
            loop {
                let page = graph.query_by_scan(&q, after, 7, None).unwrap();
                scanned.extend(page.events.iter().map(&event_of));
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
            assert_eq!(got, scanned, "{ps:?}");
            let once: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(once.len(), got.len(), "{ps:?}: each event once");
            assert_eq!(once, expected, "{ps:?}");
            // The order is eventTime's (the documents'), ascending or not.
            let by_id: std::collections::HashMap<&str, i64> = docs
                .iter()
                .map(|d| (d["eventID"].as_str().unwrap(), time(d)))
                .collect();
            let ts: Vec<i64> = got.iter().map(|id| by_id[id.as_str()]).collect();
            let ordered = ts.windows(2).all(|w| {
                if descending {
                    w[0] >= w[1]
                } else {
                    w[0] <= w[1]
                }
            });
            assert!(ordered, "{ps:?}: {ts:?}");
            // The whole answer at once is the same.
            let views = graph.query_views(&q, None, 100_000).unwrap();
            assert_eq!(views.total, expected.len(), "{ps:?}");
        }
    }
    assert!(nonempty > 20, "{nonempty} queries selected something");
    assert!(windowed > 0, "the windows held events");
    assert!(visible > 0, "partners saw events");
}
