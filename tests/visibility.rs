//! Who may read what, over real HTTP on the tiny demo world
//! (`readstate::access`, ARCHITECTURE.md "Who may read what").
//!
//! 1. Every GET route in the node's OpenAPI document is in one table here,
//!    public or not, so a new route cannot skip the question; a stranger
//!    (no token) gets every public one and a 401 from every other.
//! 2. Every kind of entry × {stranger, the organisation it is about, a
//!    partner one step down the chain, an unrelated partner, investigator,
//!    operator}: the expected answer of the entry routes is one table, and
//!    GraphQL answers the same where its schema shows that kind's content.

mod support;

use std::collections::BTreeMap;

use api::params::percent_encode;
use serde_json::Value;
use support::{get, get_auth, Server};

/// The GET routes a node serves from its mirrors of other network members'
/// logs, whether a stranger may read them: probed by `tests/network.rs`
/// (a node on its own keeps no mirror).
const MEMBER_ROUTES: &[(&str, bool)] = &[
    ("/v1/members/{member}/shards/{shard}/head", true),
    ("/v1/members/{member}/shards/{shard}/entries/{index}", false),
    (
        "/v1/members/{member}/shards/{shard}/entries/{index}/proof",
        true,
    ),
];

/// The GET routes of the OpenAPI document: whether a stranger may read
/// them, and a concrete request to probe each with.
const ROUTES: &[(&str, bool, &str)] = &[
    (
        "/.well-known/coldtrail/keys",
        true,
        "/.well-known/coldtrail/keys",
    ),
    ("/v1/shards/{shard}/head", true, "/v1/shards/0/head"),
    ("/v1/members", true, "/v1/members"),
    (
        "/v1/shards/{shard}/checkpoint",
        true,
        "/v1/shards/0/checkpoint",
    ),
    ("/v1/shards/{shard}/heads", true, "/v1/shards/0/heads"),
    (
        "/v1/shards/{shard}/heads/{size}",
        true,
        "/v1/shards/0/heads/{size}",
    ),
    (
        "/v1/shards/{shard}/entries/{index}/proof",
        true,
        "/v1/shards/0/entries/1/proof",
    ),
    (
        "/v1/shards/{shard}/consistency",
        true,
        "/v1/shards/0/consistency?first=1&second=2",
    ),
    (
        "/v1/shards/{shard}/entries/{index}",
        false,
        "/v1/shards/0/entries/1",
    ),
    (
        "/v1/shards/{shard}/entries/{index}/raw",
        false,
        "/v1/shards/0/entries/1/raw",
    ),
    ("/v1/entries/{id}", false, "/v1/entries/{id}"),
    ("/v1/devices/{device}", false, "/v1/devices/{device}"),
    (
        "/v1/devices/{device}/readings",
        false,
        "/v1/devices/{device}/readings",
    ),
    ("/v1/capture/{id}", false, "/v1/capture/1"),
    ("/capture/{id}", false, "/capture/1"),
    ("/v1/trace", false, "/v1/trace?lot={lot}"),
    ("/v1/co-exposure", false, "/v1/co-exposure?lot={lot}"),
    ("/v1/fsma204", false, "/v1/fsma204?gtin={gtin}"),
    ("/v1/search", false, "/v1/search?q=lettuce"),
    ("/v1/recalls", false, "/v1/recalls"),
    ("/v1/recalls/{id}", false, "/v1/recalls/{recall}"),
    ("/events", false, "/events"),
    ("/queries", false, "/queries"),
    ("/queries/{name}", false, "/queries/any"),
    ("/queries/{name}/events", false, "/queries/any/events"),
    (
        "/queries/{name}/subscriptions",
        false,
        "/queries/any/subscriptions",
    ),
    (
        "/queries/{name}/subscriptions/{id}",
        false,
        "/queries/any/subscriptions/any",
    ),
    ("/events/{eventID}", false, "/events/{event}"),
    ("/epcs/{epc}/events", false, "/epcs/{lot}/events"),
    (
        "/bizSteps/{value}/events",
        false,
        "/bizSteps/shipping/events",
    ),
    (
        "/bizLocations/{value}/events",
        false,
        "/bizLocations/{org}/events",
    ),
    (
        "/readPoints/{value}/events",
        false,
        "/readPoints/{org}/events",
    ),
    (
        "/dispositions/{value}/events",
        false,
        "/dispositions/in_transit/events",
    ),
    (
        "/eventTypes/{value}/events",
        false,
        "/eventTypes/ObjectEvent/events",
    ),
];

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Stranger,
    /// The organisation the entry is about: an event's recorder, a device's
    /// owner, a registration's organisation.
    Itself,
    /// A partner further along the entry's lot's chain: it recorded another
    /// event naming the lot (the demo world's events name no source or
    /// destination parties, so a shipper's event is not the receiver's).
    Downstream,
    Unrelated,
    Investigator,
    Operator,
}

/// The expected status for each kind of entry (an organisation's
/// registration apart from a device's identity entries) and caller; `None`
/// where the kind has no such caller.
fn expected(kind: &str, who: Who) -> Option<u16> {
    use Who::*;
    Some(match (kind, who) {
        ("checkpoint", _) => 200,
        (_, Stranger) => 401,
        (_, Investigator | Operator) => 200,
        ("org", Itself | Unrelated) => 200,
        ("custody" | "readings" | "device", Itself) => 200,
        ("recall", Downstream) => 200,
        ("custody", Downstream) => 403,
        (_, Unrelated) => 403,
        _ => return None,
    })
}

const UNRELATED: &str = "urn:epc:id:sgln:0614141.00097.0";

#[test]
fn every_read_route_and_every_kind_of_entry_answers_as_the_model_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::tiny_demo(d);
    support::add_org(d, UNRELATED, "Unrelated Carrier", "carrier", &[]);
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    let mut token_of = |org: &str, role: &str| {
        tokens
            .entry(format!("{role} {org}"))
            .or_insert_with(|| support::token(d, org, role))
            .clone()
    };
    let investigator = token_of(UNRELATED, "investigator");
    let operator = token_of(UNRELATED, "operator");
    let unrelated = token_of(UNRELATED, "partner");
    let server = Server::start(d);
    let base = &server.base;

    // Every entry, read as the investigator: the first of each kind, and
    // what the matrix needs (who it is about, one step down).
    let mut firsts: BTreeMap<String, (String, Value)> = BTreeMap::new();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut recorders: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut sizes = Vec::new();
    let (mut lot, mut event, mut recall, mut device, mut some_id) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    for shard in 0..2 {
        let size = get(base, &format!("/v1/shards/{shard}/head")).json()["size"]
            .as_u64()
            .unwrap();
        sizes.push(size);
        for index in 0..size {
            let path = format!("/v1/shards/{shard}/entries/{index}");
            let e = get_auth(base, &path, &investigator).json();
            let v = &e["entry"];
            let kind = match (e["kind"].as_str().unwrap(), v["change"].as_str()) {
                ("identity", Some("org_registered")) => "org",
                ("identity", Some(_)) => "device",
                (k, _) => k,
            };
            some_id = e["id"].as_str().unwrap().to_string();
            if kind == "device" {
                owners.insert(
                    v["device"].as_str().unwrap().into(),
                    v["org"].as_str().unwrap().into(),
                );
            }
            if kind == "custody" && lot == String::new() {
                lot = v["subjects"][0]["id"].as_str().unwrap().to_string();
                event = v["event_id"].as_str().unwrap().to_string();
            }
            if kind == "recall" && recall == String::new() {
                recall = e["id"].as_str().unwrap().to_string();
            }
            if kind == "readings" && device == String::new() {
                device = v["device"].as_str().unwrap().to_string();
            }
            if kind == "custody" {
                for subject in v["subjects"].as_array().unwrap() {
                    recorders
                        .entry(subject["id"].as_str().unwrap().to_string())
                        .or_default()
                        .insert(v["recorded_by"].as_str().unwrap().to_string());
                }
            }
            firsts.entry(kind.to_string()).or_insert((path, e.clone()));
        }
    }
    for kind in [
        "custody",
        "readings",
        "org",
        "device",
        "receipt-out",
        "receipt-in",
        "verdict",
        "recall",
    ] {
        assert!(
            firsts.contains_key(kind),
            "the tiny world has a {kind} entry"
        );
    }

    // 1. The routes: all in the table; strangers get the public ones only.
    let doc = get(base, "/v1/openapi.json").json();
    let mut gets: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, ops)| ops.get("get").is_some())
        .map(|(p, _)| p.clone())
        .collect();
    gets.sort();
    let listed: Vec<&str> = ROUTES
        .iter()
        .map(|r| r.0)
        .chain(MEMBER_ROUTES.iter().map(|r| r.0))
        .collect();
    for p in &gets {
        assert!(
            listed.contains(&p.as_str()),
            "GET {p} is not in this test's table: say whether strangers may read it"
        );
    }
    let org = firsts["custody"].1["entry"]["recorded_by"]
        .as_str()
        .unwrap()
        .to_string();
    let canonical = gs1::canonical_id(&lot).expect("the world's lots are GS1 identifiers");
    let gtin = canonical.split("/01/").nth(1).unwrap()[..14].to_string();
    let fill = |probe: &str| {
        probe
            .replace("{size}", &sizes[0].to_string())
            .replace("{id}", &some_id)
            .replace("{device}", &device)
            .replace("{lot}", &percent_encode(&lot))
            .replace("{gtin}", &gtin)
            .replace("{recall}", &recall)
            .replace("{event}", &percent_encode(&event))
            .replace("{org}", &percent_encode(&org))
    };
    for (path, public, probe) in ROUTES {
        assert!(
            gets.iter().any(|g| g == path),
            "{path} is no longer a GET route"
        );
        let url = fill(probe);
        let r = get(base, &url);
        if *public {
            assert_eq!(r.status, 200, "a stranger reads {url}: {}", r.body);
        } else {
            assert_eq!(r.status, 401, "a stranger is refused {url}: {}", r.body);
        }
    }

    // 2. The entry matrix.
    let mut probed = std::collections::BTreeSet::new();
    for (kind, (path, e)) in &firsts {
        let v = &e["entry"];
        let itself = match kind.as_str() {
            "custody" => v["recorded_by"].as_str().map(str::to_string),
            "readings" => owners.get(v["device"].as_str().unwrap()).cloned(),
            "org" | "device" => v["org"].as_str().map(str::to_string),
            _ => None,
        };
        let mut callers = vec![
            (Who::Stranger, None),
            (Who::Unrelated, Some(unrelated.clone())),
            (Who::Investigator, Some(investigator.clone())),
            (Who::Operator, Some(operator.clone())),
        ];
        // The lot the entry is about, and another organisation on its chain.
        let about = match kind.as_str() {
            "custody" => v["subjects"][0]["id"].as_str(),
            "recall" => v["lot"].as_str(),
            _ => None,
        };
        let down = about.and_then(|lot| {
            recorders[lot]
                .iter()
                .find(|o| Some(o.as_str()) != itself.as_deref())
                .cloned()
        });
        assert!(
            about.is_none() || down.is_some(),
            "{kind}: another organisation handles {about:?}"
        );
        if let Some(org) = &itself {
            callers.push((Who::Itself, Some(token_of(org, "partner"))));
        }
        if let Some(org) = &down {
            callers.push((Who::Downstream, Some(token_of(org, "partner"))));
        }
        for (who, token) in callers {
            let want = expected(kind, who).unwrap_or_else(|| panic!("{kind} × {who:?}"));
            for p in [
                path.clone(),
                format!("{path}/raw"),
                format!("/v1/entries/{}", e["id"].as_str().unwrap()),
            ] {
                let r = match &token {
                    Some(t) => get_auth(base, &p, t),
                    None => get(base, &p),
                };
                assert_eq!(r.status, want, "{kind} entry {p} as {who:?}: {}", r.body);
            }
            // A readings entry through the device's readings listing, over
            // the entry's span: listed exactly where the entry is readable.
            if kind == "readings" {
                let times = reading_times(v);
                let (from, to) = (times.iter().min().unwrap(), times.iter().max().unwrap() + 1);
                let p = format!(
                    "/v1/devices/{}/readings?from_ms={from}&to_ms={to}&limit=1000",
                    percent_encode(v["device"].as_str().unwrap())
                );
                let r = match &token {
                    Some(t) => get_auth(base, &p, t),
                    None => get(base, &p),
                };
                let listed = r.status == 200
                    && r.json()["readings"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|l| l["entry"]["id"] == e["id"]);
                match want {
                    200 => assert!(listed, "{p} as {who:?} lists the entry: {}", r.body),
                    401 => assert_eq!(r.status, 401, "{p} as {who:?}: {}", r.body),
                    _ => assert!(
                        !listed && (r.status == 403 || r.status == 200),
                        "{p} as {who:?} leaves the entry out: {}",
                        r.body
                    ),
                }
            }
            // 3. The same entry's content through GraphQL, where the schema
            // shows that kind: the same answer (shown, refused or left out).
            if let Some((query, vars, shows)) = graphql_probe(kind, v, e) {
                probed.insert(kind.as_str());
                let body = serde_json::json!({"query": query, "variables": vars}).to_string();
                let r = support::post(
                    base,
                    "/graphql",
                    token.as_deref(),
                    "application/json",
                    body.as_bytes(),
                    None,
                );
                let got = match r.status {
                    401 => 401,
                    200 => {
                        let a = r.json();
                        match a["errors"][0]["extensions"]["code"].as_str() {
                            None if shows(&a["data"]) => 200,
                            // Left out, as a partner's lists leave it.
                            None => 403,
                            Some("forbidden") => 403,
                            Some(other) => panic!("{kind} as {who:?}: {other}: {}", r.body),
                        }
                    }
                    other => panic!("{kind} as {who:?}: {other}: {}", r.body),
                };
                assert_eq!(
                    got, want,
                    "{kind} entry through GraphQL as {who:?}: {}",
                    r.body
                );
            }
        }
    }
    for kind in ["custody", "readings", "org", "device", "recall"] {
        assert!(
            probed.contains(kind),
            "{kind} was not asked through GraphQL"
        );
    }
}

/// The times of a readings entry's decoded view `v`.
fn reading_times(v: &Value) -> Vec<i64> {
    v["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["time_ms"].as_i64().unwrap())
        .collect()
}

/// A GraphQL query that shows the content of entry `e` (its decoded view
/// `v`) of `kind`, its variables, and whether an answer's `data` shows it.
/// Receipts and checkpoints have no GraphQL view (`None`).
#[allow(clippy::type_complexity)]
fn graphql_probe(
    kind: &str,
    v: &Value,
    e: &Value,
) -> Option<(&'static str, Value, Box<dyn Fn(&Value) -> bool>)> {
    use serde_json::json;
    let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
    Some(match kind {
        "custody" => {
            let event = s(&v["event_id"]);
            (
                "query($lot: String!) { events(filter: {epc: $lot}, first: 100) { edges { node { eventId } } } }",
                json!({"lot": s(&v["subjects"][0]["id"])}),
                Box::new(move |d: &Value| {
                    d["events"]["edges"]
                        .as_array()
                        .is_some_and(|es| es.iter().any(|x| x["node"]["eventId"] == json!(event)))
                }),
            )
        }
        "readings" => {
            let times = reading_times(v);
            let iso = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            (
                "query($device: String!, $from: DateTime!, $to: DateTime!) { readings(device: $device, from: $from, to: $to, bucketMinutes: 60) { device { id } } }",
                json!({"device": s(&v["device"]), "from": iso(*times.iter().min().unwrap()), "to": iso(*times.iter().max().unwrap())}),
                Box::new(|d: &Value| d["readings"].as_array().is_some_and(|r| !r.is_empty())),
            )
        }
        "org" => (
            "query($org: String!) { organization(id: $org) { name } }",
            json!({"org": s(&v["org"])}),
            Box::new(|d: &Value| d["organization"]["name"].is_string()),
        ),
        "device" => (
            "query($device: String!) { device(id: $device) { id } }",
            json!({"device": s(&v["device"])}),
            Box::new(|d: &Value| d["device"]["id"].is_string()),
        ),
        "recall" => (
            "query($id: String!) { recall(id: $id) { id reason } }",
            json!({"id": s(&e["id"])}),
            Box::new(|d: &Value| d["recall"]["reason"].is_string()),
        ),
        "verdict" if v["kind"] == json!("breach") => {
            let (rule, from) = (v["rule"].clone(), v["from_ms"].as_i64().unwrap());
            (
                "query($subject: String!) { breaches(filter: {lot: $subject}, first: 100) { edges { node { rule from } } } }",
                json!({"subject": s(&v["subject"])}),
                Box::new(move |d: &Value| {
                    d["breaches"]["edges"].as_array().is_some_and(|es| {
                        es.iter().any(|x| {
                            x["node"]["rule"] == rule
                                && x["node"]["from"].as_str().is_some_and(|t| {
                                    chrono::DateTime::parse_from_rfc3339(t)
                                        .is_ok_and(|t| t.timestamp_millis() == from)
                                })
                        })
                    })
                }),
            )
        }
        _ => return None,
    })
}

/// The `(shard, entry_index)` of every row of a Parquet file.
fn entries_in(path: &std::path::Path) -> Vec<(u32, u64)> {
    use analytics::datafusion::arrow::array::AsArray;
    use analytics::datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
    use analytics::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    for b in ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
    {
        let b = b.unwrap();
        let shard = b
            .column_by_name("shard")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let index = b
            .column_by_name("entry_index")
            .unwrap()
            .as_primitive::<UInt64Type>();
        out.extend((0..b.num_rows()).map(|r| (shard.value(r), index.value(r))));
    }
    out
}

/// `export parquet --as ORG` is a partner's copy: only rows whose ledger
/// entry that organisation may read, as the HTTP entry route answers its
/// partner token; without `--as`, the operator's copy has every row.
#[test]
fn an_export_for_one_organisation_holds_only_what_it_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::tiny_demo(d);
    let data_dir = d.to_str().unwrap();
    let (all, mine) = (d.join("export-all"), d.join("export-mine"));
    let export = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "export",
            "parquet",
            "--data-dir",
            data_dir,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        support::coldtrail(&args)
    };
    export(&all, &[]);
    export(&mine, &["--as", support::ORG]);
    let refused = support::run(&[
        "export",
        "parquet",
        "--data-dir",
        data_dir,
        "--out",
        d.join("x").to_str().unwrap(),
        "--as",
        "urn:epc:id:sgln:0614141.54321.0",
    ]);
    assert!(!refused.status.success());
    assert!(
        support::text(&refused).contains("is not a registered organisation"),
        "{}",
        support::text(&refused)
    );

    let token = support::token(d, support::ORG, "partner");
    let server = Server::start(d);
    let answer = |(shard, index): (u32, u64)| {
        get_auth(
            &server.base,
            &format!("/v1/shards/{shard}/entries/{index}"),
            &token,
        )
        .status
    };
    for table in [
        "readings",
        "events",
        "event_subjects",
        "verdicts",
        "associations",
    ] {
        let file = format!("{table}.parquet");
        let (every, kept) = (entries_in(&all.join(&file)), entries_in(&mine.join(&file)));
        let kept_set: std::collections::BTreeSet<(u32, u64)> = kept.iter().copied().collect();
        let every_set: std::collections::BTreeSet<(u32, u64)> = every.iter().copied().collect();
        assert!(kept_set.is_subset(&every_set), "{table}");
        // Every row of an entry it may read, and none of any other.
        assert_eq!(
            kept.len(),
            every.iter().filter(|e| kept_set.contains(e)).count(),
            "{table}: rows of a kept entry are all kept"
        );
        for e in &kept_set {
            assert_eq!(answer(*e), 200, "{table}: {e:?} is in the export");
        }
        for e in every_set.difference(&kept_set) {
            assert_eq!(answer(*e), 403, "{table}: {e:?} is not in the export");
        }
        if ["readings", "events"].contains(&table) {
            assert!(
                !kept.is_empty() && kept.len() < every.len(),
                "{table}: {} of {}",
                kept.len(),
                every.len()
            );
        }
    }
}
