#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ledger::entry::{Action, CustodyEvent, Entry, EventKind, Subject, SubjectRole};
use ledger::store::StoreConfig;
use shards::{Node, NodeConfig};

pub fn config(dir: &Path, shards: u32) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        shards: Some(shards),
        store: StoreConfig {
            segment_bytes: 64 << 10,
            head_interval: Duration::from_millis(2),
            ..StoreConfig::default()
        },
        ..NodeConfig::new(dir)
    }
}

pub fn node(dir: &Path, shards: u32) -> Node {
    Node::open(config(dir, shards)).expect("node opens")
}

/// A node whose heads and key sets take their time from `clock`.
pub fn node_on(dir: &Path, shards: u32, clock: ledger::clock::SharedClock) -> Node {
    let mut c = config(dir, shards);
    c.store.clock = clock;
    Node::open(c).expect("node opens")
}

/// A transformation: `inputs` lots become `output`.
pub fn transformation(event: u64, inputs: &[&str], output: &str) -> Entry {
    let mut subjects: Vec<Subject> = inputs
        .iter()
        .map(|l| Subject {
            role: SubjectRole::Input,
            id: l.to_string(),
            quantity: None,
        })
        .collect();
    subjects.push(Subject {
        role: SubjectRole::Output,
        id: output.to_string(),
        quantity: None,
    });
    Entry::Custody(CustodyEvent {
        recorded_by: "urn:epc:id:sgln:0614141.00001.0".into(),
        event_id: format!("urn:uuid:00000000-0000-4000-8000-{event:012}"),
        kind: EventKind::Transformation,
        action: None,
        event_time_ms: 1_793_491_200_000 + event as i64 * 60_000,
        tz_offset_min: 60,
        biz_step: Some("commissioning".into()),
        disposition: Some("active".into()),
        read_point: None,
        biz_location: None,
        subjects,
        readings: Vec::new(),
        document: b"{}".to_vec(),
    })
}

/// Event `i` of a round of mixing among `lots`: lot `i % len` made of the
/// first three others (their ids, and the output's).
pub fn mixing(i: u64, lots: &[String]) -> (Vec<&str>, &str) {
    let out = &lots[(i % lots.len() as u64) as usize];
    let inputs = lots
        .iter()
        .filter(|l| *l != out)
        .take(3)
        .map(String::as_str)
        .collect();
    (inputs, out)
}

/// An observation of one lot.
pub fn observe(event: u64, lot: &str) -> Entry {
    let Entry::Custody(mut e) = transformation(event, &[], lot) else {
        unreachable!()
    };
    e.kind = EventKind::Object;
    e.action = Some(Action::Observe);
    e.subjects[0].role = SubjectRole::Object;
    Entry::Custody(e)
}

/// A lot id homed on `shard` of `node`.
pub fn lot_on(node: &Node, shard: u32, tag: &str) -> String {
    (0..)
        .map(|i| format!("urn:epc:class:lgtin:4012345.012345.{tag}{i}"))
        .find(|l| node.router().shard_for(l) == shard)
        .expect("some lot lands on every shard")
}
