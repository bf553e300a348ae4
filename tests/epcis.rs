//! EPCIS 2.0 capture end to end: every official GS1 example document is
//! accepted and its events come back unchanged in meaning; bad documents are
//! refused with their codes and write nothing.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{get, post, provision, Server};

fn examples() -> Vec<PathBuf> {
    let root = std::env::var_os("COLDTRAIL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("epcis/JSON");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonld" || x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn events_of(doc: &Value) -> Vec<Value> {
    doc.pointer("/epcisBody/eventList")
        .or_else(|| doc.pointer("/epcisBody/queryResults/resultsBody/eventList"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_gs1_example_is_captured_and_queried_back_unchanged() {
    let files = examples();
    assert!(files.len() >= 40, "found {} example documents", files.len());
    let mut events_checked = 0;
    for file in files {
        // A fresh node per document: GS1's examples reuse eventIDs across files.
        let dir = tempfile::tempdir().unwrap();
        let (token, _) = provision(dir.path());
        let server = Server::start(dir.path());
        let body = std::fs::read(&file).unwrap();
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let r = post(
            &server.base,
            "/capture",
            Some(&token),
            "application/ld+json",
            &body,
            None,
        );
        assert_eq!(r.status, 202, "{}: {}", file.display(), r.body);
        let location = r.header("location").unwrap().to_string();
        let job = get(&server.base, &location);
        assert_eq!(job.status, 200, "{}", job.body);
        assert_eq!(job.json()["success"], true);
        let written = r.json();
        let ids: Vec<String> = written["entries"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                written["already_captured"]
                    .as_array()
                    .unwrap_or(&Vec::new()),
            )
            .map(|w| w["subject"].as_str().unwrap().to_string())
            .collect();
        let events = events_of(&doc);
        assert_eq!(ids.len(), events.len(), "{}", file.display());
        for (event, id) in events.iter().zip(&ids) {
            let q = get(&server.base, &format!("/v1/events?eventID={}", encode(id)));
            assert_eq!(q.status, 200, "{}: {id}: {}", file.display(), q.body);
            let mut back = events_of(&q.json());
            // Each event names the entry it rests on; that entry holds it.
            for b in &mut back {
                let named = b
                    .as_object_mut()
                    .unwrap()
                    .remove("coldtrail:entry")
                    .expect("every queried event names its entry");
                let entry = get(
                    &server.base,
                    &format!("/v1/entries/{}", named["id"].as_str().unwrap()),
                );
                assert_eq!(entry.status, 200, "{}", entry.body);
                let entry = entry.json();
                assert_eq!(entry["shard"], named["shard"]);
                assert_eq!(entry["index"], named["index"]);
                assert_eq!(&entry["entry"]["document"], b, "{}", file.display());
            }
            let mut expected = event.as_object().unwrap().clone();
            if let (Some(ctx), false) = (doc.get("@context"), expected.contains_key("@context")) {
                expected.insert("@context".into(), ctx.clone());
            }
            assert!(
                back.contains(&Value::Object(expected)),
                "{}: event {id} came back changed: {back:?}",
                file.display()
            );
            events_checked += 1;
        }
    }
    assert!(events_checked >= 50, "checked {events_checked} events");
}

fn object_event(epc: &str, extra: Value) -> Value {
    let mut e = json!({
        "type": "ObjectEvent",
        "eventID": format!("urn:uuid:coldtrail-test-{epc}"),
        "eventTime": "2026-11-20T08:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "receiving",
        "disposition": "in_progress",
        "epcList": [epc],
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00001.0"}
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn document(events: Vec<Value>) -> Vec<u8> {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00.000+01:00",
        "epcisBody": {"eventList": events}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn bad_documents_are_refused_with_their_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let cap = |body: &[u8]| {
        post(
            base,
            "/capture",
            Some(&token),
            "application/ld+json",
            body,
            None,
        )
    };
    let sizes = || support::shard_sizes(base);
    let good = object_event("https://id.gs1.org/01/09506000134352/21/1", json!({}));
    let r = cap(&document(vec![good.clone()]));
    assert_eq!(r.status, 202, "{}", r.body);
    let before = sizes();

    cap(b"this is not JSON").assert_problem(400, "malformed_json");
    cap(br#"{"type": "Invoice"}"#).assert_problem(400, "invalid_body");
    cap(&document(vec![])).assert_problem(400, "invalid_body");
    let mut unknown = good.clone();
    unknown["type"] = json!("TeleportationEvent");
    cap(&document(vec![unknown])).assert_problem(422, "unknown_event_type");
    cap(&document(vec![object_event(
        "https://id.gs1.org/01/09506000134353/21/1",
        json!({}),
    )]))
    .assert_problem(422, "invalid_gtin");
    cap(&document(vec![object_event("lot-7", json!({}))]))
        .assert_problem(422, "invalid_identifier");
    cap(&document(vec![object_event(
        "urn:epc:id:sgtin:0614141.107346.2",
        json!({"eventTime": "yesterday"}),
    )]))
    .assert_problem(422, "invalid_event");
    // A good event and a bad one: the whole document is refused.
    cap(&document(vec![
        object_event("urn:epc:id:sgtin:0614141.107346.3", json!({})),
        object_event(
            "urn:epc:id:sgtin:0614141.107346.4",
            json!({"action": "JUMP"}),
        ),
    ]))
    .assert_problem(422, "invalid_event");
    // The same eventID with other content.
    let mut changed = good.clone();
    changed["bizStep"] = json!("shipping");
    cap(&document(vec![changed.clone()])).assert_problem(409, "duplicate_event");
    post(base, "/capture", Some(&token), "text/csv", b"a,b", None)
        .assert_problem(415, "unsupported_media_type");
    assert_eq!(sizes(), before, "nothing refused was written");

    // Resending the same event writes nothing and says where it is.
    let again = cap(&document(vec![good.clone()]));
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.json()["entries"].as_array().unwrap().len(), 0);
    assert_eq!(
        again.json()["already_captured"].as_array().unwrap().len(),
        1
    );
    assert_eq!(sizes(), before);
    // A correction (errorDeclaration) under the same eventID is captured.
    changed["errorDeclaration"] =
        json!({"declarationTime": "2026-11-21T08:00:00.000+01:00", "reason": "incorrect_data"});
    let fixed = cap(&document(vec![changed]));
    assert_eq!(fixed.status, 202, "{}", fixed.body);
    let back = get(
        base,
        &format!(
            "/v1/events?eventID={}",
            "urn%3Auuid%3Acoldtrail-test-https%3A%2F%2Fid.gs1.org%2F01%2F09506000134352%2F21%2F1"
        ),
    );
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(
        events_of(&back.json()).len(),
        2,
        "the event and its correction"
    );
    get(base, "/v1/events?eventID=urn%3Auuid%3Anever").assert_problem(404, "not_found");
}

#[test]
fn sensor_data_becomes_readings_and_event_subjects_get_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let transform = json!({
        "type": "TransformationEvent",
        "eventID": "urn:uuid:coldtrail-salad-1",
        "eventTime": "2026-11-20T09:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "bizStep": "commissioning",
        "inputQuantityList": [
            {"epcClass": "urn:epc:class:lgtin:4012345.012345.LETTUCE1", "quantity": 120.5, "uom": "KGM"},
            {"epcClass": "urn:epc:class:lgtin:4012345.012346.CARROT1", "quantity": 40, "uom": "KGM"}
        ],
        "outputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.099999.SALAD1", "quantity": 150, "uom": "KGM"}],
        "sensorElementList": [{
            "sensorMetadata": {"time": "2026-11-20T08:55:00.000+01:00", "deviceID": "urn:epc:id:giai:4000001.111"},
            "sensorReport": [{"type": "Temperature", "value": 3.4, "uom": "CEL"}, {"type": "RelativeHumidity", "value": 88.5, "uom": "P1"}]
        }]
    });
    let r = post(
        &server.base,
        "/capture",
        Some(&token),
        "application/ld+json",
        &document(vec![transform]),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let j = r.json();
    assert!(j["receipts"].as_u64().unwrap() <= 2);
    let w = &j["entries"][0];
    drop(server);
    // The stored entry carries the reading in the device-batch model.
    let node = shards::Node::open(shards::NodeConfig::new(dir.path())).unwrap();
    let shard = node.shard(w["shard"].as_u64().unwrap() as u32).unwrap();
    let bytes = ledger::store::Store::entry(shard.store(), w["index"].as_u64().unwrap()).unwrap();
    let ledger::Entry::Custody(c) = ledger::Entry::from_bytes(&bytes).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(c.readings.len(), 1);
    assert_eq!(c.readings[0].temp_centi_c, 340);
    assert_eq!(c.readings[0].humidity_permille, Some(885));
    assert_eq!(c.subjects.len(), 3);
    assert_eq!(c.subjects[0].quantity.as_ref().unwrap().milli, 120_500);
}
