//! `coldtrail witness`: a standalone witness server (`witness` crate). It has
//! its own key and data directory and reads nothing of any node's: it is
//! told the logs to watch by their public keys, and logs (or anyone) send
//! it checkpoints to cosign over `POST /add-checkpoint`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use anyhow::{bail, Context, Result};
use ed25519_dalek::VerifyingKey;

#[derive(clap::Args)]
pub struct Args {
    /// The witness's own directory: its key (`witness.key`, made on first
    /// start) and the latest checkpoint it cosigned per log (`latest.json`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// The witness's name, a schema-less URL (its cosignatures' key name).
    #[arg(long)]
    name: String,
    /// A log to watch, by its public key (64 hex digits or a did:key), as
    /// the node's key document lists its shards' keys. Repeat for more logs.
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let logs = args
        .logs
        .iter()
        .map(|l| super::public_key("--log", l))
        .collect::<Result<Vec<_>>>()?;
    let witness =
        match witness::Witness::open(&args.data_dir, &args.name, &logs, ledger::clock::system()) {
            Ok(w) => Arc::new(w),
            Err(e) => bail!(e),
        };
    let key = witness.public_key();
    println!("witness {}", witness.name());
    println!("  public key  {}", hex::encode(key.as_bytes()));
    println!(
        "  key id      {} (cosignature/v1, type 0x04)",
        hex::encode(ledger::note::key_id(
            witness.name(),
            ledger::note::TYPE_COSIGNATURE,
            &key
        ))
    );
    for l in &logs {
        println!(
            "  watches     {}",
            ledger::note::origin(&ledger::head::log_id(l))
        );
    }
    let listener = std::net::TcpListener::bind(&args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "  listening   http://{}/add-checkpoint",
        listener.local_addr()?
    );
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || App::new().configure(witness::configure(Arc::clone(&witness))))
            .workers(2)
            .listen(listener)?
            .run()
            .await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A witness run as a child process of this binary (`demo --witnesses N`),
/// killed when dropped.
pub struct Child {
    process: std::process::Child,
    /// How the node reaches it: its URL, name and key, read from what it
    /// printed.
    pub peer: witness::client::Peer,
}

impl Child {
    /// Starts `coldtrail witness` on a free loopback port over `dir`,
    /// watching `logs`, and waits until it listens.
    pub fn spawn(dir: &std::path::Path, name: &str, logs: &[VerifyingKey]) -> Result<Child> {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.arg("witness").arg("--data-dir").arg(dir).args([
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
        ]);
        for l in logs {
            cmd.args(["--log", &hex::encode(l.as_bytes())]);
        }
        let mut process = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting a witness")?;
        let mut lines = BufReader::new(process.stdout.take().expect("piped")).lines();
        let (mut url, mut key) = (None, None);
        while url.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let _ = process.kill();
                bail!("witness {name} stopped before it listened (see its error above)");
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["public", "key", k] => key = Some(k.to_string()),
                ["listening", u] => url = Some(u.trim_end_matches("/add-checkpoint").to_string()),
                _ => {}
            }
        }
        // Whatever it prints later is read, so it never blocks on the pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Child {
            process,
            peer: witness::client::Peer {
                url: url.expect("set above"),
                name: name.to_string(),
                key: key.context("the witness printed no public key")?,
            },
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
