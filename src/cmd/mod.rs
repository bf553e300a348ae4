//! One module per subcommand (or family of them); `main.rs` parses the
//! command line and calls into these. Each runs its job through the
//! libraries (a node through `shards`, writes through `ingest`, reads
//! through `analytics` and the read edges) and prints for people and
//! scripts on stdout, logs on stderr.

pub mod analytics;
pub mod audit_remote;
pub mod demo;
pub mod loadgen;
pub mod mqtt_bridge;
pub mod push;
pub mod recall;
pub mod serve;
pub mod store;
pub mod trace;
pub mod verify;
pub mod witness;
