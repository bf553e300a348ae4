//! `coldtrail recall open|widen|show|close` on a stopped node (with a server
//! running, the same is `POST /v1/recalls`, `GET /v1/recalls/{id}`, …).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use analytics::lineage;
use anyhow::Result;
use ledger::entry::Entry;

use crate::logs::format_ms;

#[derive(clap::Subcommand)]
pub enum RecallCmd {
    /// Open a recall of a lot: it and every lot made from it.
    Open {
        #[command(flatten)]
        change: Change,
        #[arg(long)]
        lot: String,
    },
    /// Add a lot and its descendants to an open recall.
    Widen {
        #[command(flatten)]
        change: Change,
        #[arg(long)]
        id: String,
        #[arg(long)]
        lot: String,
    },
    /// Show one recall, or every recall (or those naming --lot).
    Show {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        lot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Close an open recall.
    Close {
        #[command(flatten)]
        change: Change,
        #[arg(long)]
        id: String,
    },
}

/// What every change to a recall names: the node, why, and who.
#[derive(clap::Args)]
pub struct Change {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    reason: String,
    /// The investigator's (or operator's) organisation, in whose name it is recorded.
    #[arg(long)]
    by: String,
}

fn open_graph(dir: &Path) -> Result<(std::sync::Arc<shards::Node>, lineage::Lineage)> {
    crate::cmd::trace::open_graph(dir, "POST /v1/recalls, GET /v1/recalls/{id}")
}

/// Appends a recall change on `home`'s shard and prints where.
fn record(
    node: &shards::Node,
    home: &str,
    change: ledger::entry::RecallChange,
) -> Result<ledger::Digest> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let c = rt.block_on(node.append(home, vec![Entry::Recall(change)]))?;
    let (index, id) = c.entries[0];
    println!("recorded on shard {} at index {index}, entry {id}", c.shard);
    Ok(id)
}

pub fn run(cmd: RecallCmd) -> Result<ExitCode> {
    let now = ledger::clock::Clock::now_ms(&ledger::clock::SystemClock);
    match cmd {
        RecallCmd::Open { change, lot } => {
            let (node, graph) = open_graph(&change.data_dir)?;
            let (entry, set) =
                analytics::recall::open(&graph, &lot, &change.reason, &change.by, now, None)?;
            let id = record(&node, &lot, entry)?;
            println!("recall {id} opened for {lot}: {} lots", set.lots.len());
            for l in &set.lots {
                println!("  {l}");
            }
            for c in &set.cut {
                println!("  CUT: {}", serde_json::to_string(c)?);
            }
        }
        RecallCmd::Widen { change, id, lot } => {
            let (node, graph) = open_graph(&change.data_dir)?;
            let (entry, home, set) =
                analytics::recall::widen(&graph, &id, &lot, &change.reason, &change.by, now)?;
            record(&node, &home, entry)?;
            println!("recall {id} widened by {} lots", set.lots.len());
            for l in &set.lots {
                println!("  {l}");
            }
        }
        RecallCmd::Close { change, id } => {
            let (node, graph) = open_graph(&change.data_dir)?;
            let (entry, home) =
                analytics::recall::close(&graph, &id, &change.reason, &change.by, now)?;
            record(&node, &home, entry)?;
            println!("recall {id} closed");
        }
        RecallCmd::Show {
            data_dir,
            id,
            lot,
            json,
        } => {
            let (_node, graph) = open_graph(&data_dir)?;
            let recalls: Vec<&analytics::recall::Recall> = match (&id, &lot) {
                (Some(id), _) => graph.recalls().get(id).into_iter().collect(),
                (None, Some(lot)) => graph.recalls().of_lot(lot),
                (None, None) => graph.recalls().all().collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&recalls)?);
            } else if recalls.is_empty() {
                println!("no recalls");
            } else {
                for r in recalls {
                    println!(
                        "recall {} of {} ({}): {} lots — {}",
                        r.id,
                        r.lot,
                        if r.open { "open" } else { "closed" },
                        r.affected.len(),
                        r.reason
                    );
                    for s in &r.history {
                        println!(
                            "  {} {} by {}: {} (+{} lots; entry {}/{})",
                            format_ms(s.at_ms),
                            s.change,
                            s.by,
                            s.reason,
                            s.added.len(),
                            s.entry.shard,
                            s.entry.index
                        );
                    }
                }
            }
            if id.is_some() && graph.recalls().get(id.as_deref().unwrap_or("")).is_none() {
                eprintln!("no recall {}", id.unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
