//! Traces over HTTP on the demo world: the forward trace of the contaminated
//! lot is the truth's affected set, with proofs that verify on request; the
//! routes are for investigators; bad parameters are named.

mod support;

use api::params::percent_encode as encode;
use support::{get, get_auth, post, verify_proof_answer, Server};

#[test]
fn investigators_trace_the_contaminated_lot_over_http_with_proofs() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = |role: &str| support::token(dir.path(), support::ORG, role);
    let (investigator, partner) = (token("investigator"), token("partner"));
    let server = Server::start(dir.path());
    let start = chrono_day("2026-11-01");
    let world = fixtures::generate(7, fixtures::Scale::Tiny, start);
    let lot = &world.truth.contaminated_lot;

    let path = format!(
        "/v1/trace?lot={}&direction=forward&proofs=true",
        encode(lot)
    );
    let r = get_auth(&server.base, &path, &investigator);
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    let mut found: Vec<String> = t["lots"].as_array().unwrap()[1..]
        .iter()
        .map(|l| l["lot"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    let mut expected = world.truth.affected_lots.clone();
    expected.sort();
    assert_eq!(found, expected);
    // Every entry the trace rests on comes with a proof that checks.
    let proofs = t["proofs"].as_array().unwrap();
    assert!(!proofs.is_empty());
    for p in proofs {
        verify_proof_answer(p);
    }

    // Backward from a salad lot: its inputs.
    let salad = world.lots.iter().find(|l| !l.inputs.is_empty()).unwrap();
    let r = get_auth(
        &server.base,
        &format!("/v1/trace?lot={}&direction=backward", encode(&salad.id)),
        &investigator,
    );
    let mut back: Vec<String> = r.json()["lots"].as_array().unwrap()[1..]
        .iter()
        .map(|l| l["lot"].as_str().unwrap().to_string())
        .collect();
    back.sort();
    let mut inputs = salad.inputs.clone();
    inputs.sort();
    assert_eq!(back, inputs);

    // Co-exposure during the whole world: the lettuce rode with carrots.
    let r = get_auth(
        &server.base,
        &format!(
            "/v1/co-exposure?lot={}&from=2026-10-01T00:00:00Z&to=2026-12-31T00:00:00Z",
            encode(lot)
        ),
        &investigator,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["exposures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["how"] == "association"),
        "{}",
        r.body
    );

    // EPCIS queries over the demo world: every event once, paged by 7.
    let mut seen = std::collections::BTreeSet::new();
    let mut next = Some("/events?perPage=7".to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = get_auth(&server.base, &path, &investigator);
        assert_eq!(r.status, 200, "{}", r.body);
        for e in r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
        {
            assert!(
                seen.insert(e["eventID"].as_str().unwrap().to_string()),
                "an event twice"
            );
        }
        next = r.header("link").map(|l| {
            l.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_string()
        });
        pages += 1;
    }
    assert_eq!(seen.len(), world.events.len(), "every event of the world");
    assert!(pages > world.events.len() / 7);
    let r = get_auth(
        &server.base,
        &format!("/epcs/{}/events", encode(lot)),
        &investigator,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let named = world
        .events
        .iter()
        .filter(|e| e.event.to_string().contains(lot.as_str()))
        .count();
    assert_eq!(
        r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
            .len(),
        named
    );

    // Search: by a lot code, by a misspelt name, by a whole identifier.
    let code = lot.rsplit('.').next().unwrap();
    let hits = get_auth(&server.base, &format!("/v1/search?q={code}"), &investigator).json();
    assert_eq!(hits["hits"][0]["id"], lot.as_str(), "{hits}");
    let farm = &world.orgs[world.lots.iter().find(|l| &l.id == lot).unwrap().origin];
    let typo = {
        // Swap two inner letters of the farm's first word: one typo.
        let w: Vec<char> = farm.name.split(' ').next().unwrap().chars().collect();
        let mut t = w.clone();
        t.swap(1, 2);
        t.into_iter().collect::<String>()
    };
    let hits = get_auth(
        &server.base,
        &format!("/v1/search?q={}", encode(&typo)),
        &investigator,
    )
    .json();
    assert!(
        hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == farm.id.as_str()),
        "{typo:?} finds {}: {hits}",
        farm.name
    );
    let hits = get_auth(
        &server.base,
        &format!("/v1/search?q={}", encode(&farm.id)),
        &investigator,
    )
    .json();
    assert_eq!(hits["hits"][0]["id"], farm.id.as_str());
    get_auth(&server.base, "/v1/search?q=x", &partner).assert_problem(403, "forbidden");
    get_auth(&server.base, "/v1/search?q=x&limit=0", &investigator)
        .assert_problem(400, "invalid_parameter");

    // FSMA 204: the chain's CTEs as CSV.
    let r = get_auth(
        &server.base,
        &format!("/v1/fsma204?lot={}", encode(lot)),
        &investigator,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("text/csv"), "{}", r.content_type);
    assert_eq!(
        r.body.lines().next().unwrap(),
        analytics::lineage::fsma204::COLUMNS.join(","),
        "the header names every KDE column"
    );
    // The demo's master data describes products and sites: names, not
    // GTINs; sites with their address and phone.
    assert!(!r.body.contains(",GTIN "), "products are named: {}", r.body);
    let farm = &world.orgs[world.lots.iter().find(|l| &l.id == lot).unwrap().origin];
    assert!(
        r.body.contains(farm.address) && r.body.contains(farm.phone),
        "{} is described with its place: {}",
        farm.name,
        r.body
    );
    for l in &world.truth.affected_lots {
        assert!(r.body.contains(l.as_str()), "{l} is in the spreadsheet");
    }
    for cte in ["Harvesting", "Shipping", "Receiving", "Transformation"] {
        assert!(r.body.contains(cte), "a {cte} row");
    }
    let gtin = analytics::watches::gtin_of(lot).unwrap();
    let r = get_auth(
        &server.base,
        &format!("/v1/fsma204?gtin={gtin}&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z"),
        &investigator,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.lines().count() > 1);
    let r = get_auth(&server.base, "/v1/fsma204?gtin=123", &investigator);
    r.assert_problem(400, "invalid_parameter");
    get_auth(&server.base, "/v1/fsma204", &investigator).assert_problem(400, "invalid_parameter");

    // Who may ask, and what is refused.
    get(&server.base, &path).assert_problem(401, "unauthenticated");
    get_auth(&server.base, &path, &partner).assert_problem(403, "forbidden");
    for (q, name) in [
        ("/v1/trace?lot=x&direction=sideways", "direction"),
        ("/v1/trace?direction=forward", "lot"),
        ("/v1/trace?lot=x&proofs=maybe", "proofs"),
        ("/v1/co-exposure?lot=x&from=yesterday", "from"),
        ("/v1/co-exposure?lot=x&from=10&to=5", "from"),
    ] {
        let r = get_auth(&server.base, q, &investigator);
        r.assert_problem(400, "invalid_parameter");
        assert_eq!(r.json()["parameter"], name, "{q}");
    }
    get_auth(&server.base, "/v1/trace?lot=urn%3Anothing", &investigator)
        .assert_problem(404, "not_found");

    // The demo opened a recall of the contaminated lot; open another, with
    // the lots that rode with it, then widen and close it.
    let send = |path: &str, token: &str, body: serde_json::Value| {
        post(
            &server.base,
            path,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
            None,
        )
    };
    let r = send(
        "/v1/recalls",
        &investigator,
        serde_json::json!({"lot": lot, "reason": "test recall", "co_exposure": {"from_ms": 0, "to_ms": i64::MAX}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let recall = r.json()["recall"]["recall"].clone();
    let id = recall["id"].as_str().unwrap().to_string();
    let affected: Vec<String> = recall["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(affected[0], *lot);
    for l in &world.truth.affected_lots {
        assert!(affected.contains(l), "{l} is recalled");
    }
    let carrots = world.lots.iter().find(|l| l.id.contains(".010002."));
    assert!(
        carrots.is_some_and(|c| affected.contains(&c.id)),
        "the carrots that shared the lettuce's reefer are recalled: {affected:?}"
    );
    // The recall is an entry on the ledger, like everything else: its id is
    // public, its content the investigators' (and the lots' holders').
    get(&server.base, &format!("/v1/entries/{id}")).assert_problem(401, "unauthenticated");
    let e = get_auth(&server.base, &format!("/v1/entries/{id}"), &investigator).json();
    assert_eq!(e["kind"], "recall");
    assert_eq!(e["entry"]["change"], "opened");

    let extra = world
        .lots
        .iter()
        .find(|l| !affected.contains(&l.id))
        .unwrap();
    let r = send(
        &format!("/v1/recalls/{id}/widen"),
        &investigator,
        serde_json::json!({"lot": extra.id, "reason": "same line"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The widened lot's consumer page shows the recall with the change that
    // put this lot in it: its reason, and the proof of that entry.
    let widening = r.json()["entries"][0]["id"].as_str().unwrap().to_string();
    let link = gs1::canonical_id(&extra.id).unwrap();
    let page = support::get_with(
        &server.base,
        link.strip_prefix("https://id.gs1.org").unwrap(),
        &[("Accept", "text/html")],
    );
    let banner = page
        .body
        .split("role=\"alert\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no recall banner: {}", page.body));
    let banner = &banner[..banner.find("</section>").unwrap()];
    assert!(banner.contains("same line"), "{banner}");
    assert!(!banner.contains("test recall"), "{banner}");
    assert!(banner.contains(&widening), "the widening's proof: {banner}");
    let r = send(
        &format!("/v1/recalls/{id}/close"),
        &investigator,
        serde_json::json!({"reason": "destroyed"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let shown = get_auth(&server.base, &format!("/v1/recalls/{id}"), &investigator).json();
    assert_eq!(shown["open"], false);
    assert!(shown["affected"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == extra.id.as_str()));
    let changes: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["opened", "widened", "closed"]);
    let listed = get_auth(
        &server.base,
        &format!("/v1/recalls?lot={}", encode(&extra.id)),
        &investigator,
    )
    .json();
    assert_eq!(listed["recalls"].as_array().unwrap().len(), 1);

    // Refusals.
    send(
        &format!("/v1/recalls/{id}/close"),
        &investigator,
        serde_json::json!({"reason": "again"}),
    )
    .assert_problem(409, "recall_closed");
    send(
        "/v1/recalls",
        &partner,
        serde_json::json!({"lot": lot, "reason": "x"}),
    )
    .assert_problem(403, "forbidden");
    send(
        "/v1/recalls",
        &investigator,
        serde_json::json!({"lot": "urn:nothing", "reason": "x"}),
    )
    .assert_problem(404, "not_found");
    send(
        "/v1/recalls",
        &investigator,
        serde_json::json!({"lot": lot, "reason": " "}),
    )
    .assert_problem(400, "invalid_body");
    send(
        "/v1/recalls",
        &investigator,
        serde_json::json!({"lot": lot}),
    )
    .assert_problem(400, "invalid_body");
    send(
        &format!("/v1/recalls/{}/close", "0".repeat(64)),
        &investigator,
        serde_json::json!({"reason": "x"}),
    )
    .assert_problem(404, "not_found");
}

/// A recall change whose answer a crash lost (committed, its answer never
/// recorded) is answered, on a retry under the same Idempotency-Key, with the
/// change it made: no second recall is opened, a widening is not made twice,
/// and a closing is not refused as already closed.
#[test]
fn a_keyed_retry_of_a_recall_change_whose_answer_a_crash_lost_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let investigator = support::token(dir.path(), support::ORG, "investigator");
    let world = fixtures::generate(7, fixtures::Scale::Tiny, chrono_day("2026-11-01"));
    let lot = world.truth.contaminated_lot.clone();
    let send = |base: &str, path: &str, body: &serde_json::Value, key: &str| {
        post(
            base,
            path,
            Some(&investigator),
            "application/json",
            body.to_string().as_bytes(),
            Some(key),
        )
    };
    // Sends under `key`, drops that answer from the journal (what a crash
    // right after the commit leaves: the key's intent, no answer), and
    // retries on the restarted node, which it returns.
    let lost_and_retried = |path: &str, body: serde_json::Value, key: &str| {
        let server = Server::start(dir.path());
        let first = send(&server.base, path, &body, key);
        assert_eq!(first.status, 201, "{}", first.body);
        server.stop();
        support::lose_answer(dir.path(), key);
        let server = Server::start(dir.path());
        let retry = send(&server.base, path, &body, key);
        assert_eq!(retry.status, 201, "{path}: {}", retry.body);
        assert_eq!(retry.json(), first.json(), "{path}");
        (first, server)
    };
    let history = |server: &Server, id: &str| -> Vec<String> {
        get_auth(&server.base, &format!("/v1/recalls/{id}"), &investigator).json()["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["change"].as_str().unwrap().to_string())
            .collect()
    };

    let open = serde_json::json!({"lot": lot, "reason": "retried recall"});
    let (first, server) = lost_and_retried("/v1/recalls", open.clone(), "open-1");
    let recall = first.json()["recall"]["recall"].clone();
    let id = recall["id"].as_str().unwrap().to_string();
    let ours = get_auth(
        &server.base,
        &format!("/v1/recalls?lot={}", encode(&lot)),
        &investigator,
    )
    .json()["recalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "retried recall")
        .count();
    assert_eq!(ours, 1, "one recall was opened");
    server.stop();

    let affected: Vec<&str> = recall["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let extra = world
        .lots
        .iter()
        .find(|l| !affected.contains(&l.id.as_str()))
        .unwrap();
    let widen = serde_json::json!({"lot": extra.id, "reason": "same line"});
    let path = format!("/v1/recalls/{id}/widen");
    let (_, server) = lost_and_retried(&path, widen, "widen-1");
    assert_eq!(history(&server, &id), ["opened", "widened"]);
    server.stop();

    let close = serde_json::json!({"reason": "destroyed"});
    let path = format!("/v1/recalls/{id}/close");
    let (_, server) = lost_and_retried(&path, close.clone(), "close-1");
    assert_eq!(history(&server, &id), ["opened", "widened", "closed"]);
    // A new key is a new request: the recall is closed.
    send(&server.base, &path, &close, "close-2").assert_problem(409, "recall_closed");
    server.stop();
}

fn chrono_day(day: &str) -> i64 {
    let secs = humantime::parse_rfc3339(&format!("{day}T00:00:00Z"))
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    secs as i64 * 1000
}
