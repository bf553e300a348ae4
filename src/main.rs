//! `coldtrail`: the one binary. Thin wiring over the library crates.

mod bench;
mod bench_shards;
mod demo;
mod logs;
mod sample;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
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
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a sample cold-chain ledger (signed logger readings), audit it,
    /// and print what to run next.
    Demo(demo::Args),
    /// Create an ed25519 key file (mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit every log under a data directory: checksums, hashes, tree, signed heads.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Describe each log under a data directory.
    Inspect {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Measure the ledger: encoding, durable appends, proofs, open, disk use, audit.
    Bench(bench::Args),
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
    match cli.cmd {
        Cmd::Demo(args) => demo::run(args),
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
        Cmd::Verify { data_dir } => verify::verify(&data_dir),
        Cmd::Inspect { data_dir } => verify::inspect(&data_dir),
        Cmd::Bench(args) => bench::run(args),
    }
}
