//! The binary end to end: demo builds a ledger, verify passes on it and fails,
//! naming the place, once a stored byte changes; keygen writes private keys.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

mod support;

use support::{run as coldtrail, text};

fn demo(dir: &Path) {
    demo_with(dir, "1");
}

/// Runs the demo at tiny scale on `dir`, loading and exiting; `shards` for a new node.
fn run_demo(dir: &Path, shards: Option<&str>) -> Output {
    let mut args = vec![
        "demo",
        "--data-dir",
        dir.to_str().unwrap(),
        "--scale",
        "tiny",
        "--listen",
        "127.0.0.1:0",
        "--exit-after-load",
    ];
    if let Some(n) = shards {
        args.extend(["--shards", n]);
    }
    coldtrail(&args)
}

fn demo_with(dir: &Path, shards: &str) {
    let out = run_demo(dir, Some(shards));
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("loaded"), "{t}");
    assert!(t.contains("signed readings"), "{t}");
    assert!(t.contains("example proof   http://127.0.0.1:"), "{t}");
    assert!(t.contains("verify --data-dir"), "{t}");
    assert!(t.contains("partner         token ct_"), "{t}");
    assert!(
        t.contains("capture         curl -s -H 'Authorization: Bearer ct_"),
        "{t}"
    );
    assert!(t.contains("recall          opened"), "{t}");
    // Three pages a newcomer opens: a clean, a breached and the recalled lot.
    for what in ["a clean lot", "a breached lot", "the recalled lot"] {
        let line = t
            .lines()
            .find(|l| l.contains(&format!("({what}, as its QR code opens it)")))
            .unwrap_or_else(|| panic!("no page for {what}: {t}"));
        assert!(line.contains("consumer page   http://127.0.0.1:"), "{line}");
        assert!(line.contains("/01/") && line.contains("/10/"), "{line}");
    }
}

#[test]
fn demo_then_verify_and_inspect_pass() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    for name in ["lineage", "ingest", "sequencer-000"] {
        assert!(
            dir.path().join("checkpoints").join(name).exists(),
            "a clean stop leaves the {name} checkpoint for the next start"
        );
    }
    let out = coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified 1 logs"), "{}", text(&out));
    let out = coldtrail(&["inspect", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for kind in ["custody", "identity", "readings"] {
        assert!(t.contains(kind), "{kind}: {t}");
    }
    // The same world from the same seed: a second run serves what is there.
    let again = run_demo(dir.path(), None);
    assert!(
        text(&again).contains("already holds a node"),
        "{}",
        text(&again)
    );
}

/// What a crash leaves (a derived file behind the segments, heads not yet
/// signed over the tail) is reported apart from damage, with exit code 3 and
/// what opening will do; `verify --recover` opens the node and then passes.
#[test]
fn verify_tells_a_crash_consistent_state_from_damage() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let d = dir.path().to_str().unwrap();
    let index = dir.path().join("shard-000/index");
    let len = std::fs::metadata(&index).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = coldtrail(&["verify", "--data-dir", d]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("RECOVERABLE: shard shard-000: index: ends before the block"),
        "{t}"
    );
    assert!(t.contains("opening re-indexes"), "{t}");
    assert!(t.contains("no damage"), "{t}");
    assert!(!t.contains("FAILED"), "{t}");
    let out = coldtrail(&["verify", "--data-dir", d, "--recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verified 1 logs"), "{}", text(&out));
}

#[test]
fn verify_names_the_shard_segment_and_block_of_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let seg = dir.path().join("shard-000/00000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    let out = coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("FAILED: shard shard-000"), "{t}");
    assert!(
        t.contains("00000000.seg, segment 0, block at offset"),
        "{t}"
    );
    assert!(t.contains("block checksum does not match"), "{t}");
}

#[test]
fn a_sharded_demo_links_its_shards_with_receipts() {
    let dir = tempfile::tempdir().unwrap();
    demo_with(dir.path(), "2");
    let out = coldtrail(&["inspect", "--data-dir", dir.path().to_str().unwrap()]);
    let t = text(&out);
    let count = |label: &str| -> u64 {
        t.lines()
            .filter_map(|l| l.trim().strip_prefix("receipts        "))
            .map(|l| {
                let part = l.split(", ").find(|p| p.starts_with(label)).unwrap();
                part[label.len() + 1..].parse::<u64>().unwrap()
            })
            .sum()
    };
    assert!(count("out") > 0, "{t}");
    assert_eq!(count("out"), count("in"), "every receipt delivered: {t}");
    let out = coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified 2 logs"), "{}", text(&out));
    // The node remembers its shard count.
    let out = run_demo(dir.path(), Some("3"));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds 2 shards but 3 were asked for"),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_refuses_a_directory_without_logs() {
    let dir = tempfile::tempdir().unwrap();
    let out = coldtrail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("holds no coldtrail log"),
        "{}",
        text(&out)
    );
}

#[test]
fn keygen_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let out = coldtrail(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("did:key     did:key:z6Mk"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = coldtrail(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!again.status.success(), "never overwrites a key");
}

/// `serve` takes its settings from defaults, a `--config` file, the
/// `COLDTRAIL_*` environment and flags, each overriding the one before,
/// prints them at start, and acts on them.
#[test]
fn serve_settings_come_from_file_environment_and_flags() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let file = dir.path().join("coldtrail.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n[ingest]\nmax_in_flight = 50\nmax_body_bytes = 100000\n[store]\nhead_interval_ms = 300\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_coldtrail"))
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--max-body-bytes",
            "2000",
        ])
        .env("COLDTRAIL_INGEST_MAX_IN_FLIGHT", "7")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let mut printed = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        let done = l.contains("head_interval_ms");
        printed.push(l);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let printed = printed.join("\n");
    for want in [
        "max_body_bytes = 2000",  // the flag beats the file
        "max_in_flight = 7",      // the environment beats the file
        "head_interval_ms = 300", // the file beats the default
    ] {
        assert!(printed.contains(want), "{want}: {printed}");
    }
    let token = support::token(dir.path(), support::ORG, "partner");
    let r = support::post(
        &base,
        "/v1/batches",
        Some(&token),
        "application/json",
        &vec![b' '; 3000],
        None,
    );
    let _ = child.kill();
    let _ = child.wait();
    r.assert_problem(413, "payload_too_large");

    // A mistake in the file is refused naming it.
    std::fs::write(&file, "[ingest]\nmax_inflight = 3\n").unwrap();
    let out = coldtrail(&["serve", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("max_inflight"), "{}", text(&out));
}

#[test]
fn a_gln_is_registered_once_in_any_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = |gln: &str, name: &str| {
        coldtrail(&[
            "org",
            "add",
            "--data-dir",
            d,
            "--gln",
            gln,
            "--name",
            name,
            "--role",
            "carrier",
        ])
    };
    let first = add("urn:epc:id:sgln:0614141.00001.0", "Cold Carrier");
    assert!(first.status.success(), "{}", text(&first));
    for (gln, spelling) in [
        ("urn:epc:id:sgln:0614141.00001.0", "the same URN"),
        ("https://id.gs1.org/414/0614141000012", "its Digital Link"),
    ] {
        let again = add(gln, "Rival Carrier");
        assert!(!again.status.success(), "{spelling}: {}", text(&again));
        assert!(
            text(&again).contains("is already registered (as urn:epc:id:sgln:0614141.00001.0)"),
            "{spelling}: {}",
            text(&again)
        );
    }
    let other = add("urn:epc:id:sgln:0614141.00002.0", "Another Carrier");
    assert!(other.status.success(), "{}", text(&other));
}

/// Logs written to a file or a pipe carry no terminal colour codes, as text
/// or as JSON (issue 30: `serve … > serve.log` was full of them).
#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (i, format) in ["text", "json"].into_iter().enumerate() {
        let out = support::command(&[
            "--log-format",
            format,
            "org",
            "add",
            "--data-dir",
            d,
            "--gln",
            &format!("urn:epc:id:sgln:0614141.0000{}.0", i + 1),
            "--name",
            "Cold Carrier",
            "--role",
            "carrier",
        ])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let log = String::from_utf8(out.stderr).unwrap();
        assert!(log.contains("sequencer state rebuilt"), "{format}: {log}");
        assert!(!log.contains('\u{1b}'), "{format}: colour codes in {log:?}");
        if format == "json" {
            for line in log.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}

#[test]
fn a_demo_whose_world_would_end_in_the_future_is_refused_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = coldtrail(&[
        "demo",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--scale",
        "tiny",
        "--start",
        &tomorrow,
        "--listen",
        "127.0.0.1:0",
        "--exit-after-load",
    ]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("after now") && t.contains("leave --start out"),
        "{t}"
    );
    assert!(!t.contains("loading the"), "nothing was loaded: {t}");
}

/// `coldtrail network`: version 1 is adopted once every founder signed it;
/// a later version once a majority of the members before it did; a
/// non-member's key, a member's wrong key and a tampered file are refused.
#[test]
fn a_network_document_is_adopted_by_its_founders_then_by_a_majority() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let mut keys = Vec::new();
    for name in ["alpha", "bravo", "charlie", "delta"] {
        let out = support::run(&["keygen", "--out", &p(&format!("{name}.key"))]);
        assert!(out.status.success(), "{}", text(&out));
        let public = text(&out)
            .lines()
            .find_map(|l| l.strip_prefix("public key  "))
            .unwrap()
            .to_string();
        keys.push(public);
    }
    let spec = |i: usize, name: &str, prefix: &str| {
        format!(
            "{name},{},http://127.0.0.1:{},{prefix},4",
            keys[i],
            8081 + i
        )
    };
    let file = p("network.json");
    let net = |args: &[&str]| {
        let mut all = vec!["network"];
        all.extend_from_slice(args);
        support::run(&all)
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let refused = |out: std::process::Output| {
        assert!(!out.status.success(), "{}", text(&out));
        text(&out)
    };
    ok(net(&[
        "init",
        "--file",
        &file,
        "--network",
        "coldchain",
        "--member",
        &spec(0, "alpha", "0614141"),
        "--member",
        &spec(1, "bravo", "0614142"),
        "--member",
        &spec(2, "charlie", "4012345"),
    ]));
    // Two prefixes that overlap would give an identifier two homes.
    refused(net(&[
        "init",
        "--file",
        &p("bad.json"),
        "--network",
        "coldchain",
        "--member",
        &spec(0, "alpha", "0614141"),
        "--member",
        &spec(1, "bravo", "06141410"),
    ]));
    let sign = |member: &str, key: &str| {
        net(&[
            "sign",
            "--file",
            &file,
            "--member",
            member,
            "--key",
            &p(&format!("{key}.key")),
        ])
    };
    assert!(ok(sign("alpha", "alpha")).contains("pending"));
    assert!(ok(net(&["show", "--file", &file])).contains("version 1 pending (1 of 3"));
    refused(sign("bravo", "alpha"));
    assert!(ok(sign("bravo", "bravo")).contains("pending"));
    assert!(ok(sign("charlie", "charlie")).contains("adopted"));
    let shown = ok(net(&["show", "--file", &file]));
    assert!(shown.contains("version 1 adopted"), "{shown}");
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("member ")).count(),
        3
    );

    // delta joins: it cannot sign itself in; two of three members can.
    ok(net(&[
        "propose",
        "--file",
        &file,
        "--add",
        &spec(3, "delta", "5012345"),
    ]));
    refused(sign("delta", "delta"));
    assert!(ok(sign("alpha", "alpha")).contains("pending"));
    refused(net(&["propose", "--file", &file, "--remove", "bravo"]));
    assert!(ok(sign("charlie", "charlie")).contains("adopted"));
    let shown = ok(net(&["show", "--file", &file]));
    assert!(shown.contains("version 2 adopted"), "{shown}");
    assert!(
        shown.contains("member delta http://127.0.0.1:8084 prefixes 5012345"),
        "{shown}"
    );

    // A signed version changed afterwards no longer verifies.
    let text_of = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text_of.replacen("http://127.0.0.1:8082", "http://evil.example", 1),
    )
    .unwrap();
    let why = refused(net(&["show", "--file", &file]));
    assert!(why.contains("signature"), "{why}");
}
