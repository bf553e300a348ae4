//! `coldtrail loadgen`: signed, realistic batches from many devices over
//! concurrent connections; prints readings/s and acknowledgement latency.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use ingest::wire::{encode_binary, encode_json, BINARY_BATCH};

use fixtures::Device;
use ledger::entry::SignedBatch;

#[derive(clap::Args)]
pub struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, required_unless_present = "csv_out")]
    target: Option<String>,
    /// A partner token (`coldtrail token issue`).
    #[arg(long, required_unless_present = "csv_out")]
    token: Option<String>,
    /// Instead of sending: write `--readings` of the same generated readings
    /// as CSV (for loading a baseline database with COPY), and exit.
    #[arg(long)]
    csv_out: Option<std::path::PathBuf>,
    /// With `--csv-out`: how many readings.
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// How long to send, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Simulated loggers (registered first under fresh ids).
    #[arg(long, default_value_t = 200)]
    devices: u32,
    /// Readings per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// `binary` or `json`.
    #[arg(long, default_value = "binary", value_parser = ["binary", "json"])]
    format: String,
    /// Target readings/s (paced); unlimited if not given. Paced connections
    /// are spread evenly over the interval, and a batch's latency counts from
    /// when it was due, not from when it was sent.
    #[arg(long)]
    rate: Option<u64>,
    /// Print one JSON line of results instead of the table.
    #[arg(long)]
    json: bool,
    /// Publish batches to this MQTT broker (`mqtt://host:port`) for a
    /// `coldtrail mqtt-bridge` instead of POSTing them; an acknowledgement is
    /// the bridge's answer on the reply topic. Devices are still registered
    /// over HTTP at `--target`.
    #[arg(long)]
    mqtt: Option<String>,
    /// With `--mqtt`: the organisation the token belongs to (its topic).
    #[arg(long, requires = "mqtt")]
    org: Option<String>,
    /// With `--rate`: sign every batch of the run before the clock starts,
    /// so signing does not take CPU from the server while it is measured.
    #[arg(long, requires = "rate")]
    presign: bool,
    /// Send each batch over HTTP with an Idempotency-Key of its own, as the
    /// partner clients do: the node then records the key's intent and
    /// answer (two journal flushes) besides the commit.
    #[arg(long)]
    keyed: bool,
    /// With `--mqtt`: the bridge's topic prefix.
    #[arg(long, default_value = "coldtrail")]
    prefix: String,
}

/// Where batches go, and what counts as their acknowledgement.
enum Transport {
    Http { base: String, token: String },
    Mqtt(Mqtt),
}

/// One MQTT connection shared by the load threads: each publishes a batch
/// under its own id and waits for the bridge's answer to that id.
struct Mqtt {
    client: rumqttc::Client,
    waiting: Arc<Mutex<std::collections::HashMap<String, std::sync::mpsc::Sender<Vec<u8>>>>>,
    topic: String,
}

impl Mqtt {
    fn connect(broker: &str, org: &str, prefix: &str, run_tag: u128) -> Result<Mqtt> {
        let options = crate::cmd::mqtt_bridge::options(&format!("ct-loadgen-{run_tag}"), broker)?;
        let (client, mut connection) = crate::cmd::mqtt_bridge::connect(options, 1024);
        client.subscribe(
            format!("{prefix}/out/{org}/batches/+"),
            rumqttc::QoS::AtLeastOnce,
        )?;
        let waiting: Arc<
            Mutex<std::collections::HashMap<String, std::sync::mpsc::Sender<Vec<u8>>>>,
        > = Arc::default();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let w = Arc::clone(&waiting);
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let id = p.topic.rsplit('/').next().unwrap_or("").to_string();
                        if let Some(tx) = w.lock().expect("waiting lock").remove(&id) {
                            let _ = tx.send(p.payload.to_vec());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .context("subscribing to the bridge's answers")?;
        Ok(Mqtt {
            client,
            waiting,
            topic: format!("{prefix}/in/{org}/batches"),
        })
    }

    /// Publishes and waits for the answer; true when it committed.
    fn send(&self, id: &str, body: Vec<u8>) -> Result<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.waiting
            .lock()
            .expect("waiting lock")
            .insert(id.to_string(), tx);
        self.client.publish(
            format!("{}/{id}", self.topic),
            rumqttc::QoS::AtLeastOnce,
            false,
            body,
        )?;
        let answer = rx
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("no answer from the bridge for {id} within 60 s"))?;
        let j: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        if j["entries"].is_array() {
            return Ok(true);
        }
        bail!("batch {id} refused: {j}")
    }
}

/// A standalone fixtures logger and its signed-batch stream.
pub struct Logger {
    pub device: Device,
    batches: Box<dyn FnMut(usize) -> SignedBatch + Send>,
}

impl Logger {
    /// Logger `n` of a load run: setpoints cycle through chilled, seafood,
    /// frozen and vaccine profiles.
    pub fn new(id: String, seed: u64, n: u32, start_ms: i64) -> Logger {
        let setpoint = [2.0, 0.0, -22.0, 5.0][n as usize % 4];
        let device = Device::standalone(id, seed ^ (u64::from(n) << 32), setpoint, start_ms);
        let mut stream = fixtures::readings(&device, &[]);
        let mut client = ingest::DeviceClient::new(device.id.clone(), device.key());
        Logger {
            device,
            batches: Box::new(move |n| client.sign(stream.by_ref().take(n).collect())),
        }
    }

    /// The next `n` readings, signed.
    pub fn next_batch(&mut self, n: usize) -> SignedBatch {
        (self.batches)(n)
    }
}

/// Acknowledgement latencies of a run, in µs.
struct Latencies {
    /// From when each batch was due (paced) or sent (unpaced): the figure
    /// reported, so a slow answer also counts against the batches it held up.
    from_due: Histogram<u64>,
    /// From when the request went out: without the sender's own lateness.
    from_send: Histogram<u64>,
    /// How late paced senders were (woken late, or held up by a slow answer).
    late: Histogram<u64>,
}

impl Latencies {
    fn new() -> Result<Latencies> {
        let h = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
        Ok(Latencies {
            from_due: h()?,
            from_send: h()?,
            late: h()?,
        })
    }

    fn record(&mut self, due: Option<Instant>, sent: Instant) -> Result<()> {
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        let due = due.unwrap_or(sent);
        self.from_due.record(us(due.elapsed()))?;
        self.from_send.record(us(sent.elapsed()))?;
        self.late.record(us(sent.saturating_duration_since(due)))?;
        Ok(())
    }
}

/// An HTTP agent that hands 4xx/5xx answers back instead of failing.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Writes the generated readings as CSV: device, seq, time_ms, temp_centi_c,
/// humidity_permille, door_open, shock_centi_g, battery_mv.
fn write_csv(args: &Args, path: &std::path::Path) -> Result<ExitCode> {
    use std::io::Write;
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 365 * 86_400_000;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut loggers: Vec<Logger> = (0..args.devices)
        .map(|n| {
            Logger::new(
                format!("urn:epc:id:giai:0614141.csv-{n:05}"),
                1,
                n,
                start_ms,
            )
        })
        .collect();
    let mut written = 0u64;
    'outer: loop {
        for l in &mut loggers {
            let s = l.next_batch(args.batch);
            let b = &s.batch;
            for (i, r) in b.readings.iter().enumerate() {
                let opt = |v: Option<String>| v.unwrap_or_default();
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    b.device,
                    b.first_seq + i as u64,
                    r.time_ms,
                    r.temp_centi_c,
                    opt(r.humidity_permille.map(|v| v.to_string())),
                    opt(r.door_open.map(|v| v.to_string())),
                    opt(r.shock_centi_g.map(|v| v.to_string())),
                    opt(r.battery_mv.map(|v| v.to_string()))
                )?;
                written += 1;
                if written >= args.readings {
                    break 'outer;
                }
            }
        }
    }
    out.flush()?;
    println!("wrote {written} readings to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.connections == 0 || args.devices == 0 || args.batch == 0 {
        bail!("--connections, --devices and --batch must be positive");
    }
    if let Some(path) = &args.csv_out {
        return write_csv(&args, path);
    }
    let (Some(target), Some(token)) = (args.target.clone(), args.token.clone()) else {
        bail!("--target and --token are needed to send");
    };
    let run_tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000_000;
    let base = target.trim_end_matches('/').to_string();
    let loggers = register_loggers(&args, &base, &token, run_tag)?;
    let binary = args.format == "binary";
    let transport = match (&args.mqtt, &args.org) {
        (Some(broker), Some(org)) => {
            if !binary {
                bail!("--mqtt sends binary batches");
            }
            Transport::Mqtt(Mqtt::connect(broker, org, &args.prefix, run_tag)?)
        }
        (Some(_), None) => bail!("--mqtt needs --org (the token's organisation)"),
        _ => Transport::Http { base, token },
    };
    let per_conn: Vec<Vec<Logger>> = {
        let mut v: Vec<Vec<Logger>> = (0..args.connections).map(|_| Vec::new()).collect();
        for (i, l) in loggers.into_iter().enumerate() {
            v[i % args.connections].push(l);
        }
        v.into_iter().filter(|l| !l.is_empty()).collect()
    };
    // Each connection paces itself to its share of the target rate.
    let interval = args.rate.map(|r| {
        Duration::from_secs_f64(args.batch as f64 * args.connections as f64 / r.max(1) as f64)
    });
    let run = Arc::new(Run {
        tally: Mutex::new(Latencies::new()?),
        readings: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        // Every sender (and this thread) starts the clock together, after any
        // pre-signing.
        start_line: std::sync::Barrier::new(per_conn.len() + 1),
        transport,
        batch: args.batch,
        binary,
        interval,
        // Batches each sender sends in the run when paced (and a few spare).
        paced_batches: interval
            .map(|iv| (args.duration.as_secs_f64() / iv.as_secs_f64()) as usize + 2),
        presign: args.presign,
        keyed: args.keyed,
        run_tag,
        senders: per_conn.len() as u32,
    });
    let threads: Vec<_> = per_conn
        .into_iter()
        .enumerate()
        .map(|(c, loggers)| {
            let run = Arc::clone(&run);
            std::thread::spawn(move || run.send_loop(c as u32, loggers))
        })
        .collect();
    run.start_line.wait();
    let started = Instant::now();
    std::thread::sleep(args.duration);
    run.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread")?;
    }
    report(&args, &run, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// `--devices` fresh loggers, each registered at the node before the run.
fn register_loggers(args: &Args, base: &str, token: &str, run_tag: u128) -> Result<Vec<Logger>> {
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 365 * 86_400_000;
    let registrar = agent();
    let mut loggers = Vec::with_capacity(args.devices as usize);
    for n in 0..args.devices {
        let l = Logger::new(
            format!("urn:epc:id:giai:0614141.lg{run_tag}-{n:05}"),
            run_tag as u64,
            n,
            start_ms,
        );
        let body = serde_json::json!({"device": l.device.id, "public_key": ledger::keys::did_key(&l.device.key().verifying_key()), "active_from_ms": start_ms});
        let mut r = registrar
            .post(format!("{base}/v1/devices"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .with_context(|| format!("registering devices at {base}"))?;
        if r.status() != 201 {
            bail!(
                "registering {} failed: {} {}",
                l.device.id,
                r.status(),
                r.body_mut().read_to_string().unwrap_or_default()
            );
        }
        loggers.push(l);
    }
    Ok(loggers)
}

/// What the sender threads share: the run's settings and its tallies.
struct Run {
    tally: Mutex<Latencies>,
    readings: AtomicU64,
    refused: AtomicU64,
    stop: AtomicBool,
    start_line: std::sync::Barrier,
    transport: Transport,
    batch: usize,
    binary: bool,
    interval: Option<Duration>,
    paced_batches: Option<usize>,
    presign: bool,
    keyed: bool,
    run_tag: u128,
    senders: u32,
}

impl Run {
    /// Sender `c`: sends its loggers' batches in turn until the run stops.
    fn send_loop(&self, c: u32, mut loggers: Vec<Logger>) -> Result<()> {
        let agent = agent();
        let mut signed_ahead = std::collections::VecDeque::new();
        if let (true, Some(n)) = (self.presign, self.paced_batches) {
            for k in 0..n {
                let i = k % loggers.len();
                signed_ahead.push_back(loggers[i].next_batch(self.batch));
            }
        }
        self.start_line.wait();
        // Paced senders are spread evenly over one interval: a fleet's
        // batches do not all arrive in the same instant, and bursts of
        // every connection at once would measure the burst, not the rate.
        let mut next_send = Instant::now()
            + self
                .interval
                .map_or(Duration::ZERO, |iv| iv * c / self.senders);
        let mut k = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let i = k % loggers.len();
            k += 1;
            let signed = if self.presign {
                match signed_ahead.pop_front() {
                    Some(s) => s,
                    None => break,
                }
            } else {
                loggers[i].next_batch(self.batch)
            };
            let (ct, body) = if self.binary {
                (BINARY_BATCH, encode_binary(std::slice::from_ref(&signed)))
            } else {
                (
                    "application/json",
                    encode_json(std::slice::from_ref(&signed)),
                )
            };
            // Paced, a batch's latency counts from when it was due, so a
            // slow answer also counts against the batches it held up.
            let mut due = None;
            if let Some(iv) = self.interval {
                let now = Instant::now();
                if next_send > now {
                    std::thread::sleep(next_send - now);
                }
                due = Some(next_send);
                next_send += iv;
            }
            match &self.transport {
                Transport::Http { base, token } => {
                    let key = self
                        .keyed
                        .then(|| format!("loadgen-{}-{}-{k}", self.run_tag, signed.batch.device));
                    self.post(&agent, (base, token), (ct, &body), key.as_deref(), due)?;
                }
                Transport::Mqtt(mqtt) => {
                    let sent = Instant::now();
                    let id = format!("{}-{k}", signed.batch.device.replace(['/', '+', '#'], "_"));
                    mqtt.send(&id, body)?;
                    self.acknowledged(due, sent)?;
                }
            }
        }
        Ok(())
    }

    /// POSTs one batch, retrying on 429/503 (the batch was not written).
    fn post(
        &self,
        agent: &ureq::Agent,
        (base, token): (&str, &str),
        (ct, body): (&str, &[u8]),
        idempotency_key: Option<&str>,
        due: Option<Instant>,
    ) -> Result<()> {
        loop {
            let mut request = agent
                .post(format!("{base}/v1/batches"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", ct);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let sent = Instant::now();
            let mut r = request.send(body)?;
            let status = r.status().as_u16();
            if status == 201 {
                return self.acknowledged(due, sent);
            }
            if status == 429 || status == 503 {
                self.refused.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            bail!(
                "batch refused: {status} {}",
                r.body_mut().read_to_string().unwrap_or_default()
            );
        }
    }

    fn acknowledged(&self, due: Option<Instant>, sent: Instant) -> Result<()> {
        self.tally
            .lock()
            .expect("histogram lock")
            .record(due, sent)?;
        self.readings
            .fetch_add(self.batch as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Prints the run's figures: a table, or one JSON line with `--json`.
fn report(args: &Args, run: &Run, secs: f64) {
    let latencies = run.tally.lock().expect("histogram lock");
    let h = &latencies.from_due;
    let n = run.readings.load(Ordering::Relaxed);
    let refused = run.refused.load(Ordering::Relaxed);
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "format": args.format, "presigned": args.presign, "transport": if args.mqtt.is_some() { "mqtt" } else { "http" }, "readings": n, "seconds": secs, "readings_per_s": n as f64 / secs,
                "batches": h.len(), "refused_429_503": refused,
                "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0,
                "p99_from_send_ms": p99(&latencies.from_send), "late_p99_ms": p99(&latencies.late)
            })
        );
        return;
    }
    println!(
        "{} batches of {} readings ({}), {} connections, {:.1} s",
        h.len(),
        args.batch,
        args.format,
        args.connections,
        secs
    );
    println!("  readings/s      {:.0}", n as f64 / secs);
    println!(
        "  ack latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    if args.rate.is_some() {
        println!(
            "  of which         p99 {:.2} ms from the send itself; senders late by p99 {:.2} ms",
            p99(&latencies.from_send),
            p99(&latencies.late)
        );
    }
    println!("  refused (retried) {refused}");
}
