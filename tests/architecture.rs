//! The arrows ARCHITECTURE.md draws between the workspace's crates, checked
//! against every crate's `Cargo.toml`: a dependency that points the wrong
//! way (the verifier half reaching storage, `api` reaching above `ledger`,
//! the read side reaching the write crate) fails here, naming it.

use std::collections::BTreeSet;

/// What the two read edges may reach: the read state and everything below
/// it. Not `ingest`: the writes they take run in `api::frame::WriteFrame`
/// and reach the write path through `api::port::WritePort`.
const READ_EDGE: &[&str] = &["ledger", "shards", "api", "analytics", "readstate", "gs1"];

/// Each library crate and the crates of ours it may depend on (normal
/// dependencies; tests may reach further).
const ALLOWED: &[(&str, &[&str])] = &[
    ("ledger", &[]),
    ("gs1", &[]),
    ("api", &["ledger"]),
    ("shards", &["ledger"]),
    ("ingest", &["ledger", "shards", "api", "gs1"]),
    ("analytics", &["ledger", "shards", "gs1"]),
    (
        "readstate",
        &["ledger", "shards", "api", "analytics", "witness"],
    ),
    ("web", READ_EDGE),
    ("graphql", READ_EDGE),
    ("fixtures", &["ledger", "shards", "api", "ingest", "gs1"]),
    // A witness is nobody's node: it knows logs only by their keys.
    ("witness", &["ledger"]),
];

fn manifest(dir: &str) -> toml::Table {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The workspace's own crates that `table` names as dependencies.
fn ours(table: Option<&toml::Value>, crates: &BTreeSet<&str>) -> BTreeSet<String> {
    table
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.keys()
                .filter(|k| crates.contains(k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_crate_depends_only_on_the_crates_below_it() {
    let root = manifest(".");
    let members: BTreeSet<&str> = root["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .filter_map(|m| m.as_str())
        .filter(|m| *m != ".")
        .collect();
    let listed: BTreeSet<&str> = ALLOWED.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        members, listed,
        "every workspace crate has its place in ALLOWED (and ARCHITECTURE.md)"
    );
    let mut wrong = Vec::new();
    for (krate, allowed) in ALLOWED {
        let m = manifest(krate);
        let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
        for dep in ours(m.get("dependencies"), &members) {
            if !allowed.contains(dep.as_str()) {
                wrong.push(format!("{krate} depends on {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows pointing the wrong way: {wrong:?}");
}

#[test]
fn the_verifier_half_of_ledger_needs_no_storage() {
    let m = manifest("ledger");
    let default = m["features"]["default"]
        .as_array()
        .expect("default features");
    assert_eq!(
        default
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>(),
        ["store"],
        "ledger's storage is the `store` feature, on by default and off for verifiers"
    );
    for dep in ["lz4_flex", "tokio", "tokio-postgres"] {
        let optional = m["dependencies"][dep]
            .get("optional")
            .and_then(toml::Value::as_bool);
        assert_eq!(optional, Some(true), "{dep} is only for the `store` half");
    }
}
