//! `coldtrail bench --only graphql`: an investigator's typical GraphQL query
//! (a lot with its forward trace, its breaches and a month of its readings in
//! hourly buckets) from 16 concurrent clients over loopback, against a
//! served fixtures world; the baseline, in the same run and over the same
//! lots, is the REST trace route (`/v1/trace`), which answers only the
//! trace part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::bench::lineage::{hist, ms};
use crate::bench::row;

const CLIENTS: usize = 16;

/// The query: what an investigator asks first about a lot.
const QUERY: &str = "query($lot: String!, $from: DateTime!, $to: DateTime!) {
  lot(epc: $lot) {
    id gtin quantity { value uom } origin { name } holder { name } location { id }
    status { quarantined recalled }
    trace(direction: FORWARD, first: 20) { lots { totalCount edges { node { depth lot { id holder { name } status { recalled } } } } } }
    breaches(first: 20) { totalCount edges { node { rule from to explanation device { id } entry { id } } } }
    readings(from: $from, to: $to, bucketMinutes: 60) { device { id } buckets { from minC maxC meanC count } }
  }
}";

/// The same without the trace (traces cross organisations: investigators
/// only), which a partner may ask about its own lot: the checked run.
fn partner_query() -> String {
    QUERY
        .lines()
        .filter(|l| !l.trim_start().starts_with("trace("))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `per_client` requests from each of 16 threads; latencies, requests
/// per second, and what `check` returned summed (storage reads).
fn load(
    lots: &[String],
    per_client: usize,
    ask: impl Fn(&ureq::Agent, &str) -> Result<u64> + Sync,
) -> Result<(Histogram<u64>, f64, u64)> {
    let t = Instant::now();
    let results: Vec<Result<(Histogram<u64>, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let ask = &ask;
                s.spawn(move || -> Result<(Histogram<u64>, u64)> {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c as u64);
                    let mut h = hist();
                    let mut reads = 0;
                    for _ in 0..per_client {
                        let lot = lots.choose(&mut rng).expect("lots");
                        let t = Instant::now();
                        reads += ask(&agent, lot)?;
                        h.record((t.elapsed().as_micros() as u64).max(1))?;
                    }
                    Ok((h, reads))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = t.elapsed();
    let mut all = hist();
    let mut reads = 0;
    for r in results {
        let (h, n) = r?;
        all.add(&h)?;
        reads += n;
    }
    let rate = (CLIENTS * per_client) as f64 / elapsed.as_secs_f64();
    Ok((all, rate, reads))
}

/// A fixtures world loaded into a 2-shard node under `dir`, served on
/// loopback with the rules caught up; stop it with `stop`.
pub struct Served {
    pub world: fixtures::World,
    pub base: String,
    /// An investigator's token.
    pub token: String,
    /// A partner's token for each organisation of the world, by its index.
    pub partner_tokens: Vec<String>,
    /// The world's first day, Unix ms.
    pub start: i64,
    handle: actix_web::dev::ServerHandle,
    server: std::thread::JoinHandle<Result<()>>,
}

impl Served {
    pub fn start(dir: &std::path::Path, scale: fixtures::Scale, label: &str) -> Result<Served> {
        // Worlds start on 2026-11-01, except the large one (70 days), which ends
        // a day before today: readings may not be dated ahead of the server clock.
        let start = match scale {
            fixtures::Scale::Large => {
                (ledger::clock::Clock::now_ms(&ledger::clock::SystemClock) / DAY - 71) * DAY
            }
            _ => 1_793_491_200_000,
        };
        let world = fixtures::generate(7, scale, start);
        let t = Instant::now();
        let node = crate::cmd::serve::open_node(dir, Some(2))?;
        crate::cmd::demo::write_rules(dir, &world)?;
        let tokens = api::TokenStore::new(dir, ledger::clock::system());
        let (token, _) =
            tokens.issue("urn:epc:id:sgln:0614141.00099.0", api::Role::Investigator)?;
        let partner_tokens = world
            .orgs
            .iter()
            .map(|o| Ok(tokens.issue(&o.id, api::Role::Partner)?.0))
            .collect::<Result<Vec<_>>>()?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(fixtures::load::into_node(&node, &world, 720))
            .map_err(anyhow::Error::msg)
            .context("loading the world")?;
        drop(rt);
        row(
            &format!("{label} world"),
            format!(
                "{:?}: {} lots, {} readings",
                scale,
                world.lots.len(),
                world.reading_count()
            ),
            format!("loaded in {:.1} s", t.elapsed().as_secs_f64()),
        );
        let catalogue = Arc::new(web::catalogue::Catalogue::load(dir)?);
        let (tx, rx) = std::sync::mpsc::channel();
        let server_node = Arc::clone(&node);
        let server = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let mut edge = crate::cmd::serve::Edge::on("127.0.0.1:0");
                edge.web.catalogue = catalogue;
                crate::cmd::serve::run_server(
                    move || Ok(server_node),
                    edge,
                    move |addr, handle, status| {
                        let _ = tx.send((addr, handle, status));
                    },
                )
                .await
            })
        });
        let (addr, handle, status) = rx
            .recv_timeout(Duration::from_secs(600))
            .context("the server did not start")?;
        crate::cmd::demo::wait_for_rules(&node, &status)?;
        Ok(Served {
            world,
            base: format!("http://{addr}"),
            token,
            partner_tokens,
            start,
            handle,
            server,
        })
    }

    pub fn stop(self) -> Result<()> {
        rt_stop(self.handle);
        self.server
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))?
    }
}

const DAY: i64 = 86_400_000;

pub fn run(root: &std::path::Path, scale: fixtures::Scale, per_client: usize) -> Result<()> {
    let served = Served::start(&root.join("graphql"), scale, "graphql")?;
    let (world, token, start) = (&served.world, &served.token, served.start);
    let base = &served.base;
    // The lots asked about: up to 1,000 of the world's, chosen by a seed.
    let mut lots: Vec<String> = world.lots.iter().map(|l| l.id.clone()).collect();
    lots.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    lots.truncate(1_000);
    // The world's first month.
    let month = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339()
    };
    let (from, to) = (month(start), month(start + 30 * DAY));

    // Each lot's maker, whose partner token asks for it in the checked run.
    let maker: std::collections::HashMap<&str, &str> = world
        .lots
        .iter()
        .map(|l| (l.id.as_str(), served.partner_tokens[l.origin].as_str()))
        .collect();
    let own = partner_query();
    let ask_as = |agent: &ureq::Agent, lot: &str, query: &str, token: &str| -> Result<u64> {
        let mut r = agent
            .post(format!("{base}/graphql"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(serde_json::json!({
                "query": query,
                "variables": {"lot": lot, "from": from, "to": to},
            }))?;
        let j: serde_json::Value = r.body_mut().read_json()?;
        anyhow::ensure!(j.get("errors").is_none(), "{j}");
        Ok(j["extensions"]["cost"]["storageReads"]
            .as_u64()
            .unwrap_or(0))
    };
    let graphql = |agent: &ureq::Agent, lot: &str| ask_as(agent, lot, QUERY, token);
    let own_unchecked = |agent: &ureq::Agent, lot: &str| ask_as(agent, lot, &own, token);
    let own_as_maker = |agent: &ureq::Agent, lot: &str| ask_as(agent, lot, &own, maker[lot]);
    let rest = |agent: &ureq::Agent, lot: &str| -> Result<u64> {
        let r = agent
            .get(format!("{base}/v1/trace"))
            .query("lot", lot)
            .header("Authorization", format!("Bearer {token}"))
            .call()?;
        anyhow::ensure!(r.status() == 200, "trace answered {}", r.status());
        Ok(0)
    };
    // Warm both paths once (the readings index learns each logger's entries).
    load(&lots, lots.len().div_ceil(CLIENTS), graphql)?;
    let (g, g_rate, reads) = load(&lots, per_client, graphql)?;
    let (b, b_rate, _) = load(&lots, per_client, rest)?;
    // The access check's cost: the lot's own query asked by its maker (every
    // field checked against the visibility model) and by the investigator
    // (a role comparison), rounds interleaved.
    let (mut p, mut u) = (hist(), hist());
    for _ in 0..4 {
        p.add(&load(&lots, per_client.div_ceil(4), own_as_maker)?.0)?;
        u.add(&load(&lots, per_client.div_ceil(4), own_unchecked)?.0)?;
    }
    let queries = (CLIENTS * per_client) as f64;
    row(
        "investigator query, 16 clients",
        ms(&g),
        format!("REST /v1/trace alone: {}", ms(&b)),
    );
    row(
        "investigator query throughput",
        format!("{g_rate:.0} queries/s"),
        format!("REST /v1/trace: {b_rate:.0}/s ({:.2}×)", g_rate / b_rate),
    );
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
    row(
        "a lot's own query (no trace) as its maker, 16 clients",
        ms(&p),
        format!(
            "as the investigator: {} ({:+.1} % at p99; the partner's every field is checked)",
            ms(&u),
            (p99(&p) / p99(&u) - 1.0) * 100.0
        ),
    );
    row(
        "storage reads per query (warm)",
        format!("{:.1}", reads as f64 / queries),
        "entries, proofs and heads read".into(),
    );
    served.stop()
}

fn rt_stop(handle: actix_web::dev::ServerHandle) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(handle.stop(true));
}
