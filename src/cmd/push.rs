//! `coldtrail push`: a gateway's readings file (CSV or JSON lines), signed
//! as its device and sent as binary batches, with retries under one
//! Idempotency-Key per request so nothing is applied twice.
//!
//! ## Partners outside the server (`clients/python`, `src/push.rs`, `src/mqtt_bridge.rs`)
//!
//! All three are clients of the HTTP API, never of the logs: what a partner can do, they do,
//! through the same routes and checks. The Python client reimplements the canonical batch
//! encoding from PARTNERS.md/VERIFYING.md (tests compare its bytes and signatures with the
//! ledger's); `push` reads files (`ingest::readings_file`) and signs with `DeviceClient`; the
//! bridge is a separate process (a sidecar) that maps topics to routes, uses `mqtt:{id}` as the
//! Idempotency-Key, handles messages in order on one worker, and acknowledges each only after
//! the node's answer, so the broker's at-least-once delivery becomes exactly-once in the
//! ledger. `ingest::routes::detach_writes` runs every POST as its own task, so a write is never
//! cut off between its commit and the record of its answer by a caller that hangs up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ingest::wire::{encode_binary, BINARY_BATCH};
use ingest::DeviceClient;

#[derive(clap::Args)]
pub struct Args {
    /// The node's base URL.
    #[arg(long)]
    url: String,
    /// A partner token of the device's organisation.
    #[arg(long, env = "COLDTRAIL_TOKEN", hide_env_values = true)]
    token: String,
    /// The device's key file (`coldtrail keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The device id it was registered under.
    #[arg(long)]
    device: String,
    /// Sequence number of the first reading (default: the node's next for the device).
    #[arg(long)]
    first_seq: Option<u64>,
    /// Readings per signed batch.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Signed batches per request.
    #[arg(long, default_value_t = 8)]
    batches_per_request: usize,
    /// CSV with a header row, or JSON lines (`.jsonl`); see `ingest::readings_file`.
    file: PathBuf,
}

/// Attempts per request: transport errors, 429 and 503 are retried with
/// backoff (honouring Retry-After); anything else is final.
const ATTEMPTS: u32 = 8;

/// Sends one request until it is answered for good; returns status and body.
fn send(agent: &ureq::Agent, url: &str, token: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut key = [0u8; 16];
    getrandom::getrandom(&mut key).context("making an Idempotency-Key")?;
    let key = hex::encode(key);
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let answer = agent
            .post(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", BINARY_BATCH)
            .header("Idempotency-Key", &key)
            .send(body);
        let retry_after = match answer {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = r.body_mut().read_to_string().unwrap_or_default();
                if !matches!(status, 429 | 503) || attempt == ATTEMPTS {
                    return Ok((status, text));
                }
                wait
            }
            Err(e) if attempt == ATTEMPTS => return Err(e).with_context(|| format!("POST {url}")),
            Err(e) => {
                tracing::warn!("POST {url}: {e}; retrying");
                None
            }
        };
        std::thread::sleep(retry_after.unwrap_or(delay));
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    unreachable!("the last attempt returns")
}

/// The node's next sequence number for `device`.
fn next_seq(agent: &ureq::Agent, base: &str, token: &str, device: &str) -> Result<u64> {
    let url = format!("{base}/v1/devices/{}", api::params::percent_encode(device));
    let mut r = agent
        .get(&url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        bail!("GET {url}: {status} {text}");
    }
    let j: serde_json::Value = serde_json::from_str(&text)?;
    j["next_seq"]
        .as_u64()
        .with_context(|| format!("GET {url}: no next_seq in {text}"))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.batch_size == 0 || args.batches_per_request == 0 {
        bail!("--batch-size and --batches-per-request must be at least 1");
    }
    let path = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {path}"))?;
    let readings = ingest::readings_file::parse(&path, &bytes)?;
    if readings.is_empty() {
        bail!("{path} holds no readings");
    }
    let key = ledger::keys::read_key_file(&args.key)?;
    let base = args.url.trim_end_matches('/');
    let agent = crate::cmd::loadgen::agent();
    let first = match args.first_seq {
        Some(n) => n,
        None => next_seq(&agent, base, &args.token, &args.device)?,
    };
    let mut device = DeviceClient::new(&args.device, key).starting_at(first);
    let batches: Vec<_> = readings
        .chunks(args.batch_size)
        .map(|chunk| device.sign(chunk.to_vec()))
        .collect();
    let url = format!("{base}/v1/batches");
    let mut entries = 0;
    for group in batches.chunks(args.batches_per_request) {
        let (status, text) = send(&agent, &url, &args.token, &encode_binary(group))?;
        if status != 201 {
            eprintln!("refused: {status} {text}");
            eprintln!(
                "{entries} entries were committed before; the device's next sequence number is {}",
                group[0].batch.first_seq
            );
            return Ok(ExitCode::from(1));
        }
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        entries += answer["entries"].as_array().map_or(0, Vec::len);
        println!("{text}");
    }
    eprintln!(
        "pushed {} readings of {} from {path} in {} batches ({entries} entries); next sequence number {}",
        readings.len(),
        args.device,
        batches.len(),
        first + readings.len() as u64
    );
    Ok(ExitCode::SUCCESS)
}
