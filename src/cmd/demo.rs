//! `coldtrail demo`: the demo world, pushed through the real HTTP API of a
//! server on embedded storage, then served until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use api::{Role, TokenStore};
use fixtures::{generate, Scale, World};
use indicatif::{ProgressBar, ProgressStyle};
use ingest::wire::{encode_binary, BINARY_BATCH};
use ledger::entry::{Entry, IdentityChange};
use shards::Node;

use crate::cmd::serve::{open_node, run_server};

#[derive(clap::Args)]
pub struct Args {
    /// Where to keep the ledger; a new temporary directory if not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The public base URL pages and QR codes are written under, as
    /// `serve --public-url` (default: the address served on).
    #[arg(long, value_parser = ::web::parse_public_url)]
    public_url: Option<String>,
    /// How big a world: tiny, demo or large.
    #[arg(long, default_value = "demo")]
    scale: Scale,
    /// Same seed, same world.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Shards of a new node (default: one per core); existing data keeps its count.
    #[arg(long)]
    shards: Option<u32>,
    /// Stop once the world is loaded (for scripts), instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_load: bool,
    /// The world's first day (UTC), YYYY-MM-DD. Default: 2026-11-01, or, for
    /// a world that would not have ended by yesterday from then, the day that
    /// makes it end before yesterday. A node refuses readings from its
    /// future, so a start that makes the world end after today is refused
    /// before anything is loaded.
    #[arg(long, value_parser = parse_day)]
    start: Option<i64>,
    /// Local witnesses to start beside the node (`coldtrail witness`
    /// processes, data under DATA_DIR/witnesses), with a policy that a
    /// majority of them cosign each checkpoint.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=9))]
    witnesses: u32,
}

/// Starts `n` local witnesses of `node`'s logs; prints who they are.
fn start_witnesses(
    node: &Node,
    data_dir: &Path,
    n: u32,
) -> Result<(
    Vec<crate::cmd::witness::Child>,
    Option<crate::witnessing::Witnessing>,
)> {
    if n == 0 {
        return Ok((Vec::new(), None));
    }
    let children = (1..=n)
        .map(|i| {
            crate::cmd::witness::Child::spawn(
                &data_dir.join("witnesses").join(format!("w{i}")),
                &format!("witness-{i}.demo.coldtrail.example"),
                node.keys(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let witnessing = crate::witnessing::Witnessing {
        peers: children.iter().map(|c| c.peer.clone()).collect(),
        every: Duration::from_secs(1),
        quorum: n / 2 + 1,
    };
    println!(
        "coldtrail demo: {n} witnesses, {} of which must cosign each checkpoint:",
        witnessing.quorum
    );
    for c in &children {
        println!("  {}  key {}  at {}", c.peer.name, c.peer.key, c.peer.url);
    }
    Ok((children, Some(witnessing)))
}

/// The world to load: from `start` if given, which must let the whole world
/// lie before `now_ms` (said now rather than after minutes of loading, when
/// the node would refuse the first reading from its future), else from the
/// default start ([`fixtures::generate_in_past`]).
pub fn world_to_load(seed: u64, scale: Scale, start: Option<i64>, now_ms: i64) -> Result<World> {
    let Some(start) = start else {
        return Ok(fixtures::generate_in_past(seed, scale, now_ms));
    };
    let world = generate(seed, scale, start);
    if world.end_ms() > now_ms {
        let day = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
        };
        let latest = fixtures::generate_in_past(seed, scale, now_ms).start_ms;
        bail!(
            "the {scale:?} world from {} runs until {}, after now ({}): the node would refuse its later readings as from its future; start it on {} or earlier, or leave --start out",
            day(start),
            day(world.end_ms()),
            day(now_ms),
            day(latest),
        );
    }
    Ok(world)
}

/// A day (YYYY-MM-DD, UTC) as Unix epoch milliseconds.
pub fn parse_day(s: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?}: {e}; write the day as YYYY-MM-DD"))
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis()
        })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> Result<serde_json::Value> {
    for attempt in 0.. {
        let mut r = agent
            .post(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .send(body)
            .with_context(|| format!("POST {url}"))?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        match status {
            200..=299 => return Ok(serde_json::from_str(&text).unwrap_or_default()),
            // Overload: nothing was written; wait and send again.
            429 | 503 if attempt < 100 => std::thread::sleep(Duration::from_millis(20)),
            _ => bail!("POST {url}: {status} {text}"),
        }
    }
    unreachable!("the loop returns or bails")
}

/// Registers the world's organisations directly (an operator's job, done
/// before the server takes the node) and issues each a partner token.
/// The demo's recall investigator: not part of the world, so its truth stays the world's.
const INVESTIGATOR: &str = "urn:epc:id:sgln:0614141.00099.0";

/// Partner tokens, one per organisation, and an investigator token.
struct Tokens {
    partners: Vec<String>,
    investigator: String,
}

async fn provision(node: &Node, world: &World) -> Result<Tokens> {
    let tokens = TokenStore::new(node.data_dir(), std::sync::Arc::clone(node.clock()));
    let entry = Entry::Identity(IdentityChange::OrgRegistered {
        org: INVESTIGATOR.into(),
        name: "Food safety authority (demo)".into(),
        role: ledger::entry::OrgRole::Investigator,
        at_ms: world.start_ms,
    });
    node.append(INVESTIGATOR, vec![entry]).await?;
    let investigator = tokens.issue(INVESTIGATOR, Role::Investigator)?.0;
    fixtures::load::register_orgs(node, world)
        .await
        .map_err(anyhow::Error::msg)?;
    let partners = world
        .orgs
        .iter()
        .map(|org| Ok(tokens.issue(&org.id, Role::Partner)?.0))
        .collect::<Result<Vec<String>>>()?;
    Ok(Tokens {
        partners,
        investigator,
    })
}

/// A partner's token and a command that captures an EPCIS event with it, so a
/// newcomer can push something into the running demo.
fn print_partner_try(base: &str, world: &World, token: &str) {
    let org = &world.orgs[0];
    let doc = serde_json::json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T10:00:00Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent",
            "eventTime": "2026-11-20T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "readPoint": {"id": org.id},
            "quantityList": [{"epcClass": world.truth.contaminated_lot, "quantity": 1, "uom": "KGM"}]
        }]}
    });
    println!("  partner         token {token} ({})", org.name);
    println!(
        "  capture         curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/ld+json' -d '{doc}' {base}/capture"
    );
}

/// Opens a recall of the world's contaminated lot through the API and prints
/// what it names.
fn open_recall(base: &str, token: &str, world: &World) -> Result<()> {
    let lot = &world.truth.contaminated_lot;
    let body = serde_json::json!({"lot": lot, "reason": "Listeria monocytogenes found in a retained sample of the source lot (demo)"});
    let answer = post(
        &agent(),
        &format!("{base}/v1/recalls"),
        token,
        "application/json",
        body.to_string().as_bytes(),
    )?;
    let recall = &answer["recall"]["recall"];
    let affected: Vec<&str> = recall["affected"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    println!(
        "  recall          opened {} for {lot}: {} lots ({} descend from it)",
        recall["id"].as_str().unwrap_or("?"),
        affected.len(),
        affected.len().saturating_sub(1)
    );
    for l in &affected {
        println!("    {l}");
    }
    Ok(())
}

/// Pushes devices, events and every device's signed batches through the API.
fn load(base: &str, world: &World, tokens: &Tokens) -> Result<(u64, Option<serde_json::Value>)> {
    let tokens = &tokens.partners;
    let registrar = agent();
    for d in &world.devices {
        // Each logger's key is valid from its deployment: the world's
        // readings are weeks old when they are pushed.
        let body = serde_json::json!({"device": d.id, "public_key": ledger::keys::did_key(&d.key().verifying_key()), "active_from_ms": d.from_ms});
        post(
            &registrar,
            &format!("{base}/v1/devices"),
            &tokens[d.owner],
            "application/json",
            body.to_string().as_bytes(),
        )?;
    }
    for (org, doc) in world.documents() {
        post(
            &registrar,
            &format!("{base}/capture"),
            &tokens[org],
            "application/ld+json",
            doc.to_string().as_bytes(),
        )?;
    }
    let total = world.reading_count();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} pushing signed readings over HTTP [{bar:30}] {human_pos}/{human_len} {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let sent = AtomicU64::new(0);
    let example = std::sync::Mutex::new(None);
    let next = AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let agent = agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(d) = world.devices.get(i) else {
                            return Ok(());
                        };
                        for batch in world.signed_batches(d, 720) {
                            let n = batch.batch.readings.len() as u64;
                            let answer = post(
                                &agent,
                                &format!("{base}/v1/batches"),
                                &tokens[d.owner],
                                BINARY_BATCH,
                                &encode_binary(&[batch]),
                            )?;
                            example.lock().expect("example lock").get_or_insert(answer);
                            sent.fetch_add(n, Ordering::Relaxed);
                            bar.inc(n);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("push thread")?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok((
        sent.load(Ordering::Relaxed),
        example.into_inner().expect("example lock"),
    ))
}

/// Maps the world's products to the rules profiles that judge them
/// (`rules.json`, read by the analytics consumer when the server starts).
pub(crate) fn write_rules(data_dir: &Path, world: &World) -> Result<()> {
    let mut config = analytics::RulesConfig::default();
    for p in &world.products {
        config
            .products
            .insert(p.gtin.clone(), p.profile.rules.to_string());
    }
    config.validate()?;
    let path = data_dir.join(analytics::profile::RULES_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    // The products' names and disclosure, as their brand owners would publish them.
    let names = world
        .products
        .iter()
        .map(|p| {
            let names = [("en", p.name), ("de", p.name_de)]
                .into_iter()
                .map(|(l, n)| (l.to_string(), n.to_string()))
                .collect();
            // The demo's brand owners publish their products' records.
            let product = ::web::catalogue::Product::Full {
                names,
                disclose: true,
            };
            (p.gtin.clone(), product)
        })
        .collect();
    ::web::catalogue::Catalogue::write(data_dir, &names)?;
    // And each organisation's site, as it would publish it.
    let places = world
        .orgs
        .iter()
        .map(|o| {
            let place = ::web::catalogue::Place {
                address: o.address.to_string(),
                phone: o.phone.to_string(),
            };
            (o.gln.clone(), place)
        })
        .collect();
    ::web::catalogue::Catalogue::write_places(data_dir, &places)?;
    Ok(())
}

/// Waits until the rules have consumed (and flushed) everything committed,
/// including the verdicts they appended themselves.
pub(crate) fn wait_for_rules(node: &Node, rules: &analytics::consumer::Status) -> Result<()> {
    let bar = ProgressBar::new_spinner()
        .with_message("running the cold-chain rules over what was loaded");
    loop {
        if let Some(e) = rules.failed() {
            bail!("the analytics consumer stopped: {e}");
        }
        if rules.caught_up_with(node) {
            // Settled: nothing appended since the last look.
            std::thread::sleep(Duration::from_millis(200));
            if rules.caught_up_with(node) {
                break;
            }
        }
        bar.tick();
        std::thread::sleep(Duration::from_millis(50));
    }
    bar.finish_and_clear();
    Ok(())
}

/// Prints the breaches the rules recorded.
fn print_breaches(data_dir: &Path, world: &World) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(async {
        let ctx = analytics::sql::session(&analytics::persist::analytics_dir(data_dir), Vec::new()).await?;
        let df = ctx
            .sql("SELECT rule, explanation FROM verdicts WHERE kind = 'breach' GROUP BY rule, explanation ORDER BY min(from_time)")
            .await?;
        anyhow::Ok(df.collect().await?)
    })?;
    use analytics::datafusion::arrow::array::AsArray;
    let mut lines = Vec::new();
    for b in &rows {
        for r in 0..b.num_rows() {
            lines.push(format!(
                "{:<22} {}",
                b.column(0).as_string::<i32>().value(r),
                b.column(1).as_string::<i32>().value(r)
            ));
        }
    }
    println!(
        "  rules           {} breaches found ({} incidents were injected into the world):",
        lines.len(),
        world.truth.incidents.len()
    );
    for l in lines.iter().take(20) {
        println!("    {l}");
    }
    if lines.len() > 20 {
        println!(
            "    … {} more: coldtrail breaches --data-dir {}",
            lines.len() - 20,
            data_dir.display()
        );
    }
    Ok(())
}

fn fresh(dir: &Path) -> bool {
    !dir.join("NODE").exists()
}

pub fn run(args: Args) -> Result<ExitCode> {
    let data_dir = match args.data_dir.clone() {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("coldtrail-demo-")
            .tempdir()?
            .keep(),
    };
    let new = fresh(&data_dir);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let world = if new {
        world_to_load(args.seed, args.scale, args.start, now_ms)?
    } else {
        // Nothing is loaded into an existing node; the world only names things.
        generate(
            args.seed,
            args.scale,
            args.start.unwrap_or(fixtures::DEFAULT_START_MS),
        )
    };
    actix_web::rt::System::new().block_on(async move {
        let node = open_node(&data_dir, args.shards)?;
        // Stopped (killed) when the demo ends.
        let (_witnesses, witnessing) = start_witnesses(&node, &data_dir, args.witnesses)?;
        if new {
            write_rules(&data_dir, &world)?;
        }
        let tokens = if new { Some(provision(&node, &world).await?) } else { None };
        let world = Arc::new(world);
        let loaded: Arc<std::sync::Mutex<Option<Result<()>>>> = Arc::default();
        let done = Arc::clone(&loaded);
        let dir_for_print = data_dir.clone();
        let exit_after_load = args.exit_after_load;
        let relay_node = Arc::clone(&node);
        let edge = crate::cmd::serve::Edge {
            web: ::web::Options {
                public_url: args.public_url.clone(),
                catalogue: Arc::new(::web::catalogue::Catalogue::load(&data_dir)?),
            },
            witnesses: witnessing,
            ..crate::cmd::serve::Edge::on(&args.listen)
        };
        let public_url = args.public_url.clone();
        let server_node = Arc::clone(&node);
        run_server(move || Ok(server_node), edge, move |addr, handle, rules| {
            let base = format!("http://{addr}");
            let public = public_url.unwrap_or_else(|| base.clone());
            let node = relay_node;
            std::thread::spawn(move || {
                let result = (|| -> Result<()> {
                    match &tokens {
                        Some(tokens) => {
                            println!(
                                "coldtrail demo: loading the {:?} world (seed {}, from {}) into {} through {base}",
                                world.scale,
                                world.seed,
                                chrono::DateTime::from_timestamp_millis(world.start_ms).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string()),
                                dir_for_print.display()
                            );
                            let (readings, example) = load(&base, &world, tokens)?;
                            // Let the relay carry every receipt home before saying "loaded".
                            while node.pending_receipts() > 0 {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            wait_for_rules(&node, &rules)?;
                            print_breaches(&dir_for_print, &world)?;
                            open_recall(&base, &tokens.investigator, &world)?;
                            print_next(&base, &dir_for_print, &world, readings, example.as_ref());
                            print_partner_try(&base, &world, &tokens.partners[0]);
                            print_pages(&base, &public, &tokens.investigator, &world)?;
                            println!("  investigator    token {} (traces, recalls)", tokens.investigator);
                            println!(
                                "  trace           curl -s -H 'Authorization: Bearer {}' '{base}/v1/trace?lot={}&direction=forward'",
                                tokens.investigator,
                                world.truth.contaminated_lot
                            );
                            println!("  GraphQL         {base}/graphql   (GraphiQL: open it in a browser and give it the token {})", tokens.investigator);
                            println!(
                                "  ask GraphQL     curl -s -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' {base}/graphql -d '{{\"query\":\"{{ lot(epc: \\\"{}\\\") {{ holder {{ name }} status {{ quarantined recalled }} breaches {{ totalCount edges {{ node {{ rule explanation }} }} }} }} }}\"}}'",
                                tokens.investigator,
                                world.truth.contaminated_lot
                            );
                        }
                        None => {
                            println!("coldtrail demo: {} already holds a node; serving it as it is", dir_for_print.display());
                            print_next(&base, &dir_for_print, &world, 0, None);
                        }
                    }
                    Ok(())
                })();
                let failed = result.is_err();
                *done.lock().expect("result lock") = Some(result);
                if exit_after_load || failed {
                    // Graceful: the logs close and sign their heads.
                    actix_web::rt::System::new().block_on(handle.stop(true));
                } else {
                    println!("serving until Ctrl-C");
                }
            });
        })
        .await?;
        let outcome = loaded.lock().expect("result lock").take();
        match outcome {
            Some(Err(e)) => Err(e),
            _ => Ok(ExitCode::SUCCESS),
        }
    })
}

/// The consumer pages of a clean lot, a breached lot (by the rules'
/// verdicts, asked of the node's GraphQL) and the recalled lot, with a QR code.
fn print_pages(base: &str, public: &str, investigator: &str, world: &World) -> Result<()> {
    let body = serde_json::json!({ "query": "{ breaches(first: 100) { edges { node { lot { id } } } } }" });
    let answer: serde_json::Value = agent()
        .post(format!("{base}/graphql"))
        .header("Authorization", format!("Bearer {investigator}"))
        .send_json(&body)?
        .body_mut()
        .read_json()?;
    let breached: std::collections::BTreeSet<&str> = answer["data"]["breaches"]["edges"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["node"]["lot"]["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let recalled = &world.truth.contaminated_lot;
    let in_recall = |id: &String| id == recalled || world.truth.affected_lots.contains(id);
    let clean = world
        .lots
        .iter()
        .find(|l| !breached.contains(l.id.as_str()) && !in_recall(&l.id));
    let bad = world
        .lots
        .iter()
        .find(|l| breached.contains(l.id.as_str()) && !in_recall(&l.id));
    for (what, lot) in [
        ("a clean lot", clean.map(|l| &l.id)),
        ("a breached lot", bad.map(|l| &l.id)),
        ("the recalled lot", Some(recalled)),
    ] {
        if let Some(Ok(Some(link))) = lot.map(|id| gs1::from_epc_urn(id)) {
            println!(
                "  consumer page   {public}{}   ({what}, as its QR code opens it)",
                link.path()
            );
        }
    }
    if let Ok(Some(link)) = gs1::from_epc_urn(recalled) {
        println!(
            "  its QR code     {base}/qr{}.svg   (or .png; `coldtrail qr` prints one)",
            link.path()
        );
    }
    Ok(())
}

fn print_next(
    base: &str,
    data_dir: &Path,
    world: &World,
    readings: u64,
    example: Option<&serde_json::Value>,
) {
    let lot = &world.truth.contaminated_lot;
    if readings > 0 {
        println!(
            "  loaded          {} organisations, {} lots, {} loggers, {} EPCIS events, {readings} signed readings",
            world.orgs.len(),
            world.lots.len(),
            world.devices.len(),
            world.events.len()
        );
    }
    println!("  data dir        {}", data_dir.display());
    println!("  API             {base}/v1/   (OpenAPI: {base}/v1/openapi.json)");
    if let Some(w) = example.and_then(|e| e["entries"].get(0)) {
        println!(
            "  an entry        {base}/v1/shards/{}/entries/{}",
            w["shard"], w["index"]
        );
        println!(
            "  example proof   {base}/v1/shards/{}/entries/{}/proof",
            w["shard"], w["index"]
        );
    }
    println!("  shard head      {base}/v1/shards/0/head");
    println!("  checkpoint      {base}/v1/shards/0/checkpoint   (with the witnesses' cosignatures, when it has witnesses)");
    println!("  log keys        {base}/.well-known/coldtrail/keys   (signed by the operator key)");
    println!(
        "  an event        {base}/v1/events?eventID={}",
        world.events[0].event["eventID"].as_str().unwrap_or("")
    );
    println!("  try             curl -s {base}/v1/shards/0/head");
    println!(
        "  ground truth    contaminated lot {lot}; {} lots descend from it",
        world.truth.affected_lots.len()
    );
    println!("  audit from out  cargo run --release -- audit-remote {base} --state audit.json   (checks the witnesses' quorum, when the key set names one)");
    // A node on PostgreSQL is verified through its database's URL.
    let store = match crate::config::Config::load(None, std::env::vars()) {
        Ok(c) => c
            .store
            .url
            .map(|u| format!(" --store {}", crate::config::redact_password(&u)))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    println!(
        "  audit later     cargo run --release -- verify --data-dir {}{store}",
        data_dir.display()
    );
}
