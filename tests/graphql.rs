//! GraphQL over real HTTP and WebSocket on loopback, on the demo world: the
//! contaminated lot's trace and the breaches match the fixtures' truth; a new
//! excursion reaches a subscribed investigator; each caller sees what its
//! role allows; limits refuse with the API's codes; lists are batched.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ingest::wire::encode_json;
use ingest::DeviceClient;
use ledger::reading::Reading;
use serde_json::{json, Value};
use support::{post, Reply, Server};

/// 2026-11-01T00:00:00Z: the demo world's start.
const START_MS: i64 = 1_793_491_200_000;

fn gql(base: &str, token: Option<&str>, query: &str, variables: Value) -> Reply {
    post(
        base,
        "/graphql",
        token,
        "application/json",
        json!({"query": query, "variables": variables})
            .to_string()
            .as_bytes(),
        None,
    )
}

/// The answer's `data`; fails on any error.
fn data(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert!(j.get("errors").is_none(), "{}", r.body);
    j["data"].clone()
}

/// The first error's `extensions.code`.
fn code(r: &Reply) -> String {
    let j = r.json();
    j["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", r.body))
        .to_string()
}

fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn world() -> fixtures::World {
    fixtures::generate(7, fixtures::Scale::Tiny, START_MS)
}

#[test]
fn the_trace_and_the_breaches_match_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let world = world();
    let lot = &world.truth.contaminated_lot;

    // Who holds it now, where and since when rest on one entry: the latest
    // counted event's (issue 30: the investigator had to page through
    // `events` to find it).
    let now = data(&gql(
        &server.base,
        Some(&token),
        "query($lot: String!) { lot(epc: $lot) { holder { id } since whereaboutsEntry { shard index id }
            events(first: 100) { edges { node { time recordedBy { id } entry { shard index id } } } } } }",
        json!({"lot": lot}),
    ));
    let l = &now["lot"];
    let events = l["events"]["edges"].as_array().unwrap();
    let latest = events
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["entry"] == l["whereaboutsEntry"])
        .collect::<Vec<_>>();
    assert_eq!(
        latest.len(),
        1,
        "the whereabouts entry is one of its events: {l}"
    );
    assert_eq!(latest[0]["recordedBy"], l["holder"], "{l}");
    assert_eq!(ms(&latest[0]["time"]), ms(&l["since"]), "{l}");

    // The answer's maps follow the query's order (the spec's "Serialized
    // Map Ordering"), through aliases, fragments and lists: read from the
    // body's text, which a parsed map would not keep.
    let asked = gql(
        &server.base,
        Some(&token),
        "query($lot: String!) { z: lot(epc: $lot) { lotNumber id ...held
            events(first: 2) { edges { node { time eventId } } } } a: recalls { totalCount } }
         fragment held on Lot { since holder { name id } gtin }",
        json!({"lot": lot}),
    );
    data(&asked);
    let at = |key: &str| {
        asked
            .body
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {}", asked.body))
    };
    let order = [
        "z",
        "lotNumber",
        "id",
        "since",
        "holder",
        "name",
        "gtin",
        "events",
        "time",
        "eventId",
        "a",
    ];
    for pair in order.windows(2) {
        assert!(
            at(pair[0]) < at(pair[1]),
            "{} before {}: {}",
            pair[0],
            pair[1],
            asked.body
        );
    }

    let trace = data(&gql(
        &server.base,
        Some(&token),
        "query($lot: String!) { trace(lot: $lot, direction: FORWARD, first: 100) {
            root { id }
            lots { totalCount edges { node { depth lot { id holder { name } } } } } } }",
        json!({"lot": lot}),
    ));
    let lots = &trace["trace"]["lots"]["edges"];
    let found: BTreeSet<String> = lots.as_array().unwrap()[1..]
        .iter()
        .map(|e| e["node"]["lot"]["id"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = world.truth.affected_lots.iter().cloned().collect();
    assert_eq!(found, expected);
    assert_eq!(lots[0]["node"]["depth"], 0);

    // Every breach, paged through; each explained by an injected incident,
    // and every incident a rule should find is there.
    let mut breaches = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = data(&gql(
            &server.base,
            Some(&token),
            "query($after: String) { breaches(first: 5, after: $after) {
                totalCount pageInfo { hasNextPage endCursor }
                edges { node { rule subject from to device { id } entry { id } } } } }",
            json!({ "after": after }),
        ));
        let b = &page["breaches"];
        breaches.extend(
            b["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if !b["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            assert_eq!(b["totalCount"].as_u64().unwrap() as usize, breaches.len());
            break;
        }
        after = Some(b["pageInfo"]["endCursor"].as_str().unwrap().to_string());
    }
    let explains = |i: &fixtures::Incident, b: &Value| {
        i.explains(
            b["rule"].as_str().unwrap(),
            b["device"]["id"].as_str().unwrap_or(""),
            ms(&b["from"]),
            ms(&b["to"]),
        )
    };
    for b in &breaches {
        assert!(
            world.truth.incidents.iter().any(|i| explains(i, b)),
            "a breach no incident explains: {b}"
        );
    }
    for i in world
        .truth
        .incidents
        .iter()
        .filter(|i| !i.kind.expected_rules().is_empty())
    {
        assert!(
            breaches.iter().any(|b| explains(i, b)),
            "incident {:?} on {} has no breach",
            i.kind,
            i.device
        );
    }

    // The lot's own view: by GTIN and lot number too, with readings in
    // hourly buckets for a month and proofs on its facts.
    let gtin = analytics::watches::gtin_of(lot).unwrap();
    let number = analytics::lineage::lot_number(lot).unwrap();
    let view = data(&gql(
        &server.base,
        Some(&token),
        "query($gtin: String!, $n: String!, $from: DateTime!, $to: DateTime!) {
            lot(gtin: $gtin, lot: $n) { id gtin origin { name role } holder { id }
              status { recalled quarantined }
              firstEvent { bizStep entry { proof { path head { size signature } } } }
              readings(from: $from, to: $to, bucketMinutes: 60) {
                device { id } buckets { from count minC maxC meanC } } } }",
        json!({"gtin": gtin, "n": number,
               "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}),
    ));
    let l = &view["lot"];
    assert_eq!(l["id"], json!(lot));
    assert_eq!(l["origin"]["role"], "grower");
    assert_eq!(l["status"]["recalled"], true, "the demo recalls it");
    let series = l["readings"].as_array().unwrap();
    assert!(!series.is_empty(), "a logger watched the lot");
    for s in series {
        let buckets = s["buckets"].as_array().unwrap();
        assert!(!buckets.is_empty() && buckets.len() <= 31 * 24);
        for b in buckets {
            let (min, max, mean) = (
                b["minC"].as_f64().unwrap(),
                b["maxC"].as_f64().unwrap(),
                b["meanC"].as_f64().unwrap(),
            );
            assert!(min <= mean && mean <= max && b["count"].as_u64().unwrap() > 0);
        }
    }
    let proof = &l["firstEvent"]["entry"]["proof"];
    assert!(proof["head"]["size"].as_u64().unwrap() > 0);

    // Unknown lots are null; a bad GTIN is named.
    let none = data(&gql(
        &server.base,
        Some(&token),
        "{ lot(epc: \"urn:epc:class:lgtin:0614141.099999.NOPE\") { id } }",
        json!({}),
    ));
    assert_eq!(none["lot"], Value::Null);
    let bad = gql(
        &server.base,
        Some(&token),
        "{ lot(gtin: \"00614141100018\", lot: \"L1\") { id } }",
        json!({}),
    );
    assert_eq!(code(&bad), "invalid_parameter");
    assert_eq!(bad.json()["errors"][0]["extensions"]["parameter"], "gtin");
}

#[test]
fn lists_are_batched_not_fetched_item_by_item() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let cost = |query: &str, list: &str, n: usize| {
        let r = gql(&server.base, Some(&token), query, json!({ "n": n }));
        let j = r.json();
        assert!(j.get("errors").is_none(), "{}", r.body);
        assert_eq!(j["data"][list]["edges"].as_array().unwrap().len(), n);
        j["extensions"]["cost"].clone()
    };
    // A trip per loader and place in the query, never per item: whatever
    // the list's length, each kind of fetch takes at most as many trips as
    // the query has places fed by it. (Two places of one kind share a trip
    // when their keys happen to arrive in one batching window, so the
    // count may be lower, never higher.)
    let within = |c: &Value, places: &[(&str, u64)], what: &str| {
        let by = c["tripsBy"].as_object().unwrap();
        for (kind, trips) in by {
            let allowed = places.iter().find(|(k, _)| k == kind).map_or(0, |p| p.1);
            assert!(
                trips.as_u64().unwrap() <= allowed,
                "{what}: {trips} trips for {kind} where the query has {allowed} places: {c}"
            );
        }
    };

    let events = "query($n: Int!) { events(first: $n) { edges { node {
        recordedBy { name role } location { organization { name } }
        entry { proof { head { size } } } } } } }";
    // The event list; recordedBy and location's organisation; the proofs.
    let places = [("graph", 1), ("organizations", 2), ("proofs", 1)];
    within(&cost(events, "events", 1), &places, "1 event");
    let c = cost(events, "events", 100);
    within(&c, &places, "100 events");
    // One proof per event, and one head per shard.
    let reads = c["storageReads"].as_u64().unwrap();
    assert!(reads <= 100 + 2, "{reads} storage reads for 100 proofs");

    // Lots: each breach's lot with its holder, status, breaches, events and
    // loggers.
    let lots =
        "query($n: Int!) { breaches(first: $n) { edges { node { device { organization { name } }
        lot { gtin holder { name } status { quarantined recalled recalls { id } }
              breaches(first: 5) { totalCount } events(first: 5) { totalCount }
              watchers { device { id } } } } } } }";
    // The breach list; each breach's device (read from its readings entry),
    // that device's owner, and the owner's and the holder's organisation; the
    // lot's view, verdicts, events and loggers.
    let places = [
        ("graph", 1),
        ("readingsDevices", 1),
        ("owners", 1),
        ("organizations", 2),
        ("lots", 1),
        ("verdicts", 1),
        ("events", 1),
        ("watchers", 1),
    ];
    within(&cost(lots, "breaches", 1), &places, "1 lot");
    within(&cost(lots, "breaches", 10), &places, "10 lots");
}

/// Registered organisations of the demo world that are partners of `lot`'s
/// chain and of another chain.
fn partners(world: &fixtures::World) -> (String, String) {
    let lot = world
        .lots
        .iter()
        .find(|l| l.id == world.truth.contaminated_lot)
        .unwrap();
    let own = world.orgs[lot.origin].id.clone();
    let other = world
        .orgs
        .iter()
        .find(|o| o.role_name == "clinic")
        .unwrap()
        .id
        .clone();
    (own, other)
}

#[test]
fn each_caller_sees_what_its_role_allows() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let world = world();
    let (own_org, other_org) = partners(&world);
    let investigator = support::token(dir.path(), support::ORG, "investigator");
    let grower = support::token(dir.path(), &own_org, "partner");
    let clinic = support::token(dir.path(), &other_org, "partner");
    let server = Server::start(dir.path());
    let lot = world.truth.contaminated_lot.clone();
    let device = world
        .devices
        .iter()
        .find(|d| d.monitors.contains(&lot))
        .unwrap()
        .id
        .clone();
    let vars = json!({"lot": lot, "device": device, "org": own_org});
    // Every top-level field, as each caller: Some(code) is a refusal.
    let fields: Vec<(&str, &str)> = vec![
        ("lot", "query($lot: String!) { lot(epc: $lot) { id } }"),
        ("trace", "query($lot: String!) { trace(lot: $lot) { root { id } } }"),
        ("coExposure", "query($lot: String!) { coExposure(lot: $lot) { totalCount } }"),
        ("recall", "{ recall(id: \"00\") { id } }"),
        ("recalls", "{ recalls { totalCount } }"),
        ("breaches", "{ breaches { totalCount } }"),
        ("device", "query($device: String!) { device(id: $device) { id } }"),
        (
            "readings",
            "query($device: String!) { readings(device: $device, from: \"2026-11-01T00:00:00Z\", to: \"2026-11-02T00:00:00Z\", bucketMinutes: 60) { device { id } } }",
        ),
        ("events", "{ events { totalCount } }"),
        ("organization", "query($org: String!) { organization(id: $org) { name } }"),
        ("location", "query($org: String!) { location(id: $org) { id } }"),
        ("search", "{ search(q: \"salinas\") { id } }"),
        ("proof", "{ proof(shard: 0, index: 0) { id } }"),
        ("head", "{ head(shard: 0) { size } }"),
    ];
    // Generated from the schema: a new top-level field cannot skip this table.
    for (field, _, _) in &introspect(&server.base, &investigator)["Query"] {
        assert!(
            fields.iter().any(|(f, _)| f == field),
            "Query.{field} is not in this test's table: say what each caller gets"
        );
    }
    let investigator_counts = |field: &str| -> u64 {
        let q = fields.iter().find(|(f, _)| *f == field).unwrap().1;
        data(&gql(&server.base, Some(&investigator), q, vars.clone()))[field]["totalCount"]
            .as_u64()
            .unwrap()
    };
    for (field, q) in &fields {
        // Investigators: everything.
        data(&gql(&server.base, Some(&investigator), q, vars.clone()));
        // No token: nothing, not even the schema.
        let r = gql(&server.base, None, q, vars.clone());
        assert_eq!(r.status, 401, "{field}: {}", r.body);
        assert_eq!(code(&r), "unauthenticated");
        // The other chain's partner.
        let r = gql(&server.base, Some(&clinic), q, vars.clone());
        let refused = [
            "lot",
            "trace",
            "coExposure",
            "recalls",
            "device",
            "readings",
            "search",
        ];
        if refused.contains(field) {
            assert_eq!(code(&r), "forbidden", "{field}: {}", r.body);
        } else if matches!(*field, "breaches" | "events") {
            let mine = data(&r)[*field]["totalCount"].as_u64().unwrap();
            assert!(
                mine < investigator_counts(field),
                "{field}: a partner sees less than an investigator"
            );
        } else {
            data(&r);
        }
    }
    // The lot's grower sees its own lot, and only its own events.
    let r = data(&gql(
        &server.base,
        Some(&grower),
        "query($lot: String!) { lot(epc: $lot) { id origin { id } events(first: 100) { edges { node { recordedBy { id } location { id } } } } }
            events(first: 100) { edges { node { recordedBy { id } location { id } } } } }",
        vars.clone(),
    ));
    assert_eq!(r["lot"]["origin"]["id"], json!(own_org));
    let lot_events = r["lot"]["events"]["edges"].as_array().unwrap();
    let all_events = r["events"]["edges"].as_array().unwrap();
    assert!(!lot_events.is_empty());
    for e in lot_events.iter().chain(all_events) {
        let n = &e["node"];
        assert!(
            n["recordedBy"]["id"] == json!(own_org) || n["location"]["id"] == json!(own_org),
            "{n}"
        );
    }
    // Introspection needs a token too.
    let r = gql(
        &server.base,
        None,
        "{ __schema { types { name } } }",
        json!({}),
    );
    assert_eq!(r.status, 401);
    data(&gql(
        &server.base,
        Some(&clinic),
        "{ __schema { queryType { name } } }",
        json!({}),
    ));
    // Mutations are for investigators.
    let r = gql(
        &server.base,
        Some(&grower),
        "mutation($lot: String!) { openRecall(lot: $lot, reason: \"x\") { recall { id } } }",
        vars,
    );
    assert_eq!(code(&r), "forbidden");
}

#[test]
fn limits_refuse_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start_with(
        dir.path(),
        &[
            "--graphql-max-depth",
            "6",
            "--graphql-max-complexity",
            "300",
            "--graphql-max-page",
            "50",
        ],
    );
    let lot = world().truth.contaminated_lot;
    let deep = gql(
        &server.base,
        Some(&token),
        "query($lot: String!) { lot(epc: $lot) { trace { lots { edges { node { lot { trace { root { id } } } } } } } } }",
        json!({ "lot": lot }),
    );
    assert_eq!(code(&deep), "query_too_deep", "{}", deep.body);
    let complex = gql(
        &server.base,
        Some(&token),
        "{ breaches(first: 50) { edges { node { rule subject explanation from to } } } }",
        json!({}),
    );
    assert_eq!(code(&complex), "query_too_complex", "{}", complex.body);
    // A refusal of the whole query names no place in it: no location (a
    // location's line and column count from 1; this was line 0, column 0).
    for refused in [&deep, &complex] {
        let locations = &refused.json()["errors"][0]["locations"];
        assert!(
            locations.is_null() || locations.as_array().is_some_and(|l| l.is_empty()),
            "{}",
            refused.body
        );
    }
    let big = gql(
        &server.base,
        Some(&token),
        "{ recalls(first: 51) { totalCount } }",
        json!({}),
    );
    assert_eq!(code(&big), "invalid_parameter");
    assert_eq!(big.json()["errors"][0]["extensions"]["parameter"], "first");
    let garbled = gql(&server.base, Some(&token), "{ lot(", json!({}));
    assert_eq!(code(&garbled), "invalid_query");
    let stranger = gql(
        &server.base,
        Some(&token),
        "{ recalls(after: \"not-ours\") { totalCount } }",
        json!({}),
    );
    assert_eq!(code(&stranger), "invalid_parameter");
    server.stop();

    // A query that outlives its time is stopped.
    let server = Server::start_with(dir.path(), &["--graphql-timeout-ms", "0"]);
    let slow = gql(
        &server.base,
        Some(&token),
        "query($lot: String!) { readings(lot: $lot, from: \"2026-11-01T00:00:00Z\", to: \"2026-12-01T00:00:00Z\", bucketMinutes: 1) { buckets { count } } }",
        json!({ "lot": lot }),
    );
    assert_eq!(code(&slow), "query_timeout", "{}", slow.body);
    server.stop();

    // The body is read only for a valid token, and as the write API reads
    // one: within the body limit, uncompressed. What is not a GraphQL
    // request is refused with a code, in a GraphQL answer.
    let server = Server::start_with(dir.path(), &["--max-body-bytes", "4096"]);
    let send = |token: Option<&str>, body: &[u8], headers: &[(&str, &str)]| {
        let r = support::try_post_with(
            &server.base,
            "/graphql",
            token,
            "application/json",
            body,
            headers,
        )
        .expect("an answer");
        (r.status, code(&r))
    };
    let big = vec![b' '; 64 << 10];
    assert_eq!(send(None, &big, &[]), (401, "unauthenticated".into()));
    assert_eq!(
        send(Some(&token), &big, &[]),
        (413, "payload_too_large".into())
    );
    assert_eq!(
        send(Some(&token), b"{\"query\": ", &[]),
        (400, "malformed_json".into())
    );
    assert_eq!(
        send(Some(&token), br#"{"query": 7}"#, &[]),
        (400, "invalid_body".into())
    );
    let query = br#"{"query": "{ __typename }"}"#;
    assert_eq!(
        send(Some(&token), query, &[("Content-Encoding", "gzip")]),
        (415, "unsupported_content_encoding".into())
    );
    let answer = support::try_post_with(
        &server.base,
        "/graphql",
        Some(&token),
        "application/json",
        query,
        &[],
    )
    .expect("an answer");
    assert_eq!(data(&answer), json!({ "__typename": "Query" }));
}

/// A graphql-transport-ws client over a real WebSocket.
struct Ws(tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>);

impl Ws {
    fn connect(base: &str, token: &str) -> Ws {
        use tungstenite::client::IntoClientRequest;
        let url = format!("{}/graphql", base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, _) = tungstenite::connect(req).expect("the WebSocket opens");
        let mut ws = Ws(socket);
        ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}));
        assert_eq!(ws.next()["type"], "connection_ack");
        ws
    }

    fn send(&mut self, v: Value) {
        self.0
            .send(tungstenite::Message::text(v.to_string()))
            .unwrap();
    }

    fn next(&mut self) -> Value {
        loop {
            match self.0.read().expect("a message") {
                tungstenite::Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] != "ping" && v["type"] != "pong" {
                        return v;
                    }
                }
                tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }
}

#[test]
fn a_new_excursion_reaches_a_subscribed_investigator() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let world = world();
    let investigator = support::token(dir.path(), support::ORG, "investigator");
    // A clinic's vaccine fridge (2–8 °C), after the world's events: its
    // owner sends a warm day.
    let fridge = world
        .devices
        .iter()
        .find(|d| d.kind == fixtures::DeviceKind::Fridge)
        .unwrap();
    let owner = support::token(dir.path(), &world.orgs[fridge.owner].id, "partner");
    let server = Server::start(dir.path());

    let mut ws = Ws::connect(&server.base, &investigator);
    ws.send(json!({"id": "1", "type": "subscribe", "payload": {"query":
        "subscription($d: String!) { breaches(lot: $d) { rule subject from device { id } entry { shard index proof { head { size } } } } }",
        "variables": {"d": fridge.id}}}));
    // A partner cannot follow recall changes.
    let mut other = Ws::connect(&server.base, &owner);
    other.send(json!({"id": "r", "type": "subscribe", "payload": {"query": "subscription { recallChanges { recallId } }"}}));
    let refused = other.next();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "forbidden",
        "{refused}"
    );

    let next_seq = world
        .signed_batches(fridge, 720)
        .last()
        .map(|b| b.batch.next_seq())
        .unwrap();
    let mut dev = DeviceClient::new(fridge.id.clone(), fridge.key()).starting_at(next_seq);
    let t0 = fridge.to_ms + 3_600_000;
    // Eleven hours at 15 °C (the heat alarm is 10 h above 8 °C), then
    // back to 5 °C: the excursion ends and its breach is recorded.
    let warm: Vec<Reading> = (0..12 * 60)
        .map(|i| Reading::new(t0 + i * 60_000, if i < 11 * 60 { 1_500 } else { 500 }))
        .collect();
    let r = post(
        &server.base,
        "/v1/batches",
        Some(&owner),
        "application/json",
        &encode_json(&[dev.sign(warm)]),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // ingest -> feed -> rules -> verdict on the ledger -> subscription.
    let deadline = Instant::now() + Duration::from_secs(60);
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.0.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    // The logger's other breaches (its silence after the world ended) may
    // come first; the heat breach must come.
    let b = loop {
        assert!(Instant::now() < deadline, "no heat breach within 60 s");
        let msg = ws.next();
        assert_eq!(msg["type"], "next", "{msg}");
        let b = msg["payload"]["data"]["breaches"].clone();
        if b["rule"] == "vaccine_heat" {
            break b;
        }
    };
    assert_eq!(b["subject"], json!(fridge.id));
    assert_eq!(b["device"]["id"], json!(fridge.id));
    let from = ms(&b["from"]);
    assert!((t0..t0 + 3_600_000).contains(&from), "{b}");
    assert!(b["entry"]["proof"]["head"]["size"].as_u64().unwrap() > 0);

    // Recall changes made through mutations reach a subscriber, in order.
    ws.send(json!({"id": "2", "type": "subscribe", "payload": {"query":
        "subscription { recallChanges { change recallId lot by entry { shard index } } }"}}));
    std::thread::sleep(Duration::from_millis(200));
    let lot = &world.lots[1].id;
    let opened = data(&gql(
        &server.base,
        Some(&investigator),
        "mutation($lot: String!) { openRecall(lot: $lot, reason: \"supplier notice\") {
            recall { id open lot { id } affected { totalCount } } entry { shard index } } }",
        json!({ "lot": lot }),
    ));
    let recall = &opened["openRecall"]["recall"];
    assert_eq!(recall["open"], true);
    assert_eq!(recall["lot"]["id"], json!(lot));
    let id = recall["id"].as_str().unwrap().to_string();
    let next_recall_notice = |ws: &mut Ws| loop {
        let m = ws.next();
        if m["id"] == "2" {
            break m["payload"]["data"]["recallChanges"].clone();
        }
    };
    let n = next_recall_notice(&mut ws);
    assert_eq!(
        (n["change"].as_str(), n["recallId"].as_str()),
        (Some("opened"), Some(id.as_str()))
    );
    assert_eq!(n["entry"], opened["openRecall"]["entry"]);
    let closed = data(&gql(
        &server.base,
        Some(&investigator),
        "mutation($id: String!) { closeRecall(id: $id, reason: \"cleared\") { recall { open } } }",
        json!({ "id": id }),
    ));
    assert_eq!(closed["closeRecall"]["recall"]["open"], false);
    assert_eq!(next_recall_notice(&mut ws)["change"], "closed");
    let again = gql(
        &server.base,
        Some(&investigator),
        "mutation($id: String!) { closeRecall(id: $id, reason: \"twice\") { recall { open } } }",
        json!({ "id": id }),
    );
    assert_eq!(code(&again), "recall_closed");

    // A quarantined lot of the world is released through a mutation.
    let quarantined = world
        .lots
        .iter()
        .find(|l| {
            data(&gql(
                &server.base,
                Some(&investigator),
                "query($lot: String!) { lot(epc: $lot) { status { quarantined } } }",
                json!({ "lot": l.id }),
            ))["lot"]["status"]["quarantined"]
                == true
        })
        .expect("the tiny world quarantines a lot");
    data(&gql(
        &server.base,
        Some(&investigator),
        "mutation($lot: String!) { releaseQuarantine(lot: $lot, reason: \"QA checked\") { shard index } }",
        json!({ "lot": quarantined.id }),
    ));
    let after = data(&gql(
        &server.base,
        Some(&investigator),
        "query($lot: String!) { lot(epc: $lot) { status { quarantined } } }",
        json!({ "lot": quarantined.id }),
    ));
    assert_eq!(after["lot"]["status"]["quarantined"], false);
}

#[test]
fn the_served_schema_is_the_checked_in_sdl() {
    let out = support::coldtrail(&["graphql-schema"]);
    let printed = String::from_utf8(out.stdout).unwrap();
    let file = include_str!("../graphql/schema.graphql");
    assert_eq!(
        printed, file,
        "run `coldtrail graphql-schema > graphql/schema.graphql` and review the change"
    );
}

/// A socket's refusal code: an `error` message's, or a `next` whose
/// payload carries errors.
fn socket_refusal(m: &Value) -> Option<String> {
    let errors = match m["type"].as_str() {
        Some("error") => &m["payload"],
        Some("next") => &m["payload"]["errors"],
        _ => return None,
    };
    errors[0]["extensions"]["code"].as_str().map(str::to_string)
}

#[test]
fn a_revoked_token_ends_what_its_websocket_opened() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let world = world();
    let doomed = support::token(dir.path(), support::ORG, "investigator");
    let other = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let mut ws = Ws::connect(&server.base, &doomed);
    ws.send(json!({"id": "s", "type": "subscribe", "payload": {"query":
        "subscription { recallChanges { change recallId } }"}}));
    ws.send(json!({"id": "q1", "type": "subscribe", "payload": {"query": "{ recalls { totalCount } }"}}));
    let answered = loop {
        let m = ws.next();
        if m["id"] == "q1" && m["type"] == "next" {
            break m;
        }
    };
    assert!(socket_refusal(&answered).is_none(), "{answered}");

    let hash = ledger::Domain::Token.hash(doomed.as_bytes()).to_hex();
    support::coldtrail(&[
        "token",
        "revoke",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--hash",
        &hash[..16],
    ]);
    // A new operation on the open socket is refused.
    ws.send(json!({"id": "q2", "type": "subscribe", "payload": {"query": "{ recalls { totalCount } }"}}));
    let refused = loop {
        let m = ws.next();
        if m["id"] == "q2" && m["type"] != "complete" {
            break m;
        }
    };
    assert_eq!(
        socket_refusal(&refused).as_deref(),
        Some("bad_token"),
        "{refused}"
    );
    // The running subscription sends no more notices: the next one it
    // would have sent (a recall another investigator opens) is its refusal.
    data(&gql(
        &server.base,
        Some(&other),
        "mutation($lot: String!) { openRecall(lot: $lot, reason: \"supplier notice\") { recall { id } } }",
        json!({ "lot": world.lots[1].id }),
    ));
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.0.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let ended = loop {
        let m = ws.next();
        if m["id"] == "s" {
            break m;
        }
    };
    assert_eq!(
        socket_refusal(&ended).as_deref(),
        Some("bad_token"),
        "{ended}"
    );
    assert!(ended["payload"]["data"].is_null(), "{ended}");
    let last = ws.next();
    assert_eq!(
        (last["id"].as_str(), last["type"].as_str()),
        (Some("s"), Some("complete")),
        "{last}"
    );
}

/// The schema's object types as introspection gives them: by type, each
/// field's name, its required arguments (name, type name) and the named
/// type it returns.
type Fields = Vec<(String, Vec<(String, String)>, String)>;

fn introspect(base: &str, token: &str) -> std::collections::BTreeMap<String, Fields> {
    // Wrapping types (non-null, list) nest up to three deep here.
    const REF: &str = "name kind ofType { name kind ofType { name kind ofType { name kind } } }";
    let q = format!(
        "{{ __schema {{ types {{ name kind fields {{ name args {{ name defaultValue type {{ {REF} }} }} type {{ {REF} }} }} }} }} }}"
    );
    let v = data(&gql(base, Some(token), &q, json!({})));
    let named = |t: &Value| -> (String, bool) {
        let required = t["kind"] == "NON_NULL";
        let mut t = t;
        while t["name"].is_null() {
            t = &t["ofType"];
        }
        (t["name"].as_str().unwrap().to_string(), required)
    };
    let mut out = std::collections::BTreeMap::new();
    for t in v["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if t["kind"] != "OBJECT" || name.starts_with("__") {
            continue;
        }
        let fields = t["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let args = f["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|a| {
                        let (ty, non_null) = named(&a["type"]);
                        let required = non_null && a["defaultValue"].is_null();
                        required.then(|| (a["name"].as_str().unwrap().to_string(), ty))
                    })
                    .collect();
                (
                    f["name"].as_str().unwrap().to_string(),
                    args,
                    named(&f["type"]).0,
                )
            })
            .collect();
        out.insert(name.to_string(), fields);
    }
    out
}

/// A selection of every field of `ty` (objects followed `depth` more levels,
/// never into a type already on the path), each object with its
/// `__typename`. A required argument not in the table fails the test by
/// name: a new field cannot skip the check.
fn select_all(
    types: &std::collections::BTreeMap<String, Fields>,
    ty: &str,
    depth: usize,
    path: &mut Vec<String>,
    only: Option<&str>,
) -> String {
    let arg = |name: &str, ty: &str| -> String {
        let value = match (name, ty) {
            ("from", "DateTime") => "\"2026-10-01T00:00:00Z\"",
            ("to", "DateTime") => "\"2027-01-01T00:00:00Z\"",
            ("bucketMinutes", "Int") => "1440",
            _ => panic!("argument {name}: {ty} has no value in this test's table; add one"),
        };
        format!("{name}: {value}")
    };
    let mut parts = vec!["__typename".to_string()];
    path.push(ty.to_string());
    for (name, args, returns) in &types[ty] {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let args = if args.is_empty() {
            String::new()
        } else {
            format!(
                "({})",
                args.iter()
                    .map(|(n, t)| arg(n, t))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match types.get(returns) {
            None => parts.push(format!("{name}{args}")),
            Some(_) if depth == 0 || path.contains(returns) => {}
            Some(_) => {
                let inner = select_all(types, returns, depth - 1, path, None);
                parts.push(format!("{name}{args} {{ {inner} }}"));
            }
        }
    }
    path.pop();
    parts.join(" ")
}

/// Every object in `v` with a `__typename` and an `id`.
fn objects_with_ids(v: &Value, out: &mut std::collections::BTreeSet<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(t)), Some(Value::String(id))) =
                (m.get("__typename"), m.get("id"))
            {
                out.insert((t.clone(), id.clone()));
            }
            m.values().for_each(|x| objects_with_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| objects_with_ids(x, out)),
        _ => {}
    }
}

#[test]
fn nested_fields_show_a_partner_nothing_the_top_level_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let world = world();
    // The distribution centre, and a salad lot: it held every finished lot.
    let dc = &world.orgs[7];
    let partner = support::token(dir.path(), &dc.id, "partner");
    let lot = world
        .lots
        .iter()
        .find(|l| l.product == 2)
        .expect("the tiny world makes salad")
        .id
        .clone();
    let server = Server::start(dir.path());
    let types = introspect(&server.base, &partner);
    // What a partner may fetch at the top level, by type.
    let top: &[(&str, &str)] = &[
        ("Lot", "lot(epc: $id) { __typename }"),
        ("Device", "device(id: $id) { __typename }"),
        ("Organization", "organization(id: $id) { __typename }"),
        ("Location", "location(id: $id) { __typename }"),
        ("Recall", "recall(id: $id) { __typename }"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    let fields: Vec<String> = types["Lot"].iter().map(|f| f.0.clone()).collect();
    for field in &fields {
        // One query per field of Lot, five object levels under it: within
        // the node's depth and complexity limits.
        let inner = select_all(&types, "Lot", 5, &mut Vec::new(), Some(field));
        let r = gql(
            &server.base,
            Some(&partner),
            &format!("query($lot: String!) {{ lot(epc: $lot) {{ {inner} }} }}"),
            json!({ "lot": lot }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        // A refusal inside (a partner asking for a trace) is an answer too.
        for e in v["errors"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let code = e["extensions"]["code"].as_str();
            assert_eq!(code, Some("forbidden"), "lot.{field}: {e}");
        }
        objects_with_ids(&v["data"], &mut seen);
    }
    assert!(
        seen.iter().any(|(t, _)| t == "Device") && seen.iter().any(|(t, _)| t == "Organization"),
        "the lot's loggers and organisations were reached: {seen:?}"
    );
    for (ty, id) in &seen {
        let Some((_, q)) = top.iter().find(|(t, _)| t == ty) else {
            continue;
        };
        let v = gql(
            &server.base,
            Some(&partner),
            &format!("query($id: String!) {{ {q} }}"),
            json!({ "id": id }),
        )
        .json();
        assert!(
            v["errors"].is_null(),
            "{ty} {id} is shown to the partner nested under its lot but refused at the top level: {v}"
        );
    }
}
