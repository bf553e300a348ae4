//! `coldtrail trace`: a lot's genealogy from the logs (server stopped; with a
//! server running, ask it: `GET /v1/trace?lot=…`).

use std::path::PathBuf;
use std::process::ExitCode;

use analytics::lineage::{self, Direction, Limits, Trace};
use anyhow::{Context, Result};

use crate::logs::format_ms;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["forward", "backward", "co_exposure"])))]
pub struct Args {
    #[arg(long)]
    data_dir: PathBuf,
    /// The lot, as events name it (an EPC class URN or a GS1 Digital Link URI).
    #[arg(long)]
    lot: String,
    /// Every lot made from it, where each is now and who holds it.
    #[arg(long)]
    forward: bool,
    /// Every lot it was made from, with the farms, locations and events.
    #[arg(long)]
    backward: bool,
    /// Lots that shared a container, pallet, reefer or logger with it (between --from and --to).
    #[arg(long)]
    co_exposure: bool,
    /// Start of the co-exposure interval (RFC 3339, e.g. 2026-11-02T00:00:00Z); default: the beginning.
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// End of the co-exposure interval; default: the end.
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Stop after this many lots (the answer says what it cut).
    #[arg(long, default_value_t = Limits::default().max_lots)]
    max_lots: usize,
    #[arg(long)]
    json: bool,
}

/// The node in `data_dir` (the server must be stopped; `ask` says what to ask
/// a running one instead) and its lineage graph.
pub(crate) fn open_graph(
    data_dir: &std::path::Path,
    ask: &str,
) -> Result<(std::sync::Arc<shards::Node>, lineage::Lineage)> {
    let node = crate::cmd::serve::open_node(data_dir, None)
        .with_context(|| format!("with a server running, ask it: {ask}"))?;
    let (graph, _) = lineage::open(&node)?;
    Ok((node, graph))
}

fn parse_time(s: &str) -> Result<i64, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?}: {e}; write it as 2026-11-02T00:00:00Z"))
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (_node, graph) = open_graph(&args.data_dir, "GET /v1/trace?lot=…")?;
    if args.co_exposure {
        let Some(c) = graph.co_exposure(
            &args.lot,
            args.from.unwrap_or(i64::MIN),
            args.to.unwrap_or(i64::MAX),
        ) else {
            return unknown(&args.lot);
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            println!("co-exposure of {}: {} found", c.lot, c.exposures.len());
            for x in &c.exposures {
                println!(
                    "  {}  shared {} ({}) {} – {}  entries {}",
                    x.subject,
                    x.shared,
                    x.how,
                    format_ms(x.from_ms),
                    x.to_ms.map_or("open".into(), format_ms),
                    x.entries
                        .iter()
                        .map(|a| format!("{}/{}", a.shard, a.index))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dir = if args.forward {
        Direction::Forward
    } else {
        Direction::Backward
    };
    let limits = Limits {
        max_lots: args.max_lots,
        ..Limits::default()
    };
    let Some(trace) = graph.trace(&args.lot, dir, limits) else {
        return unknown(&args.lot);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print_trace(&trace);
    }
    Ok(ExitCode::SUCCESS)
}

fn unknown(lot: &str) -> Result<ExitCode> {
    eprintln!(
        "no event names {lot:?}; give the lot as its events name it (e.g. urn:epc:class:lgtin:…)"
    );
    Ok(ExitCode::from(1))
}

fn print_trace(t: &Trace) {
    let what = match t.direction {
        Direction::Forward => "descend from it",
        Direction::Backward => "it was made from",
    };
    println!("{} — {} lots {what}", t.root, t.lots.len() - 1);
    for l in &t.lots {
        let indent = "  ".repeat(l.depth as usize + 1);
        println!("{indent}{} (depth {})", l.lot, l.depth);
        for link in &l.links {
            let q = |q: &Option<lineage::QuantityView>| {
                q.as_ref().map_or(String::new(), |q| {
                    format!(" {} {}", q.value, q.uom.as_deref().unwrap_or(""))
                })
            };
            println!(
                "{indent}  via {} {} at {} ({}{} in,{} out), entry {}/{}",
                link.event.event_type,
                link.from,
                format_ms(link.event.time_ms),
                link.event.location.as_deref().unwrap_or("-"),
                q(&link.input_quantity),
                q(&link.output_quantity),
                link.event.entry.shard,
                link.event.entry.index
            );
        }
        if let Some(now) = &l.now {
            println!(
                "{indent}  now: {} at {} since {} (held by {}; entry {}/{})",
                now.biz_step.as_deref().unwrap_or("seen"),
                now.location.as_deref().unwrap_or("-"),
                format_ms(now.since_ms),
                now.holder,
                now.entry.shard,
                now.entry.index
            );
        }
    }
    for c in &t.cut {
        println!("  CUT: {}", serde_json::to_string(c).unwrap_or_default());
    }
}

/// `coldtrail fsma204`: FSMA 204's sortable spreadsheet as CSV.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["lot", "gtin"])))]
pub struct FsmaArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// A traceability lot: the CTEs of its whole chain (what it was made from and what was made from it).
    #[arg(long)]
    lot: Option<String>,
    /// A product (GTIN-14): the CTEs of its lots between --from and --to.
    #[arg(long)]
    gtin: Option<String>,
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Write the CSV here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn fsma204(args: FsmaArgs) -> Result<ExitCode> {
    let (_node, graph) = open_graph(&args.data_dir, "GET /v1/fsma204?lot=…")?;
    let master = ::web::catalogue::Catalogue::load(&args.data_dir)?.master_data();
    let rows = match (&args.lot, &args.gtin) {
        (Some(lot), _) => match graph.chain(lot) {
            Some(chain) => graph.cte_rows(&chain, &master),
            None => return unknown(lot),
        },
        (None, Some(gtin)) => graph.cte_rows_for_product(
            gtin,
            (args.from.unwrap_or(i64::MIN), args.to.unwrap_or(i64::MAX)),
            &master,
        ),
        (None, None) => unreachable!("clap requires one"),
    };
    let csv = analytics::lineage::fsma204::to_csv(&rows);
    match &args.out {
        Some(p) => {
            std::fs::write(p, &csv).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {} CTE rows to {}", rows.len(), p.display());
        }
        None => print!("{csv}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `coldtrail search`: organisations, products, lots, locations, devices and
/// events by identifier or words, typo-tolerant.
#[derive(clap::Args)]
pub struct SearchArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// An identifier or words.
    query: String,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub fn search(args: SearchArgs) -> Result<ExitCode> {
    let (_node, graph) = open_graph(&args.data_dir, "GET /v1/search?q=…")?;
    let index = analytics::search::SearchIndex::from_lineage(&graph)?;
    let hits = index.search(&args.query, args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        for h in &hits {
            println!("{:<13} {:<60} {}", h.kind, h.id, h.label);
        }
        if hits.is_empty() {
            println!("nothing matches {:?}", args.query);
        }
    }
    Ok(ExitCode::SUCCESS)
}
