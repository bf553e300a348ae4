//! Who may say what (issue 33), over real HTTP with two rival partners'
//! tokens: an organisation records events only at its own locations or at
//! those another organisation delegated to it.

mod support;

use serde_json::{json, Value};
use support::*;

/// `ORG`'s dock: an SGLN under its GLN.
const DOCK: &str = "urn:epc:id:sgln:0614141.00001.7";
/// `OTHER_ORG` as a party (its PGLN: the same GLN).
const OTHER_PARTY: &str = "urn:epc:id:pgln:0614141.00002";

fn capture(base: &str, token: &str, id: &str, read_point: &str, biz_location: &str) -> Reply {
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00.000+01:00",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent",
            "eventID": format!("urn:uuid:00000000-0000-4000-8000-{id:0>12}"),
            "eventTime": "2026-11-20T08:00:00.000+01:00",
            "eventTimeZoneOffset": "+01:00",
            "action": "OBSERVE",
            "bizStep": "receiving",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2018"],
            "readPoint": {"id": read_point},
            "bizLocation": {"id": biz_location}
        }]}
    });
    post(
        base,
        "/capture",
        Some(token),
        "application/ld+json",
        doc.to_string().as_bytes(),
        None,
    )
}

fn delegation(base: &str, token: &str, path: &str, location: &str) -> Reply {
    post_json(
        base,
        path,
        token,
        &json!({"location": location, "to": OTHER_PARTY}),
    )
}

fn events_at(base: &str, token: &str, location: &str) -> Vec<Value> {
    let r = get_auth(
        base,
        &format!(
            "/v1/events?EQ_bizLocation={}",
            api::params::percent_encode(location)
        ),
        token,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_organisation_records_only_at_its_own_locations_or_where_it_was_delegated() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, rival) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;

    // The rival's event at the owner's dock, by read point, by business
    // location, or at the owner's GLN itself: refused, nothing written.
    let sizes = shard_sizes(base);
    for (i, (rp, bl)) in [
        (DOCK, OTHER_ORG),
        (OTHER_ORG, DOCK),
        (ORG, ORG),
        ("https://id.gs1.org/414/0614141000012/254/7", OTHER_ORG),
    ]
    .into_iter()
    .enumerate()
    {
        let r = capture(base, &rival, &format!("{}", i + 1), rp, bl);
        r.assert_problem(403, "location_not_yours");
        assert!(
            r.body.contains(ORG),
            "the refusal names the owner: {}",
            r.body
        );
    }
    assert_eq!(
        shard_sizes(base),
        sizes,
        "a refused document writes nothing"
    );
    assert!(events_at(base, &owner, DOCK).is_empty());
    // Its own places, and places no member owns, are the rival's to name.
    assert_eq!(
        capture(base, &rival, "10", OTHER_ORG, OTHER_ORG).status,
        202
    );
    let nobodys = "urn:epc:id:sgln:0012345.11111.0";
    assert_eq!(capture(base, &rival, "11", nobodys, nobodys).status, 202);

    // Only the owner delegates its places.
    delegation(base, &rival, "/v1/locations/delegations", DOCK).assert_problem(403, "forbidden");
    let first = delegation(base, &owner, "/v1/locations/delegations", DOCK);
    assert_eq!(first.status, 201, "{}", first.body);
    let again = delegation(base, &owner, "/v1/locations/delegations", DOCK);
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(
        again.json()["entries"][0]["id"],
        first.json()["entries"][0]["id"],
        "a delegation in force is answered with the entry that made it"
    );
    // Delegated: the dock, not the rest of the owner's GLN.
    assert_eq!(capture(base, &rival, "20", DOCK, DOCK).status, 202);
    capture(
        base,
        &rival,
        "21",
        "urn:epc:id:sgln:0614141.00001.8",
        OTHER_ORG,
    )
    .assert_problem(403, "location_not_yours");
    assert_eq!(events_at(base, &owner, DOCK).len(), 1);

    // Withdrawn, and still withdrawn after a restart (the state is the
    // ledger's).
    let w = delegation(base, &owner, "/v1/locations/delegations/withdraw", DOCK);
    assert_eq!(w.status, 201, "{}", w.body);
    delegation(base, &owner, "/v1/locations/delegations/withdraw", DOCK)
        .assert_problem(404, "not_found");
    capture(base, &rival, "22", DOCK, DOCK).assert_problem(403, "location_not_yours");
    server.stop();
    let server = Server::start(dir.path());
    capture(&server.base, &rival, "23", DOCK, DOCK).assert_problem(403, "location_not_yours");
    assert_eq!(capture(&server.base, &owner, "24", DOCK, DOCK).status, 202);
}

/// The packer whose clean lot the rival goes after.
const CLEAN_CO: &str = "urn:epc:id:sgln:0614141.00003.0";
const INVESTIGATOR_ORG: &str = "urn:epc:id:sgln:0614141.00099.0";
const CONTAMINATED: &str = "urn:epc:class:lgtin:0614141.012345.DIRTY";
const CLEAN: &str = "urn:epc:class:lgtin:0614141.012345.CLEAN";
const MADE_1: &str = "urn:epc:class:lgtin:0614141.012345.MADE1";
const MADE_2: &str = "urn:epc:class:lgtin:0614141.012345.MADE2";

/// Three organisations and an investigator: the grower (`ORG`), a rival
/// (`OTHER_ORG`, "Other Packer") and a packer (`CLEAN_CO`); their tokens.
struct Rivals {
    _dir: tempfile::TempDir,
    server: Server,
    grower: String,
    rival: String,
    clean: String,
    investigator: String,
    seq: std::cell::Cell<u32>,
}

impl Rivals {
    fn start() -> Rivals {
        Rivals::start_with(analytics::RulesConfig::default())
    }

    /// The world under the rules `rules` (the node's `rules.json`).
    fn start_with(rules: analytics::RulesConfig) -> Rivals {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.json"),
            serde_json::to_vec_pretty(&rules).unwrap(),
        )
        .unwrap();
        // The lots' brand owner discloses their records on consumer pages.
        let gtin = analytics::watches::gtin_of(CLEAN).unwrap();
        std::fs::write(
            dir.path().join("products.json"),
            json!({gtin: {"names": {"en": "Greens"}, "disclose": true}}).to_string(),
        )
        .unwrap();
        let (grower, _) = provision(dir.path());
        for (gln, name, role) in [
            (CLEAN_CO, "Clean Greens", "packer"),
            (INVESTIGATOR_ORG, "Food Safety Office", "investigator"),
        ] {
            add_org(dir.path(), gln, name, role, &[]);
        }
        let rival = token(dir.path(), OTHER_ORG, "partner");
        let clean = token(dir.path(), CLEAN_CO, "partner");
        let investigator = token(dir.path(), INVESTIGATOR_ORG, "investigator");
        let server = Server::start(dir.path());
        Rivals {
            _dir: dir,
            server,
            grower,
            rival,
            clean,
            investigator,
            seq: std::cell::Cell::new(0),
        }
    }

    /// Captures one event (`body` fields over the defaults: at `site`, on
    /// 2026-11-20 at `hour`); answers the reply.
    fn capture(&self, token: &str, site: &str, hour: u32, body: Value) -> Reply {
        self.seq.set(self.seq.get() + 1);
        let mut e = json!({
            "eventID": format!("urn:uuid:00000000-0000-4000-8000-{:012}", 900 + self.seq.get()),
            "eventTime": format!("2026-11-20T{hour:02}:00:00.000Z"),
            "eventTimeZoneOffset": "+00:00",
            "readPoint": {"id": site},
            "bizLocation": {"id": site},
        });
        for (k, v) in body.as_object().unwrap() {
            e[k] = v.clone();
        }
        let doc = json!({
            "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-11-20T08:00:00.000Z",
            "epcisBody": {"eventList": [e]}
        });
        let r = post(
            &self.server.base,
            "/capture",
            Some(token),
            "application/ld+json",
            doc.to_string().as_bytes(),
            None,
        );
        assert_eq!(r.status, 202, "{}", r.body);
        r
    }

    fn commission(&self, token: &str, site: &str, lot: &str, hour: u32) {
        self.capture(token, site, hour, json!({"type": "ObjectEvent", "action": "ADD",
            "bizStep": "commissioning", "quantityList": [{"epcClass": lot, "quantity": 10.0, "uom": "KGM"}]}));
    }

    fn transform(&self, token: &str, site: &str, inputs: &[&str], outputs: &[&str], hour: u32) {
        let list = |lots: &[&str]| -> Vec<Value> {
            lots.iter()
                .map(|l| json!({"epcClass": l, "quantity": 5.0, "uom": "KGM"}))
                .collect()
        };
        self.capture(
            token,
            site,
            hour,
            json!({"type": "TransformationEvent", "bizStep": "commissioning",
            "inputQuantityList": list(inputs), "outputQuantityList": list(outputs)}),
        );
    }

    fn gql(&self, token: &str, query: &str, lot: &str) -> Value {
        let r = post(
            &self.server.base,
            "/graphql",
            Some(token),
            "application/json",
            json!({"query": query, "variables": {"lot": lot}})
                .to_string()
                .as_bytes(),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// The lot's GraphQL refusal code for `token`, or `None` when answered.
    fn lot_refusal(&self, token: &str, lot: &str) -> Option<String> {
        let v = self.gql(
            token,
            "query($lot: String!) { lot(epc: $lot) { id origin { name } } }",
            lot,
        );
        v["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_string)
    }

    fn holder(&self, lot: &str) -> Value {
        let v = self.gql(
            &self.investigator,
            "query($lot: String!) { lot(epc: $lot) { holder { id } } }",
            lot,
        );
        v["data"]["lot"]["holder"]["id"].clone()
    }

    /// The events naming `lot` an investigator finds (GraphQL `events`),
    /// oldest first: type, recorder and standing of each.
    fn events_naming(&self, lot: &str) -> Vec<Value> {
        let v = self.gql(
            &self.investigator,
            "query($lot: String!) { events(filter: {epc: $lot}, first: 100) { edges { node {
                eventType standing recordedBy { id } } } } }",
            lot,
        );
        v["data"]["events"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|e| e["node"].clone())
            .collect()
    }

    fn forward_trace(&self, lot: &str) -> String {
        let r = get_auth(
            &self.server.base,
            &format!(
                "/v1/trace?lot={}&direction=forward",
                api::params::percent_encode(lot)
            ),
            &self.investigator,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    fn page(&self, lot: &str) -> String {
        let link = gs1::canonical_id(lot).unwrap();
        let path = link.strip_prefix("https://id.gs1.org").unwrap();
        let r = get(&self.server.base, path);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

fn standing(e: &Value) -> &str {
    e["standing"].as_str().unwrap()
}

#[test]
fn naming_a_competitors_lot_grants_no_read_access() {
    let w = Rivals::start();
    w.commission(&w.grower, ORG, CONTAMINATED, 6);
    assert_eq!(
        w.lot_refusal(&w.rival, CONTAMINATED).as_deref(),
        Some("forbidden")
    );
    // The rival observes the lot at its own site (an inspection), then
    // claims to receive it: neither makes it a holder.
    w.capture(&w.rival, OTHER_ORG, 7, json!({"type": "ObjectEvent", "action": "OBSERVE",
        "bizStep": "inspecting", "quantityList": [{"epcClass": CONTAMINATED, "quantity": 1.0, "uom": "KGM"}]}));
    w.capture(&w.rival, OTHER_ORG, 8, json!({"type": "ObjectEvent", "action": "OBSERVE",
        "bizStep": "receiving", "quantityList": [{"epcClass": CONTAMINATED, "quantity": 1.0, "uom": "KGM"}]}));
    assert_eq!(
        w.lot_refusal(&w.rival, CONTAMINATED).as_deref(),
        Some("forbidden"),
        "naming a lot is not holding it"
    );
    assert_eq!(w.lot_refusal(&w.grower, CONTAMINATED), None);
    // Investigators see both claims, labelled; the lot's holder is unchanged.
    let events = w.events_naming(CONTAMINATED);
    let labels: Vec<&str> = events.iter().map(standing).collect();
    assert_eq!(labels, ["COUNTED", "OBSERVATION", "PENDING"], "{events:?}");
    assert_eq!(w.holder(CONTAMINATED), json!(ORG));
    // The consumer page shows the inspection, labelled as a third party's,
    // apart from the journey; the claimed receipt not at all.
    let page = w.page(CONTAMINATED);
    let journey = &page[page.find("id=\"journey-h\"").unwrap()..];
    let (journey, others) = journey
        .split_once("id=\"observations-h\"")
        .unwrap_or_else(|| panic!("no observations section: {page}"));
    assert_eq!(journey.matches("data-fact=\"step\"").count(), 1, "{page}");
    assert!(!journey.contains("Other Packer"), "{page}");
    assert_eq!(
        others.matches("data-fact=\"observation\"").count(),
        1,
        "{page}"
    );
    assert!(others.contains("Other Packer"), "{page}");
}

#[test]
fn a_rivals_transformation_rewrites_no_trace_holder_page_or_grant() {
    let w = Rivals::start();
    w.commission(&w.grower, ORG, CONTAMINATED, 6);
    w.commission(&w.clean, CLEAN_CO, CLEAN, 6);
    w.transform(&w.clean, CLEAN_CO, &[CLEAN], &[MADE_1, MADE_2], 9);
    // The rival claims the clean lot was made from the contaminated one,
    // at its own site, days before (so it is shown as disputed).
    w.capture(
        &w.rival,
        OTHER_ORG,
        1,
        json!({"type": "TransformationEvent", "bizStep": "commissioning",
        "eventTime": "2026-11-10T01:00:00.000Z",
        "inputQuantityList": [{"epcClass": CONTAMINATED, "quantity": 1.0, "uom": "KGM"}],
        "outputQuantityList": [{"epcClass": CLEAN, "quantity": 1.0, "uom": "KGM"}]}),
    );
    let trace = w.forward_trace(CONTAMINATED);
    for lot in [CLEAN, MADE_1, MADE_2] {
        assert!(!trace.contains(lot), "the trace lists {lot}: {trace}");
    }
    assert_eq!(w.holder(CLEAN), json!(CLEAN_CO));
    let page = w.page(CLEAN);
    assert!(page.contains("Clean Greens"), "{page}");
    assert!(
        !page.contains("Other Packer"),
        "the page names the rival: {page}"
    );
    assert_eq!(w.lot_refusal(&w.rival, CLEAN).as_deref(), Some("forbidden"));
    // A lot made by a transformation (at the step `commissioning`) reads as
    // processed, not packed.
    let made = w.page(MADE_1);
    let step = made
        .split("data-fact=\"step\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{made}"));
    assert!(
        step.contains("Processed") && !step.contains("Packed"),
        "{made}"
    );
    // Investigators see the claim, disputed; the rival sees its own event.
    let claims: Vec<Value> = w
        .events_naming(CLEAN)
        .into_iter()
        .filter(|e| e["recordedBy"]["id"] == OTHER_ORG)
        .collect();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["eventType"], "TransformationEvent");
    assert_eq!(standing(&claims[0]), "DISPUTED");
}

#[test]
fn a_receipt_captured_before_its_shipment_counts_once_the_shipment_arrives() {
    let w = Rivals::start();
    w.commission(&w.grower, ORG, CLEAN, 6);
    // The packer's receipt arrives first: pending, no grant, no holder.
    w.capture(&w.clean, CLEAN_CO, 12, json!({"type": "ObjectEvent", "action": "OBSERVE",
        "bizStep": "receiving", "quantityList": [{"epcClass": CLEAN, "quantity": 10.0, "uom": "KGM"}]}));
    w.transform(&w.clean, CLEAN_CO, &[CLEAN], &[MADE_1], 13);
    assert_eq!(w.lot_refusal(&w.clean, CLEAN).as_deref(), Some("forbidden"));
    assert_eq!(w.holder(CLEAN), json!(ORG));
    assert!(!w.forward_trace(CLEAN).contains(MADE_1));
    // The grower's shipment names the packer: the receipt and the
    // transformation after it count now.
    w.capture(&w.grower, ORG, 8, json!({"type": "ObjectEvent", "action": "OBSERVE",
        "bizStep": "shipping", "quantityList": [{"epcClass": CLEAN, "quantity": 10.0, "uom": "KGM"}],
        "destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00003"}]}));
    assert_eq!(w.lot_refusal(&w.clean, CLEAN), None);
    assert!(w.forward_trace(CLEAN).contains(MADE_1));
    assert_eq!(w.holder(CLEAN), json!(CLEAN_CO));
    assert!(w
        .events_naming(CLEAN)
        .iter()
        .all(|e| standing(e) == "COUNTED"));
    // The rival, never named, still reads nothing of it.
    assert_eq!(w.lot_refusal(&w.rival, CLEAN).as_deref(), Some("forbidden"));
}

/// 2026-11-20T00:00:00Z, the day the custody tests' events happen.
const DAY_MS: i64 = 1_795_132_800_000;
const HOUR_MS: i64 = 3_600_000;

#[test]
fn a_loggers_readings_are_a_partners_only_while_it_watched_the_partners_lot() {
    let w = Rivals::start();
    let base = &w.server.base;
    // The grower's logger watches its own lot A (06:00–08:00), then lot B,
    // which the grower has shipped to the packer (10:00–12:00).
    let (a, b) = (CONTAMINATED, CLEAN);
    w.commission(&w.grower, ORG, a, 5);
    w.commission(&w.grower, ORG, b, 5);
    w.capture(&w.grower, ORG, 9, json!({"type": "ObjectEvent", "action": "OBSERVE",
        "bizStep": "shipping", "quantityList": [{"epcClass": b, "quantity": 10.0, "uom": "KGM"}],
        "destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00003"}]}));
    let logger = "urn:epc:id:giai:0614141.LOG-1";
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    register_device(base, &w.grower, logger, &key);
    for (lot, on, off) in [(a, 6, 8), (b, 10, 12)] {
        for (action, hour) in [("ADD", on), ("DELETE", off)] {
            w.capture(&w.grower, ORG, hour, json!({"type": "AssociationEvent", "action": action,
                "parentID": logger, "childQuantityList": [{"epcClass": lot, "quantity": 10.0, "uom": "KGM"}]}));
        }
    }
    let readings: Vec<ledger::reading::Reading> = (0..14 * 60)
        .map(|m| ledger::reading::Reading::new(DAY_MS + 5 * HOUR_MS + m * 60_000, 400))
        .collect();
    let mut dev = ingest::DeviceClient::new(logger.to_string(), key);
    let r = post(
        base,
        "/v1/batches",
        Some(&w.grower),
        "application/json",
        &ingest::wire::encode_json(&[dev.sign(readings)]),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ask = |token: &str, from: u32, to: u32| -> Value {
        let q = format!(
            "{{ readings(device: \"{logger}\", from: \"2026-11-20T{from:02}:00:00Z\", to: \"2026-11-20T{to:02}:00:00Z\", bucketMinutes: 60) {{ buckets {{ count }} }} }}"
        );
        w.gql(token, &q, "")
    };
    let code = |v: &Value| {
        v["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_string)
    };
    // The packer reads the hours the logger watched its lot, not the
    // hours it watched the grower's, at the top level or nested.
    let mine = ask(&w.clean, 10, 12);
    assert_eq!(code(&mine), None, "{mine}");
    assert_eq!(
        mine["data"]["readings"][0]["buckets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(code(&ask(&w.clean, 6, 8)).as_deref(), Some("forbidden"));
    let nested = w.gql(
        &w.clean,
        "query($lot: String!) { lot(epc: $lot) { watchers { device { readings(from: \"2026-11-20T06:00:00Z\", to: \"2026-11-20T08:00:00Z\", bucketMinutes: 60) { buckets { count } } } } } }",
        b,
    );
    assert_eq!(code(&nested).as_deref(), Some("forbidden"), "{nested}");
    // The owner reads all of it; the rival none.
    assert_eq!(code(&ask(&w.grower, 6, 8)), None);
    assert_eq!(code(&ask(&w.rival, 10, 12)).as_deref(), Some("forbidden"));
}

#[test]
fn a_rivals_logger_breaches_and_quarantines_none_of_a_competitors_lots() {
    // Every lot here is a vaccine, judged by the WHO 2–8 °C profile.
    let mut rules = analytics::RulesConfig::default();
    rules.products.insert(
        analytics::watches::gtin_of(CLEAN).unwrap(),
        "vaccines_2_8".into(),
    );
    let w = Rivals::start_with(rules);
    let base = &w.server.base;
    let (rivals_lot, pallet) = (
        "urn:epc:class:lgtin:0614141.012345.RIVAL",
        "urn:epc:id:sscc:0614141.0000000042",
    );
    w.commission(&w.grower, ORG, CONTAMINATED, 5);
    w.commission(&w.clean, CLEAN_CO, CLEAN, 5);
    w.commission(&w.rival, OTHER_ORG, rivals_lot, 5);
    // The packer puts its lot on a pallet.
    w.capture(
        &w.clean,
        CLEAN_CO,
        5,
        json!({"type": "AggregationEvent", "action": "ADD",
        "bizStep": "packing", "parentID": pallet,
        "childQuantityList": [{"epcClass": CLEAN, "quantity": 10.0, "uom": "KGM"}]}),
    );
    // The grower puts a logger on its own lot; the rival one on its own
    // lot, on the packer's lot and on the packer's pallet. Both loggers
    // then report the same excursion.
    let loggers = [
        (
            &w.grower,
            ORG,
            "urn:epc:id:giai:0614141.GROWER-1",
            &[CONTAMINATED][..],
            7,
        ),
        (
            &w.rival,
            OTHER_ORG,
            "urn:epc:id:giai:0614141.RIVAL-1",
            &[rivals_lot, CLEAN, pallet][..],
            8,
        ),
    ];
    for (token, site, logger, watched, seed) in loggers {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        register_device(base, token, logger, &key);
        for subject in watched {
            let child = if subject.contains(":sscc:") {
                json!({"childEPCs": [subject]})
            } else {
                json!({"childQuantityList": [{"epcClass": subject, "quantity": 10.0, "uom": "KGM"}]})
            };
            let mut event = json!({"type": "AssociationEvent", "action": "ADD",
                "bizStep": "installing", "parentID": logger});
            for (k, v) in child.as_object().unwrap() {
                event[k] = v.clone();
            }
            w.capture(token, site, 6, event);
        }
        // Two hours at 5 °C, eleven at 9.5 °C, an hour at 5 °C; then a
        // reading no sensor can make, which suspends the logger: its
        // suspension shows when the batch has been judged.
        let readings: Vec<ledger::reading::Reading> = (0..14 * 12 + 1)
            .map(|i| {
                let temp = match i {
                    24..156 => 950,
                    168 => 50_000,
                    _ => 500,
                };
                ledger::reading::Reading::new(DAY_MS + 6 * HOUR_MS + i * 300_000, temp)
            })
            .collect();
        let mut dev = ingest::DeviceClient::new(logger.to_string(), key);
        let r = post(
            base,
            "/v1/batches",
            Some(token),
            "application/json",
            &ingest::wire::encode_json(&[dev.sign(readings)]),
            None,
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let status = |lot: &str| -> Value {
        w.gql(
            &w.investigator,
            "query($lot: String!) { lot(epc: $lot) { status { quarantined }
                breaches { edges { node { subject } } } watchers { device { id } through } } }",
            lot,
        )["data"]["lot"]
            .clone()
    };
    let suspended = |logger: &str| -> bool {
        let v = w.gql(
            &w.investigator,
            "query($lot: String!) { device(id: $lot) { suspended } }",
            logger,
        );
        v["data"]["device"]["suspended"].is_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !loggers.iter().all(|l| suspended(l.2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the loggers' batches were never judged"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Each logger's excursion quarantines its own organisation's lot ...
    for lot in [CONTAMINATED, rivals_lot] {
        let s = status(lot);
        assert_eq!(s["status"]["quarantined"], json!(true), "{lot}: {s}");
        assert_ne!(s["breaches"]["edges"], json!([]), "{lot}: {s}");
    }
    // ... and nothing of the packer's lot that the rival's logger claimed
    // to watch, directly or on its pallet; nor is it shown as its watcher.
    let clean = status(CLEAN);
    assert_eq!(clean["status"]["quarantined"], json!(false), "{clean}");
    assert_eq!(clean["breaches"]["edges"], json!([]), "{clean}");
    assert_eq!(clean["watchers"], json!([]), "{clean}");
}
