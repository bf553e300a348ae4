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
