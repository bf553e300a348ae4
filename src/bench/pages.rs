//! `coldtrail bench --only pages`: consumer pages of a served fixtures world
//! asked at a fixed rate (open loop: each request has its send time fixed in
//! advance, and its latency counts from then, so a slow answer delays none
//! after it unseen), over loopback. The baseline, in the same run and at the
//! same rate, is the node's cheapest read (`/v1/shards/0/head`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::bench::graphql::Served;
use crate::bench::lineage::{hist, ms};
use crate::bench::row;

/// Threads sending; each keeps its own schedule of `rate / SENDERS` per second.
const SENDERS: usize = 32;

struct Figures {
    /// From the scheduled send to the last byte, µs.
    latency: Histogram<u64>,
    /// The server's own `Server-Timing` for pages, µs.
    server: Histogram<u64>,
    bytes: u64,
    max_bytes: u64,
    /// Proof links on the pages, each carrying its entry's grant.
    grants: u64,
    sent: u64,
    elapsed: Duration,
}

impl Figures {
    fn new(elapsed: Duration) -> Figures {
        Figures {
            latency: hist(),
            server: hist(),
            bytes: 0,
            max_bytes: 0,
            grants: 0,
            sent: 0,
            elapsed,
        }
    }
}

/// Asks `paths` round robin at `rate` per second for `seconds`.
fn open_loop(base: &str, paths: &[String], rate: u32, seconds: u32) -> Result<Figures> {
    let per_sender = Duration::from_secs_f64(SENDERS as f64 / rate as f64);
    let count = (rate as u64 * seconds as u64) / SENDERS as u64;
    let t0 = Instant::now() + Duration::from_millis(50);
    let results: Vec<Result<Figures>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SENDERS)
            .map(|k| {
                s.spawn(move || -> Result<Figures> {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut f = Figures::new(Duration::ZERO);
                    // Senders interleave: sender k's i-th request is the
                    // (i·SENDERS + k)-th of the whole schedule.
                    let offset = per_sender.mul_f64(k as f64 / SENDERS as f64);
                    for i in 0..count {
                        let due = t0 + offset + per_sender.mul_f64(i as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let path = &paths[(i as usize * SENDERS + k) % paths.len()];
                        let mut r = agent
                            .get(format!("{base}{path}"))
                            .header("Accept", "text/html")
                            .header("Accept-Language", "en-GB,en;q=0.9")
                            .call()?;
                        anyhow::ensure!(r.status() == 200, "{path} answered {}", r.status());
                        let timing = r
                            .headers()
                            .get("server-timing")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split("dur=").nth(1))
                            .and_then(|d| d.parse::<f64>().ok());
                        let body = r.body_mut().read_to_vec()?;
                        f.latency
                            .record((due.elapsed().as_micros() as u64).max(1))?;
                        if let Some(ms) = timing {
                            f.server.record(((ms * 1e3) as u64).max(1))?;
                        }
                        f.bytes += body.len() as u64;
                        f.grants += grants_on(&body);
                        f.max_bytes = f.max_bytes.max(body.len() as u64);
                        f.sent += 1;
                    }
                    Ok(f)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender thread"))
            .collect()
    });
    let mut all = Figures::new(t0.elapsed());
    for r in results {
        let f = r?;
        all.latency.add(&f.latency)?;
        all.server.add(&f.server)?;
        all.bytes += f.bytes;
        all.max_bytes = all.max_bytes.max(f.max_bytes);
        all.grants += f.grants;
        all.sent += f.sent;
    }
    Ok(all)
}

/// How many entry grants a page hands out (one per proof link).
fn grants_on(body: &[u8]) -> u64 {
    let needle = b"data-grant=";
    body.windows(needle.len()).filter(|w| w == needle).count() as u64
}

/// The access check's own work for one page, in the same process: whether
/// the brand owner discloses the product (`Catalogue::discloses`) and a
/// grant for each proof link (`Grant::for_entry`), timed over `pages`
/// pages with the mean number of grants per page; µs per page. Without the
/// check a page would name the same entries unkeyed and render the same.
fn check_cost_per_page(
    catalogue: &web::catalogue::Catalogue,
    gtins: &[String],
    grants_per_page: f64,
) -> f64 {
    let grant = readstate::access::Grant::new([7; 32]);
    let pages = 200_000u64;
    let t = Instant::now();
    let mut kept = 0usize;
    let mut owed = 0.0;
    for i in 0..pages {
        kept += catalogue.discloses(&gtins[i as usize % gtins.len()]) as usize;
        owed += grants_per_page;
        while owed >= 1.0 {
            owed -= 1.0;
            kept += grant.for_entry((i % 2) as u32, i).len();
        }
    }
    std::hint::black_box(kept);
    t.elapsed().as_secs_f64() * 1e6 / pages as f64
}

pub fn run(root: &std::path::Path, scale: fixtures::Scale, rate: u32, seconds: u32) -> Result<()> {
    let served = Served::start(&root.join("pages"), scale, "pages")?;
    let links: Vec<gs1::DigitalLink> = served
        .world
        .lots
        .iter()
        .filter_map(|l| gs1::from_epc_urn(&l.id).ok().flatten())
        .collect();
    // The page itself, where the resolver's default link redirects.
    let paths: Vec<String> = links
        .iter()
        .map(|link| format!("{}{}", ::web::consumer::PAGE_PREFIX, link.path()))
        .collect();
    anyhow::ensure!(
        !paths.is_empty(),
        "the world has no lots with Digital Links"
    );
    // Warm: every page once (the readings index learns each logger's entries).
    open_loop(
        &served.base,
        &paths,
        200,
        (paths.len() as u32).div_ceil(200),
    )
    .context("warming the pages")?;
    let pages = open_loop(&served.base, &paths, rate, seconds)?;
    let heads = open_loop(
        &served.base,
        &["/v1/shards/0/head".to_string()],
        rate,
        seconds,
    )?;
    row(
        &format!("consumer page at {rate}/s, client"),
        ms(&pages.latency),
        format!("/v1/shards/0/head at {rate}/s: {}", ms(&heads.latency)),
    );
    row(
        "consumer page, server time",
        ms(&pages.server),
        "Server-Timing: facts, readings, HTML".into(),
    );
    row(
        "consumer page rate achieved",
        format!(
            "{:.0}/s ({} pages)",
            pages.sent as f64 / pages.elapsed.as_secs_f64(),
            pages.sent
        ),
        format!(
            "head: {:.0}/s",
            heads.sent as f64 / heads.elapsed.as_secs_f64()
        ),
    );
    row(
        "consumer page bytes (HTML with CSS)",
        format!(
            "{:.1} KiB mean, {:.1} KiB max",
            pages.bytes as f64 / pages.sent.max(1) as f64 / 1024.0,
            pages.max_bytes as f64 / 1024.0
        ),
        format!(
            "verifier scripts {:.1} KiB once, cached",
            web::assets::script_bytes() as f64 / 1024.0
        ),
    );
    let catalogue = web::catalogue::Catalogue::load(&root.join("pages"))?;
    let gtins: Vec<String> = links
        .iter()
        .filter_map(|l| l.gtin().map(str::to_string))
        .collect();
    let per_page = pages.grants as f64 / pages.sent.max(1) as f64;
    let check_us = check_cost_per_page(&catalogue, &gtins, per_page);
    let p99_us = pages.server.value_at_quantile(0.99) as f64;
    row(
        "consumer page: the access check's own work",
        format!("{check_us:.2} µs a page"),
        format!(
            "disclosure lookup and {per_page:.1} entry grants a page; {:.2} % of the page's server time at p99",
            check_us / p99_us * 100.0
        ),
    );
    served.stop()
}
