//! `coldtrail`: the one binary. Thin wiring over the library crates.

mod bench;
mod cmd;
mod config;
mod logs;
mod networking;
mod ops;
mod witnessing;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "coldtrail",
    version,
    about = "Tamper-evident provenance for cold chains"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log lines as `text` or `json` (one object per line), on stderr;
    /// levels by RUST_LOG (default: info for serve, warnings otherwise).
    #[arg(
        long,
        global = true,
        env = "COLDTRAIL_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr (stdout carries what commands print for people and
/// scripts); RUST_LOG overrides the default level. Text is coloured only on
/// a terminal (and not under `NO_COLOR`): a file or a pipe gets plain text;
/// JSON never carries colour codes.
fn init_logging(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = matches!(format, LogFormat::Text)
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a sample cold-chain ledger (signed logger readings), audit it,
    /// and print what to run next.
    Demo(cmd::demo::Args),
    /// Create an ed25519 key file (mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit every log under a data directory: checksums, hashes, tree, signed heads.
    /// Exits 0 when all is verified, 1 on damage (naming the first problem), 3 when
    /// the logs are only in the state a crash leaves, which opening repairs.
    Verify {
        /// The node's data directory (its embedded logs, or with --store its keys).
        #[arg(long, required_unless_present = "store")]
        data_dir: Option<PathBuf>,
        /// Audit every log in this PostgreSQL database (postgres://…), row by row.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// Open the node first, as a start does (recovery, heads signed), then audit.
        #[arg(long, requires = "data_dir")]
        recover: bool,
    },
    /// Bring a PostgreSQL database's coldtrail schema up to date (serve does
    /// this at start too); refuses a database newer than this binary.
    Migrate {
        #[arg(long, value_name = "URL")]
        store: String,
    },
    /// Copy a stopped node's logs from one store to the other (`--from DIR --to
    /// postgres://…`, or back), check every log's root against its source, and
    /// point the node at the copy. The source is left as it was.
    CopyStore {
        /// Where the logs are now: the node's data directory, or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// Where they go: the node's data directory, or a postgres:// URL.
        #[arg(long)]
        to: String,
    },
    /// Check a running node from the outside: its key document against a
    /// pinned operator key, every shard's signed head, that each log only grew
    /// since the saved state, and entries from content to id to proof to head.
    /// Exits 1 naming each failure.
    AuditRemote(cmd::audit_remote::Args),
    /// Describe each log under a data directory.
    Inspect {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Measure the ledger: encoding, durable appends, proofs, open, disk use, audit.
    Bench(bench::Args),
    /// Write a generated world to files: world.json, truth.json, one EPCIS document per organisation.
    World {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "demo")]
        scale: fixtures::Scale,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The world's first day (UTC); default as `demo --start`'s.
        #[arg(long, value_parser = cmd::demo::parse_day)]
        start: Option<i64>,
    },
    /// Drive a server with signed, realistic batches and report readings/s and ack latency.
    Loadgen(cmd::loadgen::Args),
    /// Serve the node over HTTP (write API, read routes, GraphQL) until Ctrl-C.
    Serve(ServeArgs),
    /// Sign a readings file (CSV or JSON lines) as a device and push it to a node.
    Push(cmd::push::Args),
    /// Take signed batches and EPCIS documents from an MQTT broker to a node, answering on reply topics.
    MqttBridge(cmd::mqtt_bridge::Args),
    /// A witness: cosign the checkpoints logs send it (`POST /add-checkpoint`,
    /// C2SP tlog-witness), each only if consistent with the last it cosigned.
    Witness(cmd::witness::Args),
    /// A network of member nodes: its membership document, versioned and
    /// signed by its members (init, propose, sign, show).
    #[command(subcommand)]
    Network(cmd::network::Cmd),
    /// Print the GraphQL schema (SDL), as `graphql/schema.graphql` holds it.
    GraphqlSchema,
    /// The QR code a pack carries: the canonical GS1 Digital Link of a product,
    /// lot or serial under the node's public URL (as `/qr/…` serves it).
    Qr {
        /// A GS1 Digital Link URI or path (`/01/{gtin}/10/{lot}`, any spelling
        /// the standard allows) or an EPC URN (`urn:epc:class:lgtin:…`, `urn:epc:id:sgtin:…`).
        id: String,
        /// The public base URL the node serves pages under (https://host[/prefix]).
        #[arg(long, value_parser = ::web::parse_public_url)]
        public_url: String,
        /// svg, png or txt (for a terminal); default: from `--out`'s extension, else txt.
        #[arg(long)]
        format: Option<String>,
        /// Write the code to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Organisations (partners, investigators, operators).
    Org {
        #[command(subcommand)]
        cmd: OrgCmd,
    },
    /// The node's published log keys and the operator key that signs them
    /// (`coldtrail inspect` shows them).
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Bearer tokens for the API.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// The analytics tables and rule state (derived from the logs).
    Analytics {
        #[command(subcommand)]
        cmd: cmd::analytics::AnalyticsCmd,
    },
    /// Run SQL over the analytics tables (readings, events, event_subjects,
    /// associations, verdicts) and print the result.
    Sql {
        #[arg(long)]
        data_dir: PathBuf,
        /// The query, e.g. "SELECT device, max(temp_c) FROM readings GROUP BY device".
        query: String,
    },
    /// Export the analytics tables.
    Export {
        #[command(subcommand)]
        cmd: ExportCmd,
    },
    /// A lot's genealogy: --forward (what was made from it, where it is now),
    /// --backward (what it was made from), or --co-exposure (what shared its
    /// containers and loggers); every item names its ledger entries.
    Trace(cmd::trace::Args),
    /// FSMA 204's sortable spreadsheet (21 CFR 1.1455(c)(3)(ii)) as CSV: a
    /// lot's chain, or a product over a time range.
    Fsma204(cmd::trace::FsmaArgs),
    /// Find organisations, products, lots, locations, devices and events by
    /// identifier or words (typo-tolerant).
    Search(cmd::trace::SearchArgs),
    /// Recalls: open one for a lot (it and its descendants), widen, close, show
    /// (server stopped; over HTTP: /v1/recalls).
    Recall {
        #[command(subcommand)]
        cmd: cmd::recall::RecallCmd,
    },
    /// List rule verdicts (breaches, quarantines, releases) with their
    /// explanation and evidence, and breaches still ongoing.
    Breaches {
        #[arg(long)]
        data_dir: PathBuf,
        /// Only verdicts about this lot (or container, or logger).
        #[arg(long)]
        lot: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// One Parquet file per table in DIR (DuckDB, pyarrow, Spark read them).
    Parquet {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Only the rows this organisation (its GLN, as registered) may
        /// read, for handing to it; without, everything (the operator's copy).
        /// Reads the logs: the server must be stopped.
        #[arg(long = "as", value_name = "ORG")]
        as_org: Option<String>,
    },
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Register an organisation (writes an identity entry; the server must be stopped).
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        /// The organisation's GLN, as an EPC URN (urn:epc:id:sgln:…) or a plain 13-digit GLN.
        #[arg(long)]
        gln: String,
        #[arg(long)]
        name: String,
        /// grower, packer, processor, carrier, dc, retailer, manufacturer, clinic, investigator or operator.
        #[arg(long)]
        role: String,
        /// Shards of a new node (default: one per core).
        #[arg(long)]
        shards: Option<u32>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Replace the operator key that signs the node's key sets; the new set
    /// is endorsed by the old key, so verifiers that pinned it follow. The
    /// server must be stopped.
    RotateOperator {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Issue a token for an organisation; printed once, stored hashed.
    Issue {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        org: String,
        /// partner (writes), investigator (reads) or operator.
        #[arg(long, default_value = "partner")]
        role: String,
    },
    /// Revoke tokens by the start of their hash (at least 8 hex digits).
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        hash: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let level = if matches!(
        cli.cmd,
        Cmd::Serve(_) | Cmd::MqttBridge(_) | Cmd::Witness(_)
    ) {
        "info"
    } else {
        "warn"
    };
    init_logging(cli.log_format, level);
    match cli.cmd {
        Cmd::Demo(args) => cmd::demo::run(args),
        Cmd::Keygen { out } => {
            let key = ledger::keys::generate()?;
            ledger::keys::write_key_file(&out, &key)?;
            let public = key.verifying_key();
            println!("wrote {} (mode 0600)", out.display());
            println!("public key  {}", ledger::Digest(public.to_bytes()).to_hex());
            println!("did:key     {}", ledger::keys::did_key(&public));
            println!("log id      {}", ledger::head::log_id(&public));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify {
            data_dir,
            store,
            recover,
        } => match (store, data_dir) {
            (Some(url), dir) => cmd::verify::verify_database(&url, dir.as_deref(), recover),
            (None, Some(dir)) => cmd::verify::verify(&dir, recover),
            (None, None) => unreachable!("clap requires --data-dir without --store"),
        },
        Cmd::Migrate { store } => cmd::store::migrate(&store),
        Cmd::CopyStore { from, to } => cmd::store::copy_store(&from, &to),
        Cmd::Inspect { data_dir } => cmd::verify::inspect(&data_dir),
        Cmd::AuditRemote(args) => cmd::audit_remote::run(args),
        Cmd::Keys {
            cmd: KeysCmd::RotateOperator { data_dir },
        } => {
            let node = cmd::serve::open_node(&data_dir, None)?;
            let set = node.rotate_operator_key()?;
            println!(
                "key set #{} issued: operator key {} (endorsed by the previous key); verifiers pinned to an earlier operator key follow it",
                set.set.sequence,
                hex::encode(set.set.operator_key)
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(args) => bench::run(args),
        Cmd::Loadgen(args) => cmd::loadgen::run(args),
        Cmd::World {
            out,
            scale,
            seed,
            start,
        } => {
            let world = match start {
                Some(start) => fixtures::generate(seed, scale, start),
                None => {
                    fixtures::generate_in_past(seed, scale, chrono::Utc::now().timestamp_millis())
                }
            };
            world.write_to(&out)?;
            println!(
                "wrote the {scale:?} world (seed {seed}) to {}: {} organisations, {} lots, {} loggers, {} events, {} readings (generated on demand)",
                out.display(),
                world.orgs.len(),
                world.lots.len(),
                world.devices.len(),
                world.events.len(),
                world.reading_count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve(args) => cmd::serve::serve(args.config()?),
        Cmd::Push(args) => cmd::push::run(args),
        Cmd::MqttBridge(args) => cmd::mqtt_bridge::run(args),
        Cmd::Witness(args) => cmd::witness::run(args),
        Cmd::Network(c) => cmd::network::run(c),
        Cmd::Qr {
            id,
            public_url,
            format,
            out,
        } => qr(&id, &public_url, format, out),
        Cmd::GraphqlSchema => {
            print!("{}", graphql::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Org {
            cmd:
                OrgCmd::Add {
                    data_dir,
                    gln,
                    name,
                    role,
                    shards,
                },
        } => cmd::serve::org_add(data_dir, gln, name, role, shards),
        Cmd::Token {
            cmd:
                TokenCmd::Issue {
                    data_dir,
                    org,
                    role,
                },
        } => cmd::serve::token_issue(data_dir, org, role),
        Cmd::Token {
            cmd: TokenCmd::Revoke { data_dir, hash },
        } => cmd::serve::token_revoke(data_dir, hash),
        Cmd::Analytics { cmd } => cmd::analytics::run(cmd),
        Cmd::Sql { data_dir, query } => cmd::analytics::sql(&data_dir, &query),
        Cmd::Export {
            cmd:
                ExportCmd::Parquet {
                    data_dir,
                    out,
                    as_org,
                },
        } => cmd::analytics::export_parquet(&data_dir, &out, as_org.as_deref()),
        Cmd::Breaches {
            data_dir,
            lot,
            json,
        } => cmd::analytics::breaches(&data_dir, lot.as_deref(), json),
        Cmd::Trace(args) => cmd::trace::run(args),
        Cmd::Fsma204(args) => cmd::trace::fsma204(args),
        Cmd::Search(args) => cmd::trace::search(args),
        Cmd::Recall { cmd } => cmd::recall::run(cmd),
    }
}

/// `coldtrail qr`: the canonical link under the public URL, as a QR code.
fn qr(
    id: &str,
    public_url: &str,
    format: Option<String>,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let link = if id.starts_with("urn:epc:") {
        gs1::from_epc_urn(id)
            .map_err(|e| anyhow::anyhow!("{id}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("{id}: this EPC scheme has no GS1 Digital Link"))?
    } else {
        // A bare path is read as under the public URL.
        let uri = match id.starts_with('/') {
            true => format!("{public_url}{id}"),
            false => id.to_string(),
        };
        gs1::DigitalLink::parse(&uri).map_err(|e| anyhow::anyhow!("{id}: {e}"))?
    };
    let format = format
        .or_else(|| {
            out.as_ref()
                .and_then(|p| p.extension())
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
        })
        .unwrap_or_else(|| "txt".into());
    if !matches!(format.as_str(), "svg" | "png" | "txt") {
        anyhow::bail!("--format {format}: use svg, png or txt");
    }
    let uri = link.under(public_url);
    let (_, bytes) = ::web::consumer::qr(&uri, &format).map_err(|e| anyhow::anyhow!("{e}"))?;
    match out {
        Some(path) => {
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            println!("{uri}\n  QR code ({format}) written to {}", path.display());
        }
        None if format == "png" => {
            anyhow::bail!("a PNG is not for a terminal: give --out FILE.png")
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            if format == "txt" {
                writeln!(stdout, "\n{uri}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve`'s flags: each overrides the config file (`--config`) and the
/// `COLDTRAIL_*` environment (see `config.rs`); unset, they leave them be.
#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file of settings (the keys `serve` prints at start).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed). [default: 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<String>,
    /// The public base URL printed on packs (https://host[/prefix]):
    /// Digital Links, linksets and QR codes are written under it
    /// (default: the address each request came to).
    #[arg(long, value_parser = ::web::parse_public_url)]
    public_url: Option<String>,
    /// Shards of a new node (default: one per core).
    #[arg(long)]
    shards: Option<u32>,
    /// Keep the logs in PostgreSQL (postgres://user@host:port/database)
    /// instead of segment files under the data directory.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Largest request body accepted (413 above). [default: 16 MiB]
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Write requests processed at once (429 with Retry-After above). [default: 256]
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// A GraphQL query or mutation running longer is stopped (`query_timeout`).
    #[arg(long)]
    graphql_timeout_ms: Option<u64>,
    /// Deepest GraphQL selection nesting (`query_too_deep` above).
    #[arg(long)]
    graphql_max_depth: Option<usize>,
    /// Highest GraphQL query complexity (`query_too_complex` above).
    #[arg(long)]
    graphql_max_complexity: Option<usize>,
    /// Largest `first` of a GraphQL connection.
    #[arg(long)]
    graphql_max_page: Option<usize>,
}

impl ServeArgs {
    /// Defaults < config file < environment < these flags.
    fn config(self) -> Result<config::Config> {
        let mut c = config::Config::load(self.config.as_deref(), std::env::vars())?;
        macro_rules! over {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        over!(
            listen => listen,
            max_body_bytes => ingest.max_body_bytes,
            max_in_flight => ingest.max_in_flight,
            graphql_timeout_ms => graphql.timeout_ms,
            graphql_max_depth => graphql.max_depth,
            graphql_max_complexity => graphql.max_complexity,
            graphql_max_page => graphql.max_page,
        );
        if self.data_dir.is_some() {
            c.data_dir = self.data_dir;
        }
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        if self.shards.is_some() {
            c.shards = self.shards;
        }
        if self.store.is_some() {
            c.store.url = self.store;
        }
        c.check()?;
        Ok(c)
    }
}
