//! A world loaded into a real node through the ingest library (the same
//! checks as over HTTP: device registrations, EPCIS capture, signed batches).

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use analytics::RulesConfig;
use fixtures::{Scale, World};
use ledger::entry::{Entry, RuleVerdict};
use shards::{Node, NodeConfig};

/// 2026-11-01T00:00:00Z, as the demo.
pub const START_MS: i64 = 1_793_491_200_000;

/// The rules configuration for `world`: its products mapped to their profiles.
pub fn rules_for(world: &World) -> RulesConfig {
    let mut c = RulesConfig::default();
    for p in &world.products {
        c.products
            .insert(p.gtin.clone(), p.profile.rules.to_string());
    }
    c.validate().unwrap();
    c
}

pub fn open(dir: &Path, shards: u32) -> Arc<Node> {
    Arc::new(
        Node::open(NodeConfig {
            shards: Some(shards),
            ..NodeConfig::new(dir)
        })
        .unwrap(),
    )
}

/// Loads the world of `seed` at `scale` into a new node in `dir`, with the
/// rules configuration for its products.
pub async fn load_world(dir: &Path, scale: Scale, seed: u64, shards: u32) -> (Arc<Node>, World) {
    let world = fixtures::generate(seed, scale, START_MS);
    let node = open(dir, shards);
    std::fs::write(
        dir.join(analytics::profile::RULES_FILE),
        serde_json::to_vec_pretty(&rules_for(&world)).unwrap(),
    )
    .unwrap();
    fixtures::load::into_node(&node, &world, 720).await.unwrap();
    (node, world)
}

/// Every verdict entry on the node's logs.
pub fn ledger_verdicts(node: &Node) -> Vec<RuleVerdict> {
    let mut out = Vec::new();
    for s in node.shards() {
        for e in s.store().entries(0, s.committed()).unwrap() {
            if let Ok(Entry::Verdict(v)) = Entry::from_bytes(&e) {
                out.push(v);
            }
        }
    }
    out
}
