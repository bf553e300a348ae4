//! Automated policies end to end, over real HTTP against `coldtrail serve`:
//! a device that sends impossible data is suspended by the rules and its
//! batches are refused with `device_suspended` until its owner reinstates
//! it; a lot whose logger breached a quarantining rule is quarantined until
//! an investigator releases it.

mod support;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ingest::wire::{encode_binary, BINARY_BATCH};
use ingest::DeviceClient;
use ledger::reading::Reading;
use serde_json::json;
use support::{get_auth, post, post_json, provision, Server, ORG};

fn send(base: &str, token: &str, dev: &mut DeviceClient, readings: Vec<Reading>) -> support::Reply {
    post(
        base,
        "/v1/batches",
        Some(token),
        BINARY_BATCH,
        &encode_binary(&[dev.sign(readings)]),
        None,
    )
}

fn minutes(from_ms: i64, n: usize, step_min: i64, temp_c: f64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            Reading::new(
                from_ms + i as i64 * step_min * 60_000,
                (temp_c * 100.0) as i32,
            )
        })
        .collect()
}

/// 2026-11-01T00:00:00Z: well in the past, as a logger's backlog is.
const T0: i64 = 1_793_491_200_000;

#[test]
fn a_device_sending_impossible_data_is_suspended_until_its_owner_reinstates_it() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let key = SigningKey::from_bytes(&[7; 32]);
    support::register_device(base, &token, "logger-broken", &key);
    let mut dev = DeviceClient::new("logger-broken", key.clone());
    let mut rs = minutes(T0, 10, 1, 4.0);
    rs[5].temp_centi_c = -15_000; // −150 °C: a broken probe
    let r = send(base, &token, &mut dev, rs);
    assert_eq!(r.status, 201, "{}", r.body);

    // The rules record the suspension; ingest follows it off the ledger.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut t = T0 + 10 * 60_000;
    loop {
        let r = send(base, &token, &mut dev, minutes(t, 5, 1, 4.0));
        if r.status == 403 {
            r.assert_problem(403, "device_suspended");
            assert!(
                r.body.contains("-150.00 °C"),
                "the refusal says why: {}",
                r.body
            );
            break;
        }
        assert_eq!(r.status, 201, "{}", r.body);
        t += 5 * 60_000;
        assert!(Instant::now() < deadline, "the device was never suspended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = get_auth(base, "/v1/devices/logger-broken", &token).json();
    assert!(
        d["suspended"]
            .as_str()
            .unwrap()
            .contains("outside any cold-chain sensor's range"),
        "{d}"
    );

    // Only its owner reinstates it.
    post_json(
        base,
        "/v1/devices/logger-broken/reinstate",
        &other,
        &json!({"reason": "not mine"}),
    )
    .assert_problem(403, "wrong_organisation");
    let r = post_json(
        base,
        "/v1/devices/logger-broken/reinstate",
        &token,
        &json!({"reason": "probe replaced"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    post_json(
        base,
        "/v1/devices/logger-broken/reinstate",
        &token,
        &json!({"reason": "again"}),
    )
    .assert_problem(409, "not_suspended");
    // The refused batch was never written: the device resends it.
    let mut dev = DeviceClient::new("logger-broken", key).starting_at(
        get_auth(base, "/v1/devices/logger-broken", &token).json()["next_seq"]
            .as_u64()
            .unwrap(),
    );
    let r = send(base, &token, &mut dev, minutes(t, 5, 1, 4.0));
    assert_eq!(r.status, 201, "{}", r.body);
    server.stop();
}

#[test]
fn a_breach_quarantines_the_lot_until_an_investigator_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (token, _) = provision(dir.path());
    let investigator = String::from_utf8(
        support::coldtrail(&[
            "token",
            "issue",
            "--data-dir",
            d,
            "--org",
            ORG,
            "--role",
            "investigator",
        ])
        .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    // Vaccines of this GTIN are judged by the WHO 2–8 °C profile.
    let gtin = "00614141100064";
    let lot = "urn:epc:class:lgtin:0614141.010006.VAX1";
    let mut rules = analytics::RulesConfig::default();
    rules.products.insert(gtin.into(), "vaccines_2_8".into());
    std::fs::write(
        dir.path().join("rules.json"),
        serde_json::to_vec_pretty(&rules).unwrap(),
    )
    .unwrap();

    let server = Server::start(dir.path());
    let base = &server.base;
    let key = SigningKey::from_bytes(&[9; 32]);
    support::register_device(base, &token, "urn:epc:id:giai:0614141.F1", &key);
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-11-01T00:00:00Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent", "eventID": "urn:uuid:6f1c2b8e-0000-4000-8000-000000000000",
            "eventTime": "2026-10-31T23:00:00.000Z", "eventTimeZoneOffset": "+00:00",
            "action": "ADD", "bizStep": "commissioning",
            "quantityList": [{"epcClass": lot, "quantity": 100, "uom": "H87"}]
        }, {
            "type": "AssociationEvent", "eventID": "urn:uuid:6f1c2b8e-0000-4000-8000-000000000001",
            "eventTime": "2026-11-01T00:00:00.000Z", "eventTimeZoneOffset": "+00:00",
            "action": "ADD", "bizStep": "installing", "parentID": "urn:epc:id:giai:0614141.F1",
            "childQuantityList": [{"epcClass": lot, "quantity": 100, "uom": "H87"}]
        }]}
    });
    let r = post(
        base,
        "/capture",
        Some(&token),
        "application/ld+json",
        doc.to_string().as_bytes(),
        None,
    );
    assert!(r.status == 202 || r.status == 201, "{}", r.body);
    // Two hours at 5 °C, eleven above 8 °C, back at 5 °C.
    let mut dev = DeviceClient::new("urn:epc:id:giai:0614141.F1", key);
    let mut rs = minutes(T0 + 60_000, 24, 5, 5.0);
    rs.extend(minutes(T0 + 2 * 3_600_000, 132, 5, 9.5));
    rs.extend(minutes(T0 + 13 * 3_600_000, 12, 5, 5.0));
    let r = send(base, &token, &mut dev, rs);
    assert_eq!(r.status, 201, "{}", r.body);

    let release = |base: &str, who: &str, key: &str| {
        post(
            base,
            "/v1/quarantine/release",
            Some(who),
            "application/json",
            json!({"lot": lot, "reason": "stability data reviewed"})
                .to_string()
                .as_bytes(),
            Some(key),
        )
    };
    release(base, &token, "partner").assert_problem(403, "forbidden");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (first, key) = (1..)
        .find_map(|n| {
            let key = format!("release-{n}");
            let r = release(base, &investigator, &key);
            if r.status == 201 {
                return Some((r, key));
            }
            r.assert_problem(409, "not_quarantined");
            assert!(Instant::now() < deadline, "the lot was never quarantined");
            std::thread::sleep(Duration::from_millis(50));
            None
        })
        .unwrap();
    release(base, &investigator, "release-new").assert_problem(409, "not_quarantined");
    server.stop();

    // A crash right after the release committed leaves its key's intent in
    // the journal and no answer. The retry under that key is answered with
    // the release it made, not refused as no longer quarantined, and writes
    // no second release; a new key is a new request and is refused.
    support::lose_answer(dir.path(), &key);
    let server = Server::start(dir.path());
    let retry = release(&server.base, &investigator, &key);
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.json(), first.json());
    release(&server.base, &investigator, "release-newer").assert_problem(409, "not_quarantined");
    server.stop();

    let out = support::coldtrail(&["breaches", "--data-dir", d, "--lot", lot, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"breach") && kinds.contains(&"quarantine"),
        "{v}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "release").count(), 1, "{v}");
    assert_eq!(v["quarantined"], false, "{v}");
    let breach = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "breach")
        .unwrap();
    assert!(
        breach["explanation"]
            .as_str()
            .unwrap()
            .starts_with("above 8 °C for 11 h"),
        "{breach}"
    );
}
