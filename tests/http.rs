//! The write API end to end: a real server on loopback, real HTTP.

mod support;

use ed25519_dalek::SigningKey;
use ingest::wire::{encode_binary, encode_json, BINARY_BATCH};
use ingest::DeviceClient;
use ledger::reading::Reading;
use serde_json::json;
use support::{
    get, post, post_json, provision, register_device as register, shard_sizes as sizes,
    verify_written, Server,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn readings(n: usize, start_ms: i64) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            humidity_permille: Some(850),
            ..Reading::new(start_ms + i as i64 * 60_000, 400 + (i % 5) as i32)
        })
        .collect()
}

#[test]
fn batches_in_json_and_binary_are_acknowledged_with_proofs_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let key = SigningKey::from_bytes(&[21; 32]);
    register(&server.base, &token, "logger-a", &key);
    let mut dev = DeviceClient::new("logger-a", key);
    let t0 = now_ms() - 4 * 3_600_000;
    let json_body = encode_json(&[
        dev.sign(readings(60, t0)),
        dev.sign(readings(60, t0 + 3_600_000)),
    ]);
    let r = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &json_body,
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let j = r.json();
    assert_eq!(j["entries"].as_array().unwrap().len(), 2);
    let bin = encode_binary(&[dev.sign(readings(30, t0 + 7_200_000))]);
    let r2 = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        BINARY_BATCH,
        &bin,
        None,
    );
    assert_eq!(r2.status, 201, "{}", r2.body);
    for w in j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2.json()["entries"].as_array().unwrap())
    {
        assert_eq!(w["subject"], "logger-a");
        verify_written(&server.base, w);
    }
    // A consistency proof between two heads of the same shard.
    let shard = j["entries"][0]["shard"].as_u64().unwrap();
    let c = get(
        &server.base,
        &format!("/v1/shards/{shard}/consistency?first=1&second=2"),
    );
    assert_eq!(c.status, 200, "{}", c.body);
    get(
        &server.base,
        &format!("/v1/shards/{shard}/consistency?first=2&second=1"),
    )
    .assert_problem(400, "invalid_parameter");
}

#[test]
fn a_device_signs_nothing_older_than_its_activation() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let send = |body: &[u8]| {
        post(
            base,
            "/v1/batches",
            Some(&token),
            "application/json",
            body,
            None,
        )
    };
    let did = |k: &SigningKey| ledger::keys::did_key(&k.verifying_key());

    // Registered without an activation: its key signs readings from the
    // registration on, not the hour before it.
    let key = SigningKey::from_bytes(&[41; 32]);
    let r = post_json(
        base,
        "/v1/devices",
        &token,
        &json!({"device": "logger-new", "public_key": did(&key)}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let registered_at = now_ms();
    let before = sizes(base);
    let mut dev = DeviceClient::new("logger-new", key.clone());
    let old = send(&encode_json(&[
        dev.sign(readings(5, registered_at - 3_600_000))
    ]));
    old.assert_problem(422, "reading_before_activation");
    assert!(
        old.body.contains("active_from_ms"),
        "says what to do: {}",
        old.body
    );
    // One old reading among new ones is refused too, wherever it sits.
    let mut mixed = readings(3, registered_at + 1_000);
    mixed[2].time_ms = registered_at - 600_000;
    let mut dev = DeviceClient::new("logger-new", key.clone());
    send(&encode_json(&[dev.sign(mixed)])).assert_problem(422, "reading_before_activation");
    assert_eq!(sizes(base), before, "a refusal writes nothing");
    let mut dev = DeviceClient::new("logger-new", key);
    let fresh = send(&encode_json(
        &[dev.sign(readings(2, registered_at + 1_000))],
    ));
    assert_eq!(fresh.status, 201, "{}", fresh.body);

    // A declared activation admits the backlog from then on, and is on the
    // ledger: the registration entry says it.
    let key = SigningKey::from_bytes(&[42; 32]);
    let deployed = now_ms() - 2 * 86_400_000;
    let r = post_json(
        base,
        "/v1/devices",
        &token,
        &json!({"device": "logger-backlog", "public_key": did(&key), "active_from_ms": deployed}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let entry = &r.json()["entries"][0];
    let view = support::get_auth(
        base,
        &format!("/v1/shards/{}/entries/{}", entry["shard"], entry["index"]),
        &token,
    );
    assert_eq!(view.status, 200, "{}", view.body);
    assert_eq!(
        view.json()["entry"]["active_from_ms"],
        deployed,
        "{}",
        view.body
    );
    let mut dev = DeviceClient::new("logger-backlog", key.clone());
    send(&encode_json(&[dev.sign(readings(3, deployed - 60_000))]))
        .assert_problem(422, "reading_before_activation");
    let mut dev = DeviceClient::new("logger-backlog", key);
    let backlog = send(&encode_json(&[dev.sign(readings(60, deployed))]));
    assert_eq!(backlog.status, 201, "{}", backlog.body);
}

#[test]
fn a_partner_lists_its_device_readings_and_their_count_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other_token) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let key = SigningKey::from_bytes(&[43; 32]);
    register(base, &token, "logger-listed", &key);
    let mut dev = DeviceClient::new("logger-listed", key);
    let t0 = now_ms() - 86_400_000;
    // 250 readings, a minute apart, in three batches of two requests.
    let first = encode_json(&[
        dev.sign(readings(120, t0)),
        dev.sign(readings(80, t0 + 120 * 60_000)),
    ]);
    let second = encode_json(&[dev.sign(readings(50, t0 + 200 * 60_000))]);
    for body in [first, second] {
        let r = post(
            base,
            "/v1/batches",
            Some(&token),
            "application/json",
            &body,
            None,
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let list = |query: &str, tok: &str| {
        support::get_auth(
            base,
            &format!("/v1/devices/logger-listed/readings{query}"),
            tok,
        )
    };
    let mut seqs = Vec::new();
    let mut after = String::new();
    loop {
        let r = list(&format!("?limit=100{after}"), &token);
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        assert_eq!(page["count"], 250, "the count is over every page");
        for l in page["readings"].as_array().unwrap() {
            seqs.push(l["seq"].as_u64().unwrap());
            assert_eq!(
                l["time_ms"].as_i64().unwrap(),
                t0 + l["seq"].as_i64().unwrap() * 60_000,
                "each reading is the one sent with its sequence number"
            );
            assert!(l["entry"]["id"].as_str().unwrap().len() == 64);
        }
        match page["next_after"].as_u64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(
        seqs,
        (0..250).collect::<Vec<u64>>(),
        "every reading once, in order"
    );
    // A time range counts and lists only its readings.
    let r = list(
        &format!("?from_ms={}&to_ms={}", t0 + 100 * 60_000, t0 + 130 * 60_000),
        &token,
    );
    let page = r.json();
    assert_eq!(page["count"], 30, "{}", r.body);
    assert_eq!(page["readings"][0]["seq"], 100);
    assert!(page["next_after"].is_null());
    // Refusals: another organisation's device, a stranger, bad parameters,
    // an unknown device.
    list("", &other_token).assert_problem(403, "forbidden");
    get(base, "/v1/devices/logger-listed/readings").assert_problem(401, "unauthenticated");
    list("?limit=0", &token).assert_problem(400, "invalid_parameter");
    list("?limit=1001", &token).assert_problem(400, "invalid_parameter");
    list("?from_ms=10&to_ms=5", &token).assert_problem(400, "invalid_parameter");
    list("?after=x", &token).assert_problem(400, "invalid_parameter");
    support::get_auth(base, "/v1/devices/nobody/readings", &token).assert_problem(404, "not_found");
}

#[test]
fn every_refusal_has_a_stable_code_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (token, other_token) = provision(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let key = SigningKey::from_bytes(&[22; 32]);
    support::register_device(base, &token, "logger-b", &key);
    register(
        base,
        &other_token,
        "logger-other",
        &SigningKey::from_bytes(&[23; 32]),
    );
    let mut dev = DeviceClient::new("logger-b", key.clone());
    let t0 = now_ms() - 3_600_000;
    let good = dev.sign(readings(10, t0));
    let ok = post(
        base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &encode_json(std::slice::from_ref(&good)),
        None,
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let before = sizes(base);
    let send =
        |tok: Option<&str>, ct: &str, body: &[u8]| post(base, "/v1/batches", tok, ct, body, None);

    send(None, "application/json", b"{}").assert_problem(401, "unauthenticated");
    send(Some("ct_00"), "application/json", b"{}").assert_problem(401, "bad_token");
    send(Some(&token), "text/plain", b"hi").assert_problem(415, "unsupported_media_type");
    // A compressed body is refused as such, not read as garbled JSON (and,
    // as every refusal here, records nothing: see the sizes at the end).
    let next = encode_json(&[DeviceClient::new("logger-b", key.clone())
        .starting_at(10)
        .sign(readings(10, t0 + 600_000))]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &next).unwrap();
    let gz = gz.finish().unwrap();
    for coding in ["gzip", "GZIP", "identity, gzip", "br"] {
        let r = support::try_post_with(
            base,
            "/v1/batches",
            Some(&token),
            "application/json",
            &gz,
            &[("Content-Encoding", coding)],
        )
        .expect("an answer");
        r.assert_problem(415, "unsupported_content_encoding");
        assert!(r.body.contains("uncompressed"), "{}", r.body);
        assert_eq!(r.header("accept-encoding"), Some("identity"), "{coding}");
    }
    send(Some(&token), "application/json", b"{\"batches\": [")
        .assert_problem(400, "malformed_json");
    send(
        Some(&token),
        "application/json",
        br#"{"batches": [{"device": 1}]}"#,
    )
    .assert_problem(400, "invalid_body");
    send(Some(&token), BINARY_BATCH, &[0xff, 0xff]).assert_problem(400, "invalid_body");
    // Replayed: the batch already accepted, sent again.
    send(
        Some(&token),
        "application/json",
        &encode_json(std::slice::from_ref(&good)),
    )
    .assert_problem(409, "replayed_sequence");
    // Rewound: a new batch that starts before the device's next sequence.
    let mut rewound = DeviceClient::new("logger-b", key.clone()).starting_at(5);
    send(
        Some(&token),
        "application/json",
        &encode_json(&[rewound.sign(readings(3, t0))]),
    )
    .assert_problem(409, "replayed_sequence");
    // Skipped ahead: a batch that starts after the device's next sequence.
    let mut ahead = DeviceClient::new("logger-b", key.clone()).starting_at(15);
    let r = send(
        Some(&token),
        "application/json",
        &encode_json(&[ahead.sign(readings(3, t0 + 600_000))]),
    );
    r.assert_problem(409, "sequence_gap");
    assert!(r.body.contains("10 is next"), "{}", r.body);
    // Within one request too: a device's batches follow on without a gap.
    let mut gapped = DeviceClient::new("logger-b", key.clone()).starting_at(10);
    let first = gapped.sign(readings(3, t0 + 600_000));
    let mut skipped = DeviceClient::new("logger-b", key.clone()).starting_at(14);
    let after_gap = skipped.sign(readings(3, t0 + 900_000));
    send(
        Some(&token),
        "application/json",
        &encode_json(&[first, after_gap]),
    )
    .assert_problem(409, "sequence_gap");
    // Unknown device; a device of another organisation.
    let mut ghost = DeviceClient::new("logger-ghost", key.clone());
    send(
        Some(&token),
        "application/json",
        &encode_json(&[ghost.sign(readings(3, t0))]),
    )
    .assert_problem(404, "unknown_device");
    let mut foreign = DeviceClient::new("logger-other", SigningKey::from_bytes(&[23; 32]));
    send(
        Some(&token),
        "application/json",
        &encode_json(&[foreign.sign(readings(3, t0))]),
    )
    .assert_problem(403, "wrong_organisation");
    // Bad signature: signed by another key; or a reading changed after signing.
    let mut forger =
        DeviceClient::new("logger-b", SigningKey::from_bytes(&[99; 32])).starting_at(10);
    send(
        Some(&token),
        "application/json",
        &encode_json(&[forger.sign(readings(3, t0))]),
    )
    .assert_problem(422, "bad_signature");
    let mut next = DeviceClient::new("logger-b", key.clone()).starting_at(10);
    let mut altered = next.sign(readings(3, t0 + 600_000));
    altered.batch.readings[1].temp_centi_c += 1000;
    send(Some(&token), BINARY_BATCH, &encode_binary(&[altered]))
        .assert_problem(422, "bad_signature");
    // One bad batch among good ones refuses the whole request.
    let mut mixed = DeviceClient::new("logger-b", key.clone()).starting_at(10);
    let g1 = mixed.sign(readings(3, t0 + 600_000));
    let mut g2 = mixed.sign(readings(3, t0 + 900_000));
    g2.signature[0] ^= 1;
    send(Some(&token), "application/json", &encode_json(&[g1, g2]))
        .assert_problem(422, "bad_signature");
    // The clock far in the future.
    let mut future = DeviceClient::new("logger-b", key.clone()).starting_at(10);
    send(
        Some(&token),
        "application/json",
        &encode_json(&[future.sign(readings(2, now_ms() + 86_400_000))]),
    )
    .assert_problem(422, "clock_in_future");
    // Registering a device twice; a key that is not a key.
    post_json(
        base,
        "/v1/devices",
        &token,
        &json!({"device": "logger-b", "public_key": hex::encode([1u8; 32])}),
    )
    .assert_problem(409, "device_exists");
    post_json(
        base,
        "/v1/devices",
        &token,
        &json!({"device": "logger-c", "public_key": "zzz"}),
    )
    .assert_problem(400, "invalid_body");
    // Unknown routes and shards.
    post(
        base,
        "/v1/nowhere",
        Some(&token),
        "application/json",
        b"{}",
        None,
    )
    .assert_problem(404, "no_such_route");
    get(base, "/v1/shards/7/head").assert_problem(404, "not_found");
    get(base, "/v1/shards/0/entries/999999/proof").assert_problem(404, "not_found");
    // Bad parameters are named, wherever they are.
    for (path, name) in [
        ("/v1/shards/x/head", "shard"),
        ("/v1/shards/0/entries/-1", "index"),
        ("/v1/shards/0/entries/0/proof?size=many", "size"),
        ("/v1/shards/0/entries/0/proof?sise=1", "sise"),
        ("/v1/shards/0/consistency?first=1", "second"),
        ("/v1/shards/0/consistency?first=0&second=1", "first"),
        ("/v1/shards/0/heads/1e3", "size"),
        ("/v1/entries/abc", "id"),
    ] {
        let r = get(base, path);
        r.assert_problem(400, "invalid_parameter");
        assert_eq!(r.json()["parameter"], name, "{path}: {}", r.body);
    }
    assert_eq!(sizes(base), before, "nothing refused was written");

    // A revoked device: its key signs nothing from the revocation on.
    let r = post_json(
        base,
        "/v1/devices/logger-b/revoke",
        &token,
        &json!({"reason": "stolen"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let after_revoke = sizes(base);
    let mut late = DeviceClient::new("logger-b", key).starting_at(10);
    send(
        Some(&token),
        "application/json",
        &encode_json(&[late.sign(readings(2, t0))]),
    )
    .assert_problem(422, "revoked_key");
    assert_eq!(sizes(base), after_revoke);
}

#[test]
fn rotated_keys_sign_from_the_rotation_on() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let (k1, k2) = (
        SigningKey::from_bytes(&[31; 32]),
        SigningKey::from_bytes(&[32; 32]),
    );
    register(&server.base, &token, "logger-r", &k1);
    let r = post_json(
        &server.base,
        "/v1/devices/logger-r/rotate",
        &token,
        &json!({"public_key": hex::encode(k2.verifying_key().as_bytes())}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let now = now_ms();
    let mut dev = DeviceClient::new("logger-r", k1);
    let old = dev.sign(readings(2, now));
    post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &encode_json(&[old]),
        None,
    )
    .assert_problem(422, "bad_signature");
    let mut dev = DeviceClient::new("logger-r", k2);
    let new = dev.sign(readings(2, now));
    let r = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &encode_json(&[new]),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn a_retry_with_the_same_idempotency_key_returns_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let key = SigningKey::from_bytes(&[41; 32]);
    register(&server.base, &token, "logger-i", &key);
    let mut dev = DeviceClient::new("logger-i", key);
    let body = encode_json(&[dev.sign(readings(5, now_ms() - 600_000))]);
    let first = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &body,
        Some("retry-1"),
    );
    assert_eq!(first.status, 201, "{}", first.body);
    let before = sizes(&server.base);
    let again = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &body,
        Some("retry-1"),
    );
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(sizes(&server.base), before, "the retry wrote nothing");
    let other = encode_json(&[dev.sign(readings(5, now_ms() - 300_000))]);
    post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &other,
        Some("retry-1"),
    )
    .assert_problem(409, "idempotency_key_reused");
    // The first answer outlives the server.
    server.kill9();
    let server = Server::start(dir.path());
    let after_restart = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &body,
        Some("retry-1"),
    );
    assert_eq!(
        (after_restart.status, &after_restart.body),
        (201, &first.body)
    );
}

#[test]
fn acknowledged_batches_survive_kill_9_and_keep_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let key = SigningKey::from_bytes(&[51; 32]);
    register(&server.base, &token, "logger-k", &key);
    let mut dev = DeviceClient::new("logger-k", key.clone());
    let t0 = now_ms() - 86_400_000;
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for h in 0..20 {
        let b = dev.sign(readings(60, t0 + h * 3_600_000));
        sent.push(b.clone());
        let r = post(
            &server.base,
            "/v1/batches",
            Some(&token),
            BINARY_BATCH,
            &encode_binary(&[b]),
            None,
        );
        assert_eq!(r.status, 201, "{}", r.body);
        acked.extend(r.json()["entries"].as_array().unwrap().clone());
    }
    server.kill9();
    let server = Server::start(dir.path());
    for w in &acked {
        verify_written(&server.base, w);
    }
    // The device's sequence survived too: a replay is still refused.
    post(
        &server.base,
        "/v1/batches",
        Some(&token),
        BINARY_BATCH,
        &encode_binary(&sent[19..]),
        None,
    )
    .assert_problem(409, "replayed_sequence");
    server.stop();
    let out = support::coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 2 logs"));
}

#[test]
fn checkpoints_written_while_serving_make_a_start_after_kill_9_read_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let log = dir.path().join("first.log");
    let every = [("COLDTRAIL_CHECKPOINT_INTERVAL_MS", "100")];
    let server = Server::start_logged_env(dir.path(), &log, &every);
    let key = SigningKey::from_bytes(&[52; 32]);
    register(&server.base, &token, "logger-cp", &key);
    let mut dev = DeviceClient::new("logger-cp", key.clone());
    let t0 = now_ms() - 86_400_000;
    let mut acked = Vec::new();
    let mut post_batch = |server: &Server, h: i64| {
        let b = dev.sign(readings(60, t0 + h * 3_600_000));
        let body = encode_binary(&[b]);
        let r = post(
            &server.base,
            "/v1/batches",
            Some(&token),
            BINARY_BATCH,
            &body,
            None,
        );
        assert_eq!(r.status, 201, "{}", r.body);
        (body, r.json()["entries"].as_array().unwrap().clone())
    };
    for h in 0..10 {
        acked.extend(post_batch(&server, h).1);
    }
    // Wait for a round of checkpoints that started after these batches.
    let written = support::log_lines(&log, "checkpoints written").len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while support::log_lines(&log, "checkpoints written").len() < written + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoints written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A tail after them, then a crash.
    let mut last = Vec::new();
    for h in 10..13 {
        let (body, entries) = post_batch(&server, h);
        acked.extend(entries);
        last = body;
    }
    server.kill9();

    let log = dir.path().join("second.log");
    let server = Server::start_logged_env(dir.path(), &log, &[]);
    let ingest = support::log_lines(&log, "identity state and eventID index rebuilt");
    assert_eq!(ingest.len(), 1);
    assert_eq!(ingest[0]["from_checkpoint"], true, "{}", ingest[0]);
    let (scanned, entries) = (
        ingest[0]["scanned"].as_u64().unwrap(),
        ingest[0]["entries"].as_u64().unwrap(),
    );
    assert!(
        scanned > 0 && scanned < entries,
        "only the tail is read: {}",
        ingest[0]
    );
    let shards = support::log_lines(&log, "sequencer state rebuilt");
    assert_eq!(shards.len(), 2);
    assert!(
        shards.iter().all(|s| s["from_checkpoint"] == true),
        "{shards:?}"
    );
    assert!(
        shards
            .iter()
            .map(|s| s["scanned"].as_u64().unwrap())
            .sum::<u64>()
            < shards
                .iter()
                .map(|s| s["entries"].as_u64().unwrap())
                .sum::<u64>()
    );
    // Everything acknowledged is there, and the device's sequence with it.
    for w in &acked {
        verify_written(&server.base, w);
    }
    post(
        &server.base,
        "/v1/batches",
        Some(&token),
        BINARY_BATCH,
        &last,
        None,
    )
    .assert_problem(409, "replayed_sequence");
    post_batch(&server, 13);
    server.stop();
    let out = support::coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", support::text(&out));
}

#[test]
fn bodies_over_the_limit_are_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start_with(dir.path(), &["--max-body-bytes", "4096"]);
    let key = SigningKey::from_bytes(&[61; 32]);
    register(&server.base, &token, "logger-big", &key);
    let mut dev = DeviceClient::new("logger-big", key);
    let body = encode_json(&[dev.sign(readings(200, now_ms() - 86_400_000))]);
    assert!(body.len() > 4096);
    post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &body,
        None,
    )
    .assert_problem(413, "payload_too_large");
}

#[test]
fn overload_is_refused_with_429_and_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start_with(dir.path(), &["--max-in-flight", "1"]);
    let base = server.base.clone();
    let t0 = now_ms() - 30 * 86_400_000;
    for t in 0..8u8 {
        register(
            &base,
            &token,
            &format!("logger-load-{t}"),
            &SigningKey::from_bytes(&[70 + t; 32]),
        );
    }
    let mut threads = Vec::new();
    for t in 0..8u8 {
        let key = SigningKey::from_bytes(&[70 + t; 32]);
        let device = format!("logger-load-{t}");
        let (base, token) = (base.clone(), token.clone());
        threads.push(std::thread::spawn(move || {
            let mut dev = DeviceClient::new(device, key);
            let (mut created, mut refused) = (0, 0);
            for b in 0..15i64 {
                let body = encode_binary(&[dev.sign(readings(1000, t0 + b * 60_000_000))]);
                // Retry what was refused: it was not written, so it is not a replay.
                loop {
                    let r = post(
                        &base,
                        "/v1/batches",
                        Some(&token),
                        BINARY_BATCH,
                        &body,
                        None,
                    );
                    if r.status == 429 {
                        r.assert_problem(429, "overloaded");
                        assert_eq!(r.header("retry-after"), Some("1"));
                        refused += 1;
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    assert_eq!(r.status, 201, "{}", r.body);
                    created += 1;
                    break;
                }
            }
            (created, refused)
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for t in threads {
        let (c, r) = t.join().unwrap();
        created += c;
        refused += r;
    }
    assert_eq!(created, 8 * 15);
    assert!(
        refused > 0,
        "eight writers against one slot must meet a 429"
    );
    server.stop();
    // Every acknowledged batch is in the ledger once: 8 devices x 15 batches.
    let out = support::coldtrail(&["inspect", "--data-dir", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let readings_entries: u64 = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("by kind"))
        .flat_map(|l| l.split(", ").map(str::to_string).collect::<Vec<_>>())
        .filter_map(|p| {
            p.trim()
                .strip_prefix("readings ")
                .map(|n| n.parse::<u64>().unwrap())
        })
        .sum();
    assert_eq!(readings_entries, 120, "{text}");
}

#[test]
fn the_openapi_document_describes_the_real_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let doc = get(&server.base, "/v1/openapi.json");
    assert_eq!(doc.status, 200);
    // Valid by the specification's own schema, checked in a second language.
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &doc.body).unwrap();
    support::python_check(
        "validate_openapi.py",
        &[file],
        "the OpenAPI document is not valid",
    );
    let doc = doc.json();
    let paths = doc["paths"].as_object().unwrap();
    for must in [
        "/v1/batches",
        "/v1/devices",
        "/v1/capture",
        "/events",
        "/v1/trace",
        "/.well-known/coldtrail/keys",
        "/v1/shards/{shard}/head",
        "/v1/shards/{shard}/entries/{index}/proof",
        "/v1/shards/{shard}/consistency",
    ] {
        assert!(paths.contains_key(must), "{must} is documented");
    }
    // Call every documented operation as a client generated from the
    // document would: path and query parameters where and as the document
    // names them, a sample value of the declared type.
    let sample = |p: &serde_json::Value| match p["schema"]["type"].as_str() {
        Some("integer") => "1".to_string(),
        _ => "none".to_string(),
    };
    // Every refusal's code is listed, with its status, in the Problem schema,
    // and every operation names that schema as its default answer.
    let problem = &doc["components"]["schemas"]["Problem"];
    let codes: Vec<&str> = problem["properties"]["code"]["enum"]
        .as_array()
        .expect("the codes, listed")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let listing = problem["properties"]["code"]["description"]
        .as_str()
        .unwrap();
    let mut probed = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(
                op["responses"]["default"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}: its refusals"
            );
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut url = path.clone();
            let mut query = Vec::new();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str().unwrap() {
                    "path" => {
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: path parameter {name} is not in the path"
                        );
                        url = url.replace(&format!("{{{name}}}"), &sample(p));
                    }
                    "query" => query.push(format!("{name}={}", sample(p))),
                    "header" => {}
                    other => panic!("{method} {path}: parameter {name} in {other}"),
                }
            }
            assert!(
                !url.contains('{'),
                "{method} {path}: a path segment has no declared parameter: {url}"
            );
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            let r = match method.as_str() {
                "get" => get(&server.base, &url),
                "post" => post(
                    &server.base,
                    &url,
                    Some(&token),
                    "application/json",
                    b"{}",
                    None,
                ),
                "delete" => support::ask(
                    "DELETE",
                    &server.base,
                    &url,
                    &[("Authorization", &format!("Bearer {token}"))],
                ),
                other => panic!("{path}: undocumented method {other}"),
            };
            // Whatever the answer, it must come from the documented route,
            // which must take every parameter the document gives it.
            let code = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|j| j["code"].as_str().map(str::to_string));
            assert_ne!(
                code.as_deref(),
                Some("no_such_route"),
                "{method} {url}: documented but not served: {}",
                r.body
            );
            assert!(
                !r.body.contains("takes no such parameter"),
                "{method} {url}: a documented parameter is refused: {}",
                r.body
            );
            assert!(r.status < 500, "{method} {url}: {}", r.body);
            if let Some(code) = code.filter(|_| r.status >= 400) {
                assert!(codes.contains(&code.as_str()), "{code} is not listed");
                let line = format!("- `{code}`: {}", r.status);
                assert!(listing.contains(&line), "{line} in {listing}");
            }
            probed += 1;
        }
    }
    assert!(probed >= 15, "probed {probed} documented operations");
    // And an undocumented path really falls back.
    get(&server.base, "/v1/undocumented").assert_problem(404, "no_such_route");
    for code in [
        "replayed_sequence",
        "bad_signature",
        "overloaded",
        "no_such_route",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
}

#[test]
fn racing_registrations_of_one_device_register_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let threads: Vec<_> = (0..8u8)
        .map(|i| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || {
                let key = SigningKey::from_bytes(&[90 + i; 32]);
                post_json(&base, "/v1/devices", &token, &json!({"device": "logger-race", "public_key": hex::encode(key.verifying_key().as_bytes())})).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
}

#[test]
fn random_and_mangled_bodies_get_4xx_and_the_server_survives() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let key = SigningKey::from_bytes(&[111; 32]);
    register(&server.base, &token, "logger-fuzz", &key);
    let mut dev = DeviceClient::new("logger-fuzz", key);
    let good_json = encode_json(&[dev.sign(readings(20, now_ms() - 86_400_000))]);
    let good_bin = encode_binary(&[dev.sign(readings(20, now_ms() - 86_400_000))]);
    let good_epcis = std::fs::read(
        std::env::var_os("COLDTRAIL_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
            .join("epcis/JSON/WithSensorData/SensorDataExample1.jsonld"),
    )
    .unwrap();
    let seed: u64 = rand::random();
    eprintln!("body fuzz seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..300 {
        let (path, ct, base): (&str, &str, &[u8]) = match i % 3 {
            0 => ("/v1/batches", "application/json", &good_json),
            1 => ("/v1/batches", BINARY_BATCH, &good_bin),
            _ => ("/capture", "application/ld+json", &good_epcis),
        };
        let mut body = base.to_vec();
        match rng.gen_range(0..4) {
            0 => body = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
            1 => body.truncate(rng.gen_range(0..body.len())),
            _ => {
                for _ in 0..rng.gen_range(1..8) {
                    let at = rng.gen_range(0..body.len());
                    body[at] = rng.gen();
                }
            }
        }
        let r = post(&server.base, path, Some(&token), ct, &body, None);
        assert!(
            (200..500).contains(&r.status),
            "seed {seed}, try {i}: {path} answered {}: {}",
            r.status,
            r.body
        );
        if r.status >= 400 {
            assert_eq!(
                r.content_type, "application/problem+json",
                "seed {seed}, try {i}: {}",
                r.body
            );
        }
    }
    // Still serving, still correct.
    let ok = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &encode_json(&[dev.sign(readings(5, now_ms() - 3_600_000))]),
        None,
    );
    assert!(ok.status == 201 || ok.status == 409, "{}", ok.body);
    server.stop();
    let out = support::coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
}

/// What a crash between a keyed write's commit and the record of its answer
/// leaves, here with the write committed in part (one device's batch of
/// two): the key's intent in the journal and no answer. The retry under the
/// key commits the rest and answers for both, instead of refusing its own
/// first half as a replay; the same batches under a new key stay refused.
#[test]
fn a_keyed_retry_finishes_a_write_whose_answer_a_crash_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let (key_a, key_b) = (
        SigningKey::from_bytes(&[31; 32]),
        SigningKey::from_bytes(&[32; 32]),
    );
    register(&server.base, &token, "logger-lost-a", &key_a);
    register(&server.base, &token, "logger-lost-b", &key_b);
    let a = DeviceClient::new("logger-lost-a", key_a).sign(readings(10, now_ms() - 3_600_000));
    let b = DeviceClient::new("logger-lost-b", key_b).sign(readings(10, now_ms() - 3_600_000));
    let first = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        BINARY_BATCH,
        &encode_binary(std::slice::from_ref(&a)),
        None,
    );
    assert_eq!(first.status, 201, "{}", first.body);
    let committed_a = first.json()["entries"][0].clone();
    server.stop();

    let body = encode_binary(&[a, b]);
    let fingerprint = ledger::Domain::Idempotency
        .hash_parts(&[b"POST", b"/v1/batches", &body])
        .to_hex();
    let intent = json!({"key": format!("{}\u{0}lost-1", support::ORG), "intent": fingerprint});
    let journal = dir.path().join("idempotency.jsonl");
    let mut lines = std::fs::read_to_string(&journal).unwrap_or_default();
    lines.push_str(&format!("{intent}\n"));
    std::fs::write(&journal, lines).unwrap();

    let server = Server::start(dir.path());
    let send = |key: &str| {
        post(
            &server.base,
            "/v1/batches",
            Some(&token),
            BINARY_BATCH,
            &body,
            Some(key),
        )
    };
    let retry = send("lost-1");
    assert_eq!(retry.status, 201, "{}", retry.body);
    let entries = retry.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{}", retry.body);
    assert!(entries.contains(&committed_a), "{}", retry.body);
    for w in &entries {
        verify_written(&server.base, w);
    }
    let next_seq = |device: &str| {
        support::get_auth(&server.base, &format!("/v1/devices/{device}"), &token).json()["next_seq"]
            .as_u64()
    };
    assert_eq!(next_seq("logger-lost-a"), Some(10));
    assert_eq!(next_seq("logger-lost-b"), Some(10));
    // Answered now: replayed as such, and a new key is a new request.
    let replay = send("lost-1");
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, retry.body);
    send("lost-2").assert_problem(409, "replayed_sequence");
    server.stop();
}

/// The same for device changes, whose entries carry the time they were
/// made: a keyed retry of a registration or a rotation whose answer a crash
/// lost gets that answer, not `409 device_exists` nor a second rotation.
#[test]
fn a_keyed_retry_of_a_device_change_whose_answer_a_crash_lost_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let journal = dir.path().join("idempotency.jsonl");
    // Drops the last answer line: the state a crash right after the commit leaves.
    let lose_last_answer = || {
        let text = std::fs::read_to_string(&journal).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let last = lines.pop().unwrap();
        assert!(last.contains("\"status\":201"), "{last}");
        std::fs::write(&journal, format!("{}\n", lines.join("\n"))).unwrap();
    };
    let key = SigningKey::from_bytes(&[33; 32]);
    let new_key = SigningKey::from_bytes(&[34; 32]);
    let register = json!({"device": "logger-lost-c", "public_key": ledger::keys::did_key(&key.verifying_key())});
    let rotate = json!({"public_key": ledger::keys::did_key(&new_key.verifying_key())});
    let send = |base: &str, path: &str, body: &serde_json::Value, idem: &str| {
        post(
            base,
            path,
            Some(&token),
            "application/json",
            body.to_string().as_bytes(),
            Some(idem),
        )
    };
    let rotate_path = "/v1/devices/logger-lost-c/rotate";

    let server = Server::start(dir.path());
    let first = send(&server.base, "/v1/devices", &register, "reg-1");
    assert_eq!(first.status, 201, "{}", first.body);
    server.stop();
    lose_last_answer();
    let server = Server::start(dir.path());
    let retry = send(&server.base, "/v1/devices", &register, "reg-1");
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.json(), first.json());
    send(&server.base, "/v1/devices", &register, "reg-2").assert_problem(409, "device_exists");

    let first = send(&server.base, rotate_path, &rotate, "rot-1");
    assert_eq!(first.status, 201, "{}", first.body);
    server.stop();
    lose_last_answer();
    let server = Server::start(dir.path());
    let retry = send(&server.base, rotate_path, &rotate, "rot-1");
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.json(), first.json());
    let device = support::get_auth(&server.base, "/v1/devices/logger-lost-c", &token).json();
    assert_eq!(device["keys"].as_array().unwrap().len(), 2, "{device}");
    assert_eq!(device["entries"].as_array().unwrap().len(), 2, "{device}");
    // A new key is a new request: the device rotates again.
    let again = send(&server.base, rotate_path, &rotate, "rot-2");
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.json(), first.json());
    server.stop();
}

/// A caller that sends a write and hangs up at once: the write still runs to
/// its end (committed, its answer recorded), and a retry with the same
/// Idempotency-Key gets that answer instead of a sequence refusal.
#[test]
fn a_write_whose_caller_hangs_up_completes_and_its_retry_is_answered() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = provision(dir.path());
    let server = Server::start(dir.path());
    let key = SigningKey::from_bytes(&[23; 32]);
    register(&server.base, &token, "logger-hangup", &key);
    let mut dev = DeviceClient::new("logger-hangup", key);
    let n = 60_000;
    let body = encode_binary(&[dev.sign(readings(n, now_ms() - 50 * 86_400_000))]);
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/batches HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {BINARY_BATCH}\r\nIdempotency-Key: hangup-1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(stream);

    let device = |base: &str| {
        support::get_auth(base, "/v1/devices/logger-hangup", &token).json()["next_seq"]
            .as_u64()
            .unwrap()
    };
    let started = std::time::Instant::now();
    while device(&server.base) < n as u64 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the abandoned write never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let retry = post(
        &server.base,
        "/v1/batches",
        Some(&token),
        BINARY_BATCH,
        &body,
        Some("hangup-1"),
    );
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(device(&server.base), n as u64);
}
