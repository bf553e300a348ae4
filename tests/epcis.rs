//! EPCIS 2.0 capture end to end: every official GS1 example document is
//! accepted and its events come back unchanged in meaning; bad documents are
//! refused with their codes and write nothing.

mod support;

use std::path::{Path, PathBuf};

use api::params::percent_encode as encode;
use serde_json::{json, Value};
use support::{get, get_auth, post, provision, Server};

fn epcis_dir() -> PathBuf {
    std::env::var_os("COLDTRAIL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("epcis")
}

fn examples() -> Vec<PathBuf> {
    let root = epcis_dir().join("JSON");
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

#[test]
fn every_gs1_example_is_captured_and_queried_back_unchanged() {
    let files = examples();
    assert!(files.len() >= 40, "found {} example documents", files.len());
    let mut events_checked = 0;
    for file in files {
        // A fresh node per document: GS1's examples reuse eventIDs across files.
        let dir = tempfile::tempdir().unwrap();
        let (token, other) = provision(dir.path());
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
        // The job is the capturing organisation's: a stranger is asked for a
        // token, another partner is told there is no such job of theirs.
        get(&server.base, &location).assert_problem(401, "unauthenticated");
        get_auth(&server.base, &location, &other).assert_problem(404, "not_found");
        let job = get_auth(&server.base, &location, &token);
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
            let q = get_auth(
                &server.base,
                &format!("/v1/events?eventID={}", encode(id)),
                &token,
            );
            assert_eq!(q.status, 200, "{}: {id}: {}", file.display(), q.body);
            let mut back = events_of(&q.json());
            // Each event names the entry it rests on; that entry holds it.
            for b in &mut back {
                let named = b
                    .as_object_mut()
                    .unwrap()
                    .remove("coldtrail:entry")
                    .expect("every queried event names its entry");
                // The repository sets recordTime (whatever the document said).
                let recorded = b.as_object_mut().unwrap().remove("recordTime");
                assert!(
                    recorded
                        .as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.starts_with("20")),
                    "{recorded:?}"
                );
                // The capturing partner reads its own event's entry.
                let entry = get_auth(
                    &server.base,
                    &format!("/v1/entries/{}", named["id"].as_str().unwrap()),
                    &token,
                );
                assert_eq!(entry.status, 200, "{}", entry.body);
                let entry = entry.json();
                assert_eq!(entry["shard"], named["shard"]);
                assert_eq!(entry["index"], named["index"]);
                let mut stored = entry["entry"]["document"].clone();
                stored.as_object_mut().unwrap().remove("recordTime");
                assert_eq!(&stored, b, "{}", file.display());
            }
            let mut expected = event.as_object().unwrap().clone();
            expected.remove("recordTime");
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
    support::epcis_document(events)
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
    assert_eq!(
        again.json()["already_captured"][0],
        r.json()["entries"][0],
        "the answer names the event's entry by place and id, as when it was written"
    );
    assert_eq!(sizes(), before);
    // A correction (errorDeclaration) under the same eventID is captured.
    changed["errorDeclaration"] =
        json!({"declarationTime": "2026-11-21T08:00:00.000+01:00", "reason": "incorrect_data"});
    let fixed = cap(&document(vec![changed]));
    assert_eq!(fixed.status, 202, "{}", fixed.body);
    let back = get_auth(
        base,
        &format!(
            "/v1/events?eventID={}",
            "urn%3Auuid%3Acoldtrail-test-https%3A%2F%2Fid.gs1.org%2F01%2F09506000134352%2F21%2F1"
        ),
        &token,
    );
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(
        events_of(&back.json()).len(),
        2,
        "the event and its correction"
    );
    // A query that matches nothing is an empty answer, not an error.
    let none = get_auth(base, "/v1/events?eventID=urn%3Auuid%3Anever", &token);
    assert_eq!(events_of(&none.json()).len(), 0);
    get_auth(base, "/events/urn%3Auuid%3Anever", &token).assert_problem(404, "not_found");
    get(base, "/v1/events?eventID=urn%3Auuid%3Anever").assert_problem(401, "unauthenticated");
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

/// A bare CBV value (`urn:epcglobal:cbv:bizstep:shipping` -> `shipping`).
fn bare(v: &str) -> String {
    for p in [
        "urn:epcglobal:cbv:bizstep:",
        "urn:epcglobal:cbv:disp:",
        "https://ref.gs1.org/cbv/BizStep-",
        "https://ref.gs1.org/cbv/Disp-",
    ] {
        if let Some(r) = v.strip_prefix(p) {
            return r.to_string();
        }
    }
    v.to_string()
}

/// The eventIDs of the events in `events` that `keep` selects.
fn ids_where(
    events: &[Value],
    keep: impl Fn(&Value) -> bool,
) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter(|e| keep(e))
        .filter_map(|e| e["eventID"].as_str().map(str::to_string))
        .collect()
}

fn list_has(e: &Value, list: &str, field: Option<&str>, value: &str) -> bool {
    e[list].as_array().is_some_and(|items| {
        items.iter().any(|i| {
            match field {
                Some(f) => i[f].as_str(),
                None => i.as_str(),
            }
            .is_some_and(|x| same_thing(x, value))
        })
    })
}

/// Whether two identifiers name one thing: equal, or two GS1 spellings
/// (EPC URN, Digital Link on any host) of one key.
fn same_thing(a: &str, b: &str) -> bool {
    a == b || gs1::canonical_id(a).is_some_and(|c| gs1::canonical_id(b) == Some(c))
}

/// Runs the query, following `Link: rel="next"` to the end; every answer
/// is kept for schema validation. Returns the eventIDs and the entries seen.
fn query_all(
    base: &str,
    token: &str,
    query: &str,
    answers: &mut Vec<Value>,
) -> (std::collections::BTreeSet<String>, Vec<String>) {
    all_pages(base, token, &format!("/events?{query}"), answers)
}

/// [`query_all`] from any first page (a named query's, say).
fn all_pages(
    base: &str,
    token: &str,
    first: &str,
    answers: &mut Vec<Value>,
) -> (std::collections::BTreeSet<String>, Vec<String>) {
    let mut ids = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next.take() {
        let r = get_auth(base, &path, token);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let doc = r.json();
        for e in events_of(&doc) {
            if let Some(id) = e["eventID"].as_str() {
                ids.insert(id.to_string());
            }
            entries.push(e["coldtrail:entry"]["id"].as_str().unwrap().to_string());
        }
        answers.push(doc);
        next = r.header("link").map(|l| {
            let url = l.trim_start_matches('<').split('>').next().unwrap();
            url.to_string()
        });
    }
    (ids, entries)
}

/// Validates every answer against GS1's EPCIS JSON schema, in Python.
fn validate(answers: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![epcis_dir().join("EPCIS-JSON-Schema.json")];
    for (i, a) in answers.iter().enumerate() {
        let p = dir.path().join(format!("answer-{i}.json"));
        std::fs::write(&p, a.to_string()).unwrap();
        args.push(p);
    }
    support::python_check(
        "validate_json.py",
        &args,
        "answers do not validate against the EPCIS schema",
    );
}

#[test]
fn epcis_queries_select_what_each_parameter_says_and_page_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    // Every GS1 example whose eventIDs do not clash with an earlier one's.
    let mut events: Vec<Value> = Vec::new();
    for file in examples() {
        let body = std::fs::read(&file).unwrap();
        let r = post(
            base,
            "/capture",
            Some(&token),
            "application/ld+json",
            &body,
            None,
        );
        if r.status == 202 {
            // Each event with its document's context, which names the
            // prefixes of its extension fields.
            let doc: Value = serde_json::from_slice(&body).unwrap();
            events.extend(events_of(&doc).into_iter().map(|mut e| {
                if e.get("@context").is_none() {
                    e["@context"] = doc["@context"].clone();
                }
                e
            }));
        }
    }
    assert!(events.len() >= 40, "{} events captured", events.len());
    let mut answers = Vec::new();
    let mut checked = 0;
    let mut check = |query: String, expected: std::collections::BTreeSet<String>| {
        let (got, entries) = query_all(base, &token, &query, &mut answers);
        assert_eq!(got, expected, "{query}");
        let unique: std::collections::BTreeSet<&String> = entries.iter().collect();
        assert_eq!(unique.len(), entries.len(), "{query}: an event twice");
        checked += 1;
    };
    let values = |f: &dyn Fn(&Value) -> Vec<String>| -> std::collections::BTreeSet<String> {
        events.iter().flat_map(f).collect()
    };
    for t in values(&|e| e["type"].as_str().map(str::to_string).into_iter().collect()) {
        check(
            format!("eventType={t}&perPage=5"),
            ids_where(&events, |e| e["type"] == t.as_str()),
        );
    }
    for s in values(&|e| e["bizStep"].as_str().map(bare).into_iter().collect()) {
        let expected = ids_where(&events, |e| {
            e["bizStep"].as_str().map(bare).as_deref() == Some(s.as_str())
        });
        check(format!("EQ_bizStep={}", encode(&s)), expected.clone());
        check(
            format!(
                "EQ_bizStep={}",
                encode(&format!("https://ref.gs1.org/cbv/BizStep-{s}"))
            ),
            expected,
        );
    }
    for d in values(&|e| e["disposition"].as_str().map(bare).into_iter().collect()) {
        check(
            format!("EQ_disposition={}", encode(&d)),
            ids_where(&events, |e| {
                e["disposition"].as_str().map(bare).as_deref() == Some(d.as_str())
            }),
        );
    }
    for (param, field) in [
        ("EQ_readPoint", "readPoint"),
        ("EQ_bizLocation", "bizLocation"),
    ] {
        for l in values(&|e| {
            e[field]["id"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .collect()
        }) {
            check(
                format!("{param}={}", encode(&l)),
                ids_where(&events, |e| {
                    e[field]["id"].as_str().is_some_and(|x| same_thing(x, &l))
                }),
            );
        }
    }
    for a in ["ADD", "OBSERVE", "DELETE"] {
        check(
            format!("EQ_action={a}"),
            ids_where(&events, |e| e["action"] == a),
        );
    }
    for epc in values(&|e| {
        e["epcList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
    .into_iter()
    .take(8)
    {
        check(
            format!("MATCH_epc={}", encode(&epc)),
            ids_where(&events, |e| {
                list_has(e, "epcList", None, &epc) || list_has(e, "childEPCs", None, &epc)
            }),
        );
        check(
            format!("MATCH_anyEPC={}", encode(&epc)),
            ids_where(&events, |e| {
                ["epcList", "childEPCs", "inputEPCList", "outputEPCList"]
                    .iter()
                    .any(|l| list_has(e, l, None, &epc))
                    || e["parentID"].as_str().is_some_and(|p| same_thing(p, &epc))
            }),
        );
    }
    for class in values(&|e| {
        e["quantityList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["epcClass"].as_str().map(str::to_string))
            .collect()
    })
    .into_iter()
    .take(8)
    {
        check(
            format!("MATCH_epcClass={}", encode(&class)),
            ids_where(&events, |e| {
                list_has(e, "quantityList", Some("epcClass"), &class)
                    || list_has(e, "childQuantityList", Some("epcClass"), &class)
            }),
        );
    }
    for class in values(&|e| {
        e["inputQuantityList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["epcClass"].as_str().map(str::to_string))
            .collect()
    }) {
        check(
            format!("MATCH_inputEPCClass={}", encode(&class)),
            ids_where(&events, |e| {
                list_has(e, "inputQuantityList", Some("epcClass"), &class)
            }),
        );
    }
    for parent in values(&|e| {
        e["parentID"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect()
    })
    .into_iter()
    .take(8)
    {
        check(
            format!("MATCH_parentID={}", encode(&parent)),
            ids_where(&events, |e| e["parentID"] == parent.as_str()),
        );
    }
    let id = events
        .iter()
        .find_map(|e| e["eventID"].as_str())
        .unwrap()
        .to_string();
    check(
        format!("EQ_eventID={}", encode(&id)),
        ids_where(&events, |e| e["eventID"] == id.as_str()),
    );
    check(
        "EXISTS_errorDeclaration".into(),
        ids_where(&events, |e| e.get("errorDeclaration").is_some()),
    );
    let time = |e: &Value| chrono_ms(e["eventTime"].as_str().unwrap());
    let mut times: Vec<i64> = events.iter().map(time).collect();
    times.sort();
    let mid = times[times.len() / 2];
    let mid_s = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(mid as u64),
    )
    .to_string();
    check(
        format!("GE_eventTime={}", encode(&mid_s)),
        ids_where(&events, |e| time(e) >= mid),
    );
    check(
        format!("LT_eventTime={}", encode(&mid_s)),
        ids_where(&events, |e| time(e) < mid),
    );
    check(
        "GE_quantity=100&eventType=ObjectEvent".to_string(),
        ids_where(&events, |e| {
            e["type"] == "ObjectEvent"
                && e["quantityList"].as_array().is_some_and(|q| {
                    q.iter()
                        .any(|x| x["quantity"].as_f64().is_some_and(|v| v >= 100.0))
                })
        }),
    );
    // Lists are pipe-delimited, as the REST binding declares them.
    let steps: Vec<String> = values(&|e| e["bizStep"].as_str().map(bare).into_iter().collect())
        .into_iter()
        .take(2)
        .collect();
    check(
        format!("EQ_bizStep={}", encode(&steps.join("|"))),
        ids_where(&events, |e| {
            e["bizStep"]
                .as_str()
                .is_some_and(|s| steps.contains(&bare(s)))
        }),
    );
    // What only the captured events answer, each against its own reading of
    // the examples: typed sources, destinations and business transactions…
    let typed = |list: &'static str, field: &'static str| {
        values(&move |e: &Value| {
            e[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    Some(format!(
                        "{}\u{0}{}",
                        i["type"].as_str()?,
                        i[field].as_str()?
                    ))
                })
                .collect()
        })
    };
    for (param, list, field) in [
        ("EQ_source_", "sourceList", "source"),
        ("EQ_destination_", "destinationList", "destination"),
        ("EQ_bizTransaction_", "bizTransactionList", "bizTransaction"),
    ] {
        let pairs = typed(list, field);
        assert!(!pairs.is_empty(), "the examples have a {list}");
        for pair in pairs.into_iter().take(4) {
            let (kind, id) = pair.split_once('\u{0}').unwrap();
            check(
                format!("{}={}", encode(&format!("{param}{kind}")), encode(id)),
                ids_where(&events, |e| {
                    e[list].as_array().is_some_and(|items| {
                        items.iter().any(|i| i["type"] == kind && i[field] == id)
                    })
                }),
            );
        }
    }
    // … error declarations, transformations, persistent dispositions …
    for reason in values(&|e| {
        e["errorDeclaration"]["reason"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect()
    }) {
        check(
            format!("EQ_errorReason={}", encode(&reason)),
            ids_where(&events, |e| {
                e["errorDeclaration"]["reason"] == reason.as_str()
            }),
        );
    }
    for corrective in values(&|e| {
        e["errorDeclaration"]["correctiveEventIDs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    }) {
        check(
            format!("EQ_correctiveEventID={}", encode(&corrective)),
            ids_where(&events, |e| {
                list_has(
                    &e["errorDeclaration"],
                    "correctiveEventIDs",
                    None,
                    &corrective,
                )
            }),
        );
    }
    for t in values(&|e| {
        e["transformationID"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect()
    }) {
        check(
            format!("EQ_transformationID={}", encode(&t)),
            ids_where(&events, |e| e["transformationID"] == t.as_str()),
        );
    }
    for d in values(&|e| {
        e["persistentDisposition"]["set"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(bare))
            .collect()
    }) {
        check(
            format!("EQ_persistentDisposition_set={}", encode(&d)),
            ids_where(&events, |e| {
                e["persistentDisposition"]["set"]
                    .as_array()
                    .is_some_and(|s| {
                        s.iter()
                            .any(|x| x.as_str().map(bare).as_deref() == Some(d.as_str()))
                    })
            }),
        );
    }
    // … and sensors: one reading meets every sensor parameter together,
    // values compared across temperature units.
    let reports = |e: &Value| -> Vec<Value> {
        e["sensorElementList"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|el| el["sensorReport"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    check(
        "EXISTS_sensorElement".into(),
        ids_where(&events, |e| {
            e["sensorElementList"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        }),
    );
    let kinds = values(&|e| {
        reports(e)
            .iter()
            .filter_map(|r| {
                r["type"]
                    .as_str()
                    .map(|t| t.trim_start_matches("gs1:").to_string())
            })
            .collect()
    });
    assert!(kinds.contains("Temperature"), "{kinds:?}");
    for kind in kinds.iter().filter(|k| !k.contains(':')) {
        check(
            format!("EQ_type={kind}"),
            ids_where(&events, |e| {
                reports(e)
                    .iter()
                    .any(|r| r["type"].as_str().map(|t| t.trim_start_matches("gs1:")) == Some(kind))
            }),
        );
    }
    let celsius = |r: &Value| -> Option<f64> {
        let v = r["value"].as_f64()?;
        match r["uom"].as_str()? {
            "CEL" => Some(v),
            "KEL" => Some(v - 273.15),
            "FAH" => Some((v - 32.0) * 5.0 / 9.0),
            _ => None,
        }
    };
    let mut temps: Vec<f64> = events
        .iter()
        .flat_map(|e| reports(e).iter().filter_map(celsius).collect::<Vec<_>>())
        .collect();
    temps.sort_by(f64::total_cmp);
    let t = temps[temps.len() / 2];
    for (param, limit) in [
        ("GE_value_CEL", t),
        ("GE_value_KEL", t + 273.15),
        ("LT_value_FAH", t * 9.0 / 5.0 + 32.0),
    ] {
        let at_least = param.starts_with("GE");
        check(
            format!("EQ_type=Temperature&{param}={limit}"),
            ids_where(&events, |e| {
                reports(e).iter().any(|r| {
                    r["type"].as_str().map(|x| x.trim_start_matches("gs1:")) == Some("Temperature")
                        && celsius(r).is_some_and(|c| {
                            if at_least {
                                c >= t - 1e-9
                            } else {
                                c < t - 1e-9
                            }
                        })
                })
            }),
        );
    }
    // A comparison alone (no type): every temperature reading counts, in
    // whatever unit; it is answered from the axis of readings' values.
    for (param, limit) in [
        ("GE_value_CEL", t),
        ("GT_value_KEL", t + 273.15),
        ("LT_value_FAH", t * 9.0 / 5.0 + 32.0),
        ("LE_value_CEL", t),
    ] {
        let keep = |c: f64| match &param[..2] {
            "GE" => c >= t - 1e-9,
            "GT" => c > t + 1e-9,
            "LT" => c < t - 1e-9,
            _ => c <= t + 1e-9,
        };
        check(
            format!("{param}={limit}"),
            ids_where(&events, |e| {
                reports(e).iter().any(|r| celsius(r).is_some_and(keep))
            }),
        );
    }
    // Sensor times (a report's, else its element's metadata's) and error
    // declaration times, at their medians.
    let report_times = |e: &Value| -> Vec<i64> {
        e["sensorElementList"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|el| {
                let meta = el["sensorMetadata"]["time"].as_str();
                el["sensorReport"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |r| r["time"].as_str().or(meta).map(chrono_ms))
            })
            .collect()
    };
    let mut times: Vec<i64> = events.iter().flat_map(report_times).collect();
    times.sort();
    assert!(!times.is_empty(), "the examples have sensor times");
    let mid = times[times.len() / 2];
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    for ge in [true, false] {
        check(
            format!(
                "{}_time={}",
                if ge { "GE" } else { "LT" },
                encode(&iso(mid))
            ),
            ids_where(&events, |e| {
                report_times(e).iter().any(|&x| (x >= mid) == ge)
            }),
        );
    }
    let declared = |e: &Value| {
        e["errorDeclaration"]["declarationTime"]
            .as_str()
            .map(chrono_ms)
    };
    let mut times: Vec<i64> = events.iter().filter_map(declared).collect();
    times.sort();
    assert!(!times.is_empty(), "the examples declare errors");
    let mid = times[times.len() / 2];
    for ge in [true, false] {
        check(
            format!(
                "{}_errorDeclarationTime={}",
                if ge { "GE" } else { "LT" },
                encode(&iso(mid))
            ),
            ids_where(&events, |e| declared(e).is_some_and(|x| (x >= mid) == ge)),
        );
    }
    for device in values(&|e| {
        e["sensorElementList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|el| {
                el["sensorMetadata"]["deviceID"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    })
    .into_iter()
    .take(3)
    {
        check(
            format!("EQ_deviceID={}", encode(&device)),
            ids_where(&events, |e| {
                e["sensorElementList"].as_array().is_some_and(|l| {
                    l.iter().any(|el| {
                        el["sensorMetadata"]["deviceID"] == device.as_str()
                            || el["sensorReport"].as_array().is_some_and(|rs| {
                                rs.iter().any(|r| r["deviceID"] == device.as_str())
                            })
                    })
                })
            }),
        );
    }
    // Extension fields, by namespace and name whatever prefix the document
    // gave them: top level, and inside ILMD.
    // A prefix is the event's context's, else EPCIS 2.0's own context's.
    let standard: Value = serde_json::from_slice(
        &std::fs::read(epcis_dir().join("JSON-LD-Context/epcis-context-root.jsonld")).unwrap(),
    )
    .unwrap();
    let namespace = |e: &Value, prefix: &str| -> Option<String> {
        e["@context"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c[prefix].as_str())
            .or_else(|| standard["@context"][prefix].as_str())
            .map(str::to_string)
    };
    let mut extension_checks = 0;
    for (scope, param) in [(None, "EQ_"), (Some("ilmd"), "EQ_ILMD_")] {
        let fields = values(&|e: &Value| {
            let o = match scope {
                Some(s) => &e[s],
                None => e,
            };
            o.as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| k.contains(':') && !k.starts_with("coldtrail") && v.is_string())
                .filter_map(|(k, v)| {
                    let (prefix, local) = k.split_once(':')?;
                    let ns = namespace(e, prefix)?;
                    Some(format!("{ns}{local}\u{0}{}", v.as_str()?))
                })
                .collect()
        });
        for f in fields.into_iter().take(3) {
            let (iri, value) = f.split_once('\u{0}').unwrap();
            check(
                format!("{}={}", encode(&format!("{param}{iri}")), encode(value)),
                ids_where(&events, |e| {
                    let o = match scope {
                        Some(s) => &e[s],
                        None => e,
                    };
                    o.as_object().into_iter().flatten().any(|(k, v)| {
                        v == value
                            && k.split_once(':').is_some_and(|(p, l)| {
                                namespace(e, p).is_some_and(|ns| format!("{ns}{l}") == iri)
                            })
                    })
                }),
            );
            extension_checks += 1;
        }
    }
    assert!(extension_checks >= 2, "the examples have extension fields");
    // Everything, paged by 3: each event exactly once, in eventTime order.
    let (_, paged) = query_all(base, &token, "perPage=3", &mut answers);
    let (_, whole) = query_all(base, &token, "perPage=10000", &mut answers);
    assert_eq!(
        paged, whole,
        "paging hands out every event exactly once, in order"
    );
    let (_, desc) = query_all(base, &token, "perPage=4&orderDirection=DESC", &mut answers);
    assert_eq!(desc, whole.iter().rev().cloned().collect::<Vec<_>>());
    let (_, limited) = query_all(base, &token, "perPage=2&eventCountLimit=5", &mut answers);
    assert_eq!(limited, whole[..5]);
    assert!(checked >= 30, "{checked} queries checked");

    // The resources that fix one parameter.
    for path in [
        "/eventTypes/ObjectEvent/events".to_string(),
        "/bizSteps/shipping/events".to_string(),
        format!("/v1/events?eventID={}", encode(&id)),
        format!("/events/{}", encode(&id)),
    ] {
        let r = get_auth(base, &path, &token);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(!events_of(&r.json()).is_empty(), "{path}");
        answers.push(r.json());
    }
    validate(&answers);

    // Another partner sees none of these events; bad parameters are named.
    let theirs = get_auth(base, "/events?perPage=10000", &other);
    assert_eq!(events_of(&theirs.json()).len(), 0);
    for (q, name) in [
        ("eventType=Nope", "eventType"),
        ("GE_eventTime=yesterday", "GE_eventTime"),
        ("perPage=0", "perPage"),
        ("nextPageToken=forged", "nextPageToken"),
        ("EQ_bizStp=shipping", "EQ_bizStp"),
        ("GT_quantity=many", "GT_quantity"),
        ("GE_value_CEL=warm", "GE_value_CEL"),
        ("EQ_booleanValue=yes", "EQ_booleanValue"),
        ("GE_recordTime=2026-11-01", "GE_recordTime"),
        (
            "GT_ILMD_https%3A%2F%2Fns.example.com%2Fepcis%2FbestBeforeDate=soon",
            "GT_ILMD_https://ns.example.com/epcis/bestBeforeDate",
        ),
    ] {
        let r = get_auth(base, &format!("/events?{q}"), &token);
        r.assert_problem(400, "invalid_parameter");
        assert_eq!(r.json()["parameter"], name, "{q}");
    }
    get_auth(base, "/events?maxEventCount=1", &token).assert_problem(413, "query_too_large");
}

fn chrono_ms(s: &str) -> i64 {
    // RFC 3339 with an offset: let the server's parser be the reference? No:
    // parse here independently, offsets included.
    let (date_time, offset_min) = match s.rfind(['+', '-']).filter(|&i| i > 10) {
        Some(i) if !s.ends_with('Z') => {
            let (dt, off) = s.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let h: i64 = off[1..3].parse().unwrap();
            let m: i64 = off[4..6].parse().unwrap();
            (dt.to_string(), sign * (h * 60 + m))
        }
        _ => (s.trim_end_matches('Z').to_string(), 0),
    };
    let t = humantime::parse_rfc3339_weak(&date_time).unwrap();
    let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    ms - offset_min * 60_000
}

/// A capture job is findable by its id after the server restarts: the job
/// is journalled before the answer names it.
#[test]
fn capture_jobs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let r = post(
        &server.base,
        "/capture",
        Some(&token),
        "application/ld+json",
        &document(vec![object_event(
            "https://id.gs1.org/01/09506000134352/21/77",
            json!({}),
        )]),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("location").expect("a job location").to_string();
    let before = support::get_auth(&server.base, &location, &token);
    assert_eq!(before.status, 200, "{}", before.body);
    server.stop();
    let server = Server::start(dir.path());
    let after = support::get_auth(&server.base, &location, &token);
    assert_eq!(
        after.status, 200,
        "{location} after a restart: {}",
        after.body
    );
    assert_eq!(after.json(), before.json());
    support::get_auth(&server.base, "/capture/0123456789abcdef01234567", &token)
        .assert_problem(404, "not_found");
}

/// Named queries (the REST binding's `/queries`): made once by name, run
/// for whoever asks with what they may see, paged as `/events` is, kept
/// across a restart, an organisation's own, removed with DELETE.
#[test]
fn named_queries_are_views_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let epcs: Vec<String> = (0..12)
        .map(|i| format!("https://id.gs1.org/01/09506000134352/21/Q{i}"))
        .collect();
    let events: Vec<Value> = epcs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let step = if i % 3 == 0 { "receiving" } else { "shipping" };
            object_event(e, json!({"bizStep": step}))
        })
        .collect();
    let r = post(
        &base,
        "/capture",
        Some(&token),
        "application/ld+json",
        &document(events),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let definition = json!({"name": "shipped", "query": {"EQ_bizStep": ["shipping"], "eventType": ["ObjectEvent"]}});
    let make = |token: &str, body: &Value| {
        post(
            &base,
            "/queries",
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
            None,
        )
    };
    let r = make(&token, &definition);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location"), Some("/queries/shipped"));
    make(&token, &definition).assert_problem(409, "query_exists");
    make(
        &token,
        &json!({"name": "bad", "query": {"EQ_bizStp": ["x"]}}),
    )
    .assert_problem(400, "invalid_parameter");
    make(&token, &json!({"name": "a/b", "query": {}})).assert_problem(400, "invalid_parameter");
    make(&token, &json!({"query": {}})).assert_problem(400, "invalid_body");

    // Its events are /events' with the same parameters, paged the same way.
    let mut answers = Vec::new();
    let (direct, _) = query_all(
        &base,
        &token,
        "EQ_bizStep=shipping&eventType=ObjectEvent",
        &mut answers,
    );
    assert_eq!(direct.len(), 8);
    let (named, entries) = all_pages(
        &base,
        &token,
        "/queries/shipped/events?perPage=3",
        &mut answers,
    );
    assert_eq!(named, direct);
    let once: std::collections::BTreeSet<&String> = entries.iter().collect();
    assert_eq!(once.len(), entries.len(), "each event once");
    get_auth(
        &base,
        "/queries/shipped/events?EQ_bizStep=receiving",
        &token,
    )
    .assert_problem(400, "invalid_parameter");
    // Another organisation neither sees it nor, through it, the events.
    get_auth(&base, "/queries/shipped", &other).assert_problem(404, "not_found");
    get_auth(&base, "/queries/shipped/events", &other).assert_problem(404, "not_found");
    assert_eq!(get_auth(&base, "/queries", &other).json(), json!([]));
    assert_eq!(
        get_auth(&base, "/queries", &token).json(),
        json!([definition])
    );

    // It survives a restart; DELETE removes it.
    server.stop();
    let server = Server::start(dir.path());
    let base = server.base.clone();
    assert_eq!(
        get_auth(&base, "/queries/shipped", &token).json(),
        definition
    );
    let auth = format!("Bearer {other}");
    assert_eq!(
        support::ask(
            "DELETE",
            &base,
            "/queries/shipped",
            &[("Authorization", &auth)]
        )
        .status,
        404
    );
    let auth = format!("Bearer {token}");
    assert_eq!(
        support::ask(
            "DELETE",
            &base,
            "/queries/shipped",
            &[("Authorization", &auth)]
        )
        .status,
        204
    );
    get_auth(&base, "/queries/shipped/events", &token).assert_problem(404, "not_found");
    assert!(get(&base, "/queries").status == 401);
    validate(&answers);
}

/// Asserts `r` is the EPCIS refusal `exception` (GS1's REST binding), with
/// the node's stable `code`.
fn assert_epcis_problem(r: &support::Reply, status: u16, code: &str, exception: &str) {
    r.assert_problem(status, code);
    assert_eq!(
        r.json()["type"],
        format!("epcisException:{exception}"),
        "{}",
        r.body
    );
}

fn capture(base: &str, token: &str, events: Vec<Value>) {
    let r = post(
        base,
        "/capture",
        Some(token),
        "application/ld+json",
        &document(events),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

fn event_by_id(base: &str, token: &str, id: &str) -> Value {
    let r = get_auth(base, &format!("/events?EQ_eventID={}", encode(id)), token);
    assert_eq!(r.status, 200, "{}", r.body);
    let events = events_of(&r.json());
    assert_eq!(events.len(), 1, "{}", r.body);
    events[0].clone()
}

/// recordTime is the time of the first signed head covering the event's
/// entry: it is in every answer, between the capture and the answer, it
/// grows with later captures, and GE_/LT_recordTime select by it.
#[test]
fn record_times_are_the_signed_heads_that_cover_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let epc = |i: u32| format!("https://id.gs1.org/01/09506000134352/21/RT{i}");
    let before = chrono::Utc::now().timestamp_millis();
    capture(&base, &token, vec![object_event(&epc(1), json!({}))]);
    // A head covers an entry within a head interval (250 ms) of its commit.
    std::thread::sleep(std::time::Duration::from_millis(600));
    capture(&base, &token, vec![object_event(&epc(2), json!({}))]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let after = chrono::Utc::now().timestamp_millis();
    let first = event_by_id(
        &base,
        &token,
        &format!("urn:uuid:coldtrail-test-{}", epc(1)),
    );
    let second = event_by_id(
        &base,
        &token,
        &format!("urn:uuid:coldtrail-test-{}", epc(2)),
    );
    let (t1, t2) = (
        chrono_ms(first["recordTime"].as_str().expect("a recordTime")),
        chrono_ms(second["recordTime"].as_str().expect("a recordTime")),
    );
    assert!(
        before <= t1 && t1 < t2 && t2 <= after,
        "{before} {t1} {t2} {after}"
    );
    let ids = |q: &str| -> std::collections::BTreeSet<String> {
        let mut answers = Vec::new();
        let (ids, _) = query_all(&base, &token, q, &mut answers);
        validate(&answers);
        ids.into_iter().filter(|i| i.contains("RT")).collect()
    };
    let stamp = |t: i64| {
        encode(
            &chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    let one =
        |i: u32| std::collections::BTreeSet::from([format!("urn:uuid:coldtrail-test-{}", epc(i))]);
    assert_eq!(ids(&format!("GE_recordTime={}", stamp(t2))), one(2));
    assert_eq!(ids(&format!("LT_recordTime={}", stamp(t2))), one(1));
    assert_eq!(
        ids(&format!(
            "GE_recordTime={}&LT_recordTime={}",
            stamp(t1),
            stamp(t2)
        )),
        one(1)
    );
    assert_eq!(ids(&format!("GE_recordTime={}", stamp(after + 1))).len(), 0);
    // A refusal names its parameter and carries the REST binding's type.
    assert_epcis_problem(
        &get_auth(&base, "/events?LT_recordTime=soon", &token),
        400,
        "invalid_parameter",
        "QueryParameterException",
    );
    assert_epcis_problem(
        &get_auth(&base, "/events?orderBy=colour", &token),
        400,
        "invalid_parameter",
        "QueryParameterException",
    );

    // orderBy: recordTime, or an extension field by its IRI (numbers as
    // numbers), ascending or not, paged exactly.
    let score = "https://ns.example.com/epcis/score";
    for (i, value) in [(3, json!(10)), (4, json!(-2.5)), (5, json!(7))] {
        capture(
            &base,
            &token,
            vec![object_event(&epc(i), json!({ score: value }))],
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let ordered = |q: &str| -> Vec<String> {
        let mut answers = Vec::new();
        all_pages(
            &base,
            &token,
            &format!("/events?{q}&perPage=1"),
            &mut answers,
        );
        validate(&answers);
        let ids: Vec<String> = answers
            .iter()
            .flat_map(events_of)
            .map(|e| e["eventID"].as_str().unwrap().to_string())
            .filter(|i| i.contains("RT"))
            .collect();
        ids.into_iter()
            .map(|i| i.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let mine = format!(
        "MATCH_epc={}",
        encode(&(1..=5).map(epc).collect::<Vec<_>>().join("|"))
    );
    assert_eq!(
        ordered(&format!("{mine}&orderBy=recordTime")),
        ["RT1", "RT2", "RT3", "RT4", "RT5"]
    );
    assert_eq!(
        ordered(&format!("{mine}&orderBy=recordTime&orderDirection=DESC")),
        ["RT5", "RT4", "RT3", "RT2", "RT1"]
    );
    // Events without the field come last (in entry order among themselves).
    let by_score = ordered(&format!("{mine}&orderBy={}", encode(score)));
    assert_eq!(by_score[..3], ["RT4", "RT5", "RT3"]);
    let unscored = |ids: &[String]| {
        ids.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        unscored(&by_score[3..]),
        unscored(&["RT1".into(), "RT2".into()])
    );
    let top = ordered(&format!(
        "{mine}&orderBy={}&orderDirection=DESC&eventCountLimit=4",
        encode(score)
    ));
    assert_eq!(unscored(&top[..2]), unscored(&["RT1".into(), "RT2".into()]));
    assert_eq!(top[2..], ["RT3", "RT5"]);
}

/// A request the webhook took: its headers (names lower-case) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A subscriber's webhook over loopback: records every POST (its headers
/// and body) and answers 200, 503 while `down`, and 413 to a body of more
/// than `max_events` events.
struct Hook {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hook {
    fn start(max_events: usize) -> Hook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, d) = (received.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let events = serde_json::from_slice::<Value>(&body)
                    .map(|d| events_of(&d).len())
                    .unwrap_or(0);
                let status = if d.load(std::sync::atomic::Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else if events > max_events {
                    "413 Payload Too Large"
                } else {
                    r.lock().unwrap().push((headers, body));
                    "200 OK"
                };
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Hook {
            url,
            received,
            down,
        }
    }

    /// The eventIDs delivered to subscription `id` so far, each time.
    fn delivered(&self, id: &str) -> Vec<String> {
        self.documents(id)
            .iter()
            .flat_map(events_of)
            .map(|e| e["eventID"].as_str().unwrap().to_string())
            .collect()
    }

    fn documents(&self, id: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
            .filter(|d| d["epcisBody"]["queryResults"]["subscriptionID"] == id)
            .collect()
    }

    /// Waits until subscription `id` has been delivered `ids`.
    fn wait_for(&self, id: &str, ids: &std::collections::BTreeSet<String>) {
        for _ in 0..300 {
            let got: std::collections::BTreeSet<String> = self.delivered(id).into_iter().collect();
            if ids.is_subset(&got) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "subscription {id} was delivered {:?}, not all of {ids:?}",
            self.delivered(id)
        );
    }
}

/// The REST binding's subscriptions: webhooks (signed, batched, retried,
/// surviving a restart of the node, ended by unsubscribing or by deleting
/// the query), scheduled ones that report when empty, WebSockets, and
/// refusals of bad subscriptions as SubscriptionControlsException.
#[test]
fn subscriptions_deliver_new_events_to_webhooks_and_websockets_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let hook = Hook::start(5);
    let event = |i: u32, step: &str| {
        object_event(
            &format!("https://id.gs1.org/01/09506000134352/21/SUB{i}"),
            json!({"bizStep": step}),
        )
    };
    let id_of = |e: &Value| e["eventID"].as_str().unwrap().to_string();
    let shipped = |events: &[Value]| -> std::collections::BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["bizStep"] == "shipping")
            .map(id_of)
            .collect()
    };
    let old: Vec<Value> = (0..3).map(|i| event(i, "shipping")).collect();
    capture(&base, &token, old.clone());
    let r = support::post_json(
        &base,
        "/queries",
        &token,
        &json!({"name": "shipped", "query": {"EQ_bizStep": ["shipping"]}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let subscribe = |base: &str, token: &str, body: Value| {
        support::post_json(base, "/queries/shipped/subscriptions", token, &body)
    };

    // Bad subscriptions are SubscriptionControlsExceptions naming the field.
    for (body, field) in [
        (json!({"dest": hook.url}), "stream"),
        (json!({"dest": hook.url, "stream": false}), "stream"),
        (
            json!({"dest": hook.url, "stream": true, "schedule": {"minute": "5"}}),
            "schedule",
        ),
        (
            json!({"dest": hook.url, "schedule": {"minute": "61"}}),
            "schedule.minute",
        ),
        (
            json!({"dest": hook.url, "schedule": {"dayOfWeek": "[5-1]"}}),
            "schedule.dayOfWeek",
        ),
        (
            json!({"dest": "ftp://example.com/x", "stream": true}),
            "dest",
        ),
        (
            json!({"dest": hook.url, "stream": true, "initialRecordTime": "yesterday"}),
            "initialRecordTime",
        ),
        (
            json!({"dest": hook.url, "stream": true, "reportIfEmpty": true}),
            "reportIfEmpty",
        ),
        (
            json!({"dest": hook.url, "stream": true, "colour": "red"}),
            "body",
        ),
    ] {
        let r = subscribe(&base, &token, body.clone());
        assert_epcis_problem(
            &r,
            400,
            "invalid_subscription",
            "SubscriptionControlsException",
        );
        assert_eq!(r.json()["parameter"], field, "{body}");
    }
    assert_epcis_problem(
        &support::post_json(
            &base,
            "/queries/nothing/subscriptions",
            &token,
            &json!({"dest": hook.url, "stream": true}),
        ),
        404,
        "not_found",
        "NoSuchNameException",
    );
    assert_epcis_problem(
        &subscribe(&base, &other, json!({"dest": hook.url, "stream": true})),
        404,
        "not_found",
        "NoSuchNameException",
    );

    // A stream from now (signed), and one from long ago (unsigned).
    let r = subscribe(
        &base,
        &token,
        json!({"dest": hook.url, "stream": true, "signatureToken": "s3cret"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let now_sub = r.json();
    let now_id = now_sub["subscriptionID"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/queries/shipped/subscriptions/{now_id}").as_str())
    );
    assert!(now_sub.get("signatureToken").is_none(), "{now_sub}");
    assert_eq!(now_sub["stream"], true);
    let r = subscribe(
        &base,
        &token,
        json!({"dest": hook.url, "stream": true, "initialRecordTime": "2000-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let all_id = r.json()["subscriptionID"].as_str().unwrap().to_string();

    // A WebSocket streaming the same query.
    let mut socket = {
        use tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/queries/shipped/events?stream=true",
            base.replace("http://", "ws://")
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        tungstenite::connect(req).expect("the WebSocket opens").0
    };

    let new: Vec<Value> = (10..22)
        .map(|i| event(i, if i % 3 == 0 { "receiving" } else { "shipping" }))
        .collect();
    capture(&base, &token, new.clone());
    hook.wait_for(&now_id, &shipped(&new));
    let mut everything = shipped(&old);
    everything.extend(shipped(&new));
    hook.wait_for(&all_id, &everything);
    let from_now: std::collections::BTreeSet<String> =
        hook.delivered(&now_id).into_iter().collect();
    assert_eq!(
        from_now,
        shipped(&new),
        "only what was recorded since it subscribed"
    );
    // 8 events, the webhook takes 5 at most: the batches were halved.
    assert!(hook
        .documents(&now_id)
        .iter()
        .all(|d| events_of(d).len() <= 5));
    let mut socket_ids = std::collections::BTreeSet::new();
    while !shipped(&new).is_subset(&socket_ids) {
        match socket.read().expect("a message") {
            tungstenite::Message::Text(t) => {
                let doc: Value = serde_json::from_str(&t).unwrap();
                socket_ids.extend(events_of(&doc).iter().map(id_of));
            }
            tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    assert_eq!(socket_ids, shipped(&new));

    // Each delivery is signed: checked in Python, HMAC-SHA256 of the body.
    {
        let tmp = tempfile::tempdir().unwrap();
        let received = hook.received.lock().unwrap();
        let mut n = 0;
        for (headers, body) in received.iter() {
            let Some((_, sig)) = headers.iter().find(|(k, _)| k == "gs1-signature") else {
                continue;
            };
            std::fs::write(tmp.path().join(format!("{n}.body")), body).unwrap();
            std::fs::write(tmp.path().join(format!("{n}.sig")), sig).unwrap();
            n += 1;
        }
        assert!(
            n >= 2,
            "the signed subscription's deliveries carry GS1-Signature"
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg("import hmac,hashlib,sys,pathlib\nfor b in pathlib.Path(sys.argv[1]).glob('*.body'):\n  want='sha256='+hmac.new(b's3cret',b.read_bytes(),hashlib.sha256).hexdigest()\n  got=b.with_suffix('.sig').read_text()\n  assert got==want,(b,got,want)\nprint('ok')")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let unsigned = received
            .iter()
            .filter(|(h, _)| !h.iter().any(|(k, _)| k == "gs1-signature"));
        assert!(
            unsigned.count() >= 2,
            "the unsigned subscription's are not signed"
        );
    }
    validate(&hook.documents(&now_id));

    // The webhook fails: nothing is lost; the node restarts meanwhile; the
    // events arrive once it answers again.
    hook.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let late: Vec<Value> = (30..33).map(|i| event(i, "shipping")).collect();
    capture(&base, &token, late.clone());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(socket);
    server.stop();
    let server = Server::start(dir.path());
    let base = server.base.clone();
    hook.down.store(false, std::sync::atomic::Ordering::SeqCst);
    hook.wait_for(&now_id, &shipped(&late));
    let view = get_auth(
        &base,
        &format!("/queries/shipped/subscriptions/{now_id}"),
        &token,
    );
    assert_eq!(view.status, 200, "{}", view.body);
    assert!(view.json()["lastNotifiedAt"].is_string(), "{}", view.body);
    assert!(view.json().get("signatureToken").is_none());
    let listed = get_auth(&base, "/queries/shipped/subscriptions", &token).json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(
        get_auth(&base, "/queries/shipped/subscriptions", &other).status,
        404
    );
    assert_epcis_problem(
        &get_auth(
            &base,
            &format!("/queries/shipped/subscriptions/{now_id}"),
            &other,
        ),
        404,
        "not_found",
        "NoSuchNameException",
    );

    // A schedule (every second) with reportIfEmpty reports an empty run.
    let r = subscribe(
        &base,
        &token,
        json!({"dest": hook.url, "schedule": {"second": "[0-59]"}, "reportIfEmpty": true}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let scheduled = r.json()["subscriptionID"].as_str().unwrap().to_string();
    for _ in 0..100 {
        if !hook.documents(&scheduled).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let docs = hook.documents(&scheduled);
    assert!(!docs.is_empty(), "a scheduled run reports even when empty");
    assert_eq!(events_of(&docs[0]).len(), 0);

    // Unsubscribing ends one; deleting the query ends the rest.
    let auth = format!("Bearer {token}");
    let delete =
        |path: &str| support::ask("DELETE", &base, path, &[("Authorization", &auth)]).status;
    assert_eq!(
        delete(&format!("/queries/shipped/subscriptions/{now_id}")),
        204
    );
    assert_eq!(
        delete(&format!("/queries/shipped/subscriptions/{now_id}")),
        404
    );
    let delivered_before = hook.delivered(&all_id).len();
    assert_eq!(delete("/queries/shipped"), 204);
    capture(&base, &token, vec![event(40, "shipping")]);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(hook.delivered(&all_id).len(), delivered_before);
    let subs: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("subscriptions.json")).unwrap())
            .unwrap();
    assert!(subs.is_empty(), "{subs:?}");
}

/// GS1-EPC-Format: answers keep events as captured (and say so) unless a
/// client asks for Digital Links; EPC URNs of a Digital Link are refused
/// with 406, since a Digital Link does not carry its company prefix's length.
#[test]
fn epc_formats_are_as_captured_unless_a_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let urn = "urn:epc:id:sgtin:0614141.107346.2018";
    let dl = "https://id.gs1.org/01/09506000134352/21/FMT1";
    capture(
        &base,
        &token,
        vec![object_event(urn, json!({})), object_event(dl, json!({}))],
    );
    let ask = |id: &str, format: Option<&str>| {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(f) = format {
            headers.push(("GS1-EPC-Format", f));
        }
        support::get_with(
            &base,
            &format!(
                "/events?EQ_eventID={}",
                encode(&format!("urn:uuid:coldtrail-test-{id}"))
            ),
            &headers,
        )
    };
    let r = ask(urn, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("gs1-epc-format"), Some("Never_Translates"));
    let e = &events_of(&r.json())[0];
    assert_eq!(e["epcList"], json!([urn]));
    assert_eq!(e["readPoint"]["id"], "urn:epc:id:sgln:0614141.00001.0");

    let r = ask(urn, Some("Always_GS1_Digital_Link"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("gs1-epc-format"), Some("Always_GS1_Digital_Link"));
    let e = &events_of(&r.json())[0];
    assert_eq!(
        e["epcList"],
        json!(["https://id.gs1.org/01/10614141073464/21/2018"])
    );
    assert_eq!(e["readPoint"]["id"], "https://id.gs1.org/414/0614141000012");
    validate(&[r.json()]);

    assert_eq!(ask(urn, Some("Always_EPC_URN")).status, 200);
    assert_epcis_problem(
        &ask(dl, Some("Always_EPC_URN")),
        406,
        "not_acceptable",
        "NotAcceptableException",
    );
    assert_epcis_problem(
        &ask(urn, Some("Sometimes")),
        400,
        "invalid_parameter",
        "QueryParameterException",
    );
}

/// The binding's discovery: OPTIONS on every EPCIS resource answers 204
/// with the methods it allows and the versions it speaks.
#[test]
fn every_epcis_resource_answers_discovery() {
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path());
    let server = Server::start(dir.path());
    for (path, allow) in [
        ("/events", "GET, OPTIONS"),
        ("/v1/events", "GET, OPTIONS"),
        ("/events/urn:uuid:x", "GET, OPTIONS"),
        ("/bizSteps/shipping/events", "GET, OPTIONS"),
        ("/queries", "GET, POST, OPTIONS"),
        ("/queries/any/events", "GET, OPTIONS"),
        ("/queries/any/subscriptions", "GET, POST, OPTIONS"),
        ("/queries/any/subscriptions/any", "GET, DELETE, OPTIONS"),
        ("/capture", "POST, OPTIONS"),
    ] {
        let r = support::ask("OPTIONS", &server.base, path, &[]);
        assert_eq!(r.status, 204, "{path}: {}", r.body);
        assert_eq!(r.header("allow"), Some(allow), "{path}");
        assert_eq!(r.header("gs1-epcis-version"), Some("2.0.0"), "{path}");
        assert_eq!(r.header("gs1-cbv-version"), Some("2.0.0"), "{path}");
        assert_eq!(
            r.header("gs1-epc-format"),
            Some("Never_Translates"),
            "{path}"
        );
        assert!(r
            .header("gs1-vendor-version")
            .is_some_and(|v| v.starts_with("coldtrail-")));
    }
}

/// A subscription whose query refuses a run (more events than its
/// maxEventCount) tells the subscriber once, as problem+json with the
/// binding's type, and goes on with the entries after.
#[test]
fn a_refused_run_is_reported_once_and_the_subscription_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let hook = Hook::start(100);
    let r = support::post_json(
        &base,
        "/queries",
        &token,
        &json!({"name": "few", "query": {"EQ_bizStep": ["shipping"], "maxEventCount": 1}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let event = |i: u32| {
        object_event(
            &format!("https://id.gs1.org/01/09506000134352/21/FEW{i}"),
            json!({"bizStep": "shipping"}),
        )
    };
    // Recorded before the subscription, and all in its first run.
    capture(&base, &token, (0..3).map(event).collect());
    let r = support::post_json(
        &base,
        "/queries/few/subscriptions",
        &token,
        &json!({"dest": hook.url, "stream": true, "initialRecordTime": "2000-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["subscriptionID"].as_str().unwrap().to_string();
    let problems = || -> Vec<Value> {
        hook.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
            .filter(|d| d["subscriptionID"] == id.as_str())
            .collect()
    };
    for _ in 0..100 {
        if !problems().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let got = problems();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "epcisException:QueryTooLargeException");
    assert_eq!(got[0]["status"], 413);
    // The next event alone is within the query's limit: delivered.
    capture(&base, &token, vec![event(9)]);
    hook.wait_for(
        &id,
        &std::collections::BTreeSet::from([
            "urn:uuid:coldtrail-test-https://id.gs1.org/01/09506000134352/21/FEW9".to_string(),
        ]),
    );
}
