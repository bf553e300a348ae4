//! `coldtrail serve`, `org add`, `token issue|revoke`: running a node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::{Context, Result};
use api::{Role, TokenStore};
use ingest::{Ingest, Limits};
use ledger::entry::{Entry, IdentityChange, OrgRole};
use shards::{Node, NodeConfig};

/// Opens the node in `data_dir` for a command other than `serve`: its logs
/// are in the database `COLDTRAIL_STORE_URL` names, if set (the node's
/// `NODE` file refuses the wrong store either way).
pub fn open_node(data_dir: &Path, shards: Option<u32>) -> Result<Arc<Node>> {
    let settings = crate::config::Config::load(None, std::env::vars())?;
    let config = NodeConfig {
        shards,
        store: settings.store_config(),
        backend: settings.backend()?,
        ..NodeConfig::new(data_dir)
    };
    Ok(Arc::new(Node::open(config).with_context(|| {
        format!("opening the node in {}", data_dir.display())
    })?))
}

/// What the HTTP edge is told at start: where to listen and its limits.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    pub limits: Limits,
    pub gql: graphql::Limits,
    pub web: ::web::Options,
    /// Record metrics for `/metrics`.
    pub metrics: bool,
    /// How often checkpoints are written while serving (`None`: at a clean stop only).
    pub checkpoint_every: Option<Duration>,
    /// The witnesses asked to cosign the shards' checkpoints, how often,
    /// and the quorum the node publishes.
    pub witnesses: Option<crate::witnessing::Witnessing>,
    /// Receipts between shards over NATS JetStream (`None`: in-process).
    pub receipts: Option<shards::jetstream::JetStreamConfig>,
    /// The node as a member of a network (`None`: on its own).
    pub network: Option<crate::networking::Networking>,
}

impl Edge {
    /// Default limits on `listen`.
    pub fn on(listen: &str) -> Edge {
        Edge {
            listen: listen.to_string(),
            limits: Limits::default(),
            gql: graphql::Limits::default(),
            web: ::web::Options::default(),
            metrics: true,
            checkpoint_every: Some(Duration::from_secs(300)),
            witnesses: None,
            receipts: None,
            network: None,
        }
    }
}

/// While set to a file's path, start-up holds before opening the logs until
/// the file is gone: tests use it to see the node as it starts.
pub const HOLD_OPEN_ENV: &str = "COLDTRAIL_TEST_HOLD_OPEN";

/// Binds the edge's address at once and serves `/healthz` (alive) and
/// `/readyz` (not ready) while the node opens; then serves until Ctrl-C.
/// `open` opens the node (on a blocking thread); `ready` gets the bound
/// address once the whole edge listens.
pub async fn run_server(
    open: impl FnOnce() -> Result<Arc<Node>> + Send + 'static,
    edge: Edge,
    ready: impl FnOnce(
        std::net::SocketAddr,
        actix_web::dev::ServerHandle,
        Arc<analytics::consumer::Status>,
    ),
) -> Result<()> {
    let Edge {
        listen,
        limits,
        gql,
        web: web_options,
        metrics,
        checkpoint_every,
        witnesses,
        receipts,
        network,
    } = edge;
    if metrics {
        crate::ops::metrics()?;
    }
    let listener =
        std::net::TcpListener::bind(&listen).with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (starting_handle, starting) = serve_starting(&listener)?;
    tracing::info!(%addr, "listening; opening the node");

    let Opened {
        node,
        ingest,
        rules,
        graph,
        scanned,
    } = match open_for_serving(open, limits).await {
        Ok(o) => o,
        Err(e) => {
            starting_handle.stop(false).await;
            return Err(e);
        }
    };
    let policies = ingest.follow()?;
    let (relay, inboxes) = match receipts {
        None => (node.spawn_relay(Duration::from_millis(20)), Vec::new()),
        Some(config) => {
            match shards::jetstream::Relaying::spawn(&node, &config, Duration::from_millis(20))
                .await
            {
                Ok(r) => {
                    tracing::info!(servers = %config.servers, stream = %config.stream, "receipts travel over NATS JetStream");
                    (r.relay, r.inboxes)
                }
                Err(e) => {
                    starting_handle.stop(false).await;
                    return Err(anyhow::Error::new(e).context(format!(
                        "receipts over NATS JetStream at {}",
                        config.servers
                    )));
                }
            }
        }
    };
    let consumer = analytics::Running::spawn(
        Arc::clone(&node),
        rules.clone(),
        analytics::Options::default(),
    )?;
    let graph = Arc::new(std::sync::RwLock::new(graph));
    let lineage = analytics::lineage::follow(Arc::clone(&node), Arc::clone(&graph), scanned)?;
    let derived = Derived {
        node: Arc::clone(&node),
        ingest: Arc::clone(&ingest),
        lineage: Arc::clone(&graph),
        writing: Arc::default(),
    };
    let checkpoints = checkpoint_every.map(|every| spawn_checkpoints(derived.clone(), every));
    // Cosignatures collected before are served even with no witness now.
    let cosigned = Arc::new(
        witness::cosigned::Cosigned::open(&node.data_dir().join("cosigned"))
            .context("opening the witnesses' cosignatures")?,
    );
    let stop_witnessing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let witness_alarm = crate::witnessing::Alarm::default();
    // A member's fellow members vouch for its heads: they join the policy.
    let joined = match &network {
        None => None,
        Some(n) => match crate::networking::Joined::check(&node, n) {
            Ok(j) => Some(j),
            Err(e) => {
                starting_handle.stop(false).await;
                return Err(e);
            }
        },
    };
    // The policy clients check is the one configured: a change (or its
    // removal) is published in a new key set before anyone is answered.
    let policy = crate::witnessing::policy(
        witnesses.as_ref(),
        joined.as_ref().map(|j| j.witnesses()).unwrap_or_default(),
    )?;
    if let Some(set) = node.publish_witnesses(policy)? {
        tracing::info!(
            sequence = set.set.sequence,
            "published the witness policy in a new key set"
        );
    }
    if let Some(w) = &witnesses {
        crate::witnessing::spawn(
            Arc::clone(&node),
            w,
            Arc::clone(&cosigned),
            Arc::clone(&stop_witnessing),
            &witness_alarm,
        )?;
    }
    // After the witness policy: the key sets it publishes are the newest.
    let followed = crate::networking::Followed::default();
    let networking = match (&network, joined) {
        (Some(n), Some(joined)) => {
            match crate::networking::start(&node, n, joined, &followed, &cosigned).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    starting_handle.stop(false).await;
                    return Err(e);
                }
            }
        }
        _ => Vec::new(),
    };
    let running = crate::ops::Running {
        node: Arc::clone(&node),
        relay: relay.abort_handle(),
        rules: Arc::clone(&consumer.status),
        lineage: Arc::clone(&graph),
        witness_alarm: Arc::clone(&witness_alarm),
        followed,
    };
    let (read, endpoint, notices_task) = read_edges(
        &node,
        &ingest,
        graph,
        rules,
        gql,
        Arc::clone(&cosigned),
        running.followed.mirrors().clone(),
    )?;
    let deliveries = ::web::subscriptions::Deliveries::spawn(Arc::clone(&read))
        .context("starting the subscriptions' deliveries")?;
    let app_ingest = Arc::clone(&ingest);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(
                ingest::routes::detach_writes,
            ))
            .wrap(actix_web::middleware::from_fn(api::observe::requests))
            .configure(crate::ops::configure(running.clone()))
            .configure(ingest::configure(Arc::clone(&app_ingest)))
            .configure(::web::configure(
                Arc::clone(&read),
                web_options.clone(),
                ingest::openapi(),
            ))
            .configure(graphql::configure(endpoint.clone()))
            .default_service(web::to(ingest::not_found))
            // Outermost: answers are gzipped for clients that accept it
            // (pages, JSON, GraphiQL's 3.5 MB bundle to about a quarter),
            // after the request log and refusal counter have seen them.
            .wrap(actix_web::middleware::Compress::default())
    })
    .workers(2)
    // Slow or stalled clients are cut off rather than held forever.
    .client_request_timeout(Duration::from_secs(30))
    .client_disconnect_timeout(Duration::from_secs(5))
    .listen(listener)?;
    // Hand the socket over: connections arriving meanwhile wait in its backlog.
    starting_handle.stop(true).await;
    let _ = starting.await;
    let server = server.run();
    tracing::info!(%addr, "ready");
    ready(addr, server.handle(), Arc::clone(&consumer.status));
    server.await?;
    // The witness threads finish their round and stop; nothing waits on them.
    stop_witnessing.store(true, std::sync::atomic::Ordering::Relaxed);
    deliveries.stop();
    if let Some(c) = checkpoints {
        c.abort();
        let _ = c.await;
    }
    relay.abort();
    let _ = relay.await;
    for task in inboxes.into_iter().chain(networking) {
        task.abort();
        let _ = task.await;
    }
    policies.abort();
    lineage.abort();
    notices_task.abort();
    // The rules see everything acknowledged before the logs close.
    consumer.stop()?;
    node.sign_heads().await?;
    // The next start reads only what comes after these.
    derived.checkpoint().await?;
    Ok(())
}

type Serving = actix_web::rt::task::JoinHandle<std::io::Result<()>>;

/// While the node opens: `/healthz` (alive) and `/readyz` (not ready) on the
/// edge's socket.
fn serve_starting(listener: &std::net::TcpListener) -> Result<(ServerHandle, Serving)> {
    let starting = HttpServer::new(|| {
        App::new()
            .wrap(actix_web::middleware::from_fn(api::observe::requests))
            .configure(crate::ops::configure_starting)
    })
    .workers(1)
    .disable_signals()
    .listen(listener.try_clone()?)?
    .run();
    Ok((starting.handle(), actix_web::rt::spawn(starting)))
}

/// The node and what is read off it at start.
struct Opened {
    node: Arc<Node>,
    ingest: Arc<Ingest>,
    rules: analytics::RulesConfig,
    graph: analytics::lineage::Lineage,
    /// Per shard, how far `graph` has read its log.
    scanned: Vec<u64>,
}

/// Opens the node and what is read off it at start (on a blocking thread):
/// the write path, the rules' configuration, the lineage graph and how far
/// it has scanned.
async fn open_for_serving(
    open: impl FnOnce() -> Result<Arc<Node>> + Send + 'static,
    limits: Limits,
) -> Result<Opened> {
    actix_web::rt::task::spawn_blocking(move || {
        if let Some(hold) = std::env::var_os(HOLD_OPEN_ENV) {
            while std::path::Path::new(&hold).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let node = open()?;
        let ingest = Arc::new(Ingest::open(Arc::clone(&node), limits)?);
        let rules = analytics::RulesConfig::load(node.data_dir())?;
        let (graph, scanned) = analytics::lineage::open(&node)?;
        Ok(Opened {
            node,
            ingest,
            rules,
            graph,
            scanned,
        })
    })
    .await
    .context("opening the node")?
}

/// Writes the derived state's checkpoints every `every` while the server
/// runs (the first after one interval), so a start after a crash reads
/// only the logs' tails.
fn spawn_checkpoints(derived: Derived, every: Duration) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = derived.checkpoint().await {
                tracing::warn!(error = %format!("{e:#}"), "writing checkpoints failed; the next start reads more of the logs");
            }
        }
    })
}

/// The read edges' shared state and the GraphQL endpoint over it (with its
/// notices follower, which the caller stops at shutdown).
fn read_edges(
    node: &Arc<Node>,
    ingest: &Arc<Ingest>,
    graph: Arc<std::sync::RwLock<analytics::lineage::Lineage>>,
    rules: analytics::RulesConfig,
    gql: graphql::Limits,
    cosigned: Arc<witness::cosigned::Cosigned>,
    mirrors: shards::mirror::Mirrors,
) -> Result<(
    Arc<readstate::ReadState>,
    graphql::Endpoint,
    tokio::task::JoinHandle<()>,
)> {
    let read = Arc::new(
        readstate::ReadState::new(
            Arc::clone(node),
            Arc::clone(ingest.frame()),
            Arc::clone(ingest) as Arc<dyn api::port::WritePort>,
            graph,
            readstate::access::Grant::open(node.data_dir())
                .context("opening the page grant key")?,
            readstate::queries::NamedQueries::open(node.data_dir())?,
            readstate::subscriptions::Subscriptions::open(node.data_dir())?,
        )
        .with_rules(rules)
        .with_cosigned(cosigned)
        .with_mirrors(mirrors),
    );
    let (notices, notices_task) = graphql::Notices::follow(Arc::clone(node))?;
    let endpoint = graphql::Endpoint {
        schema: graphql::schema(Some((Arc::clone(&read), notices)), gql),
        state: Arc::clone(&read),
        limits: gql,
        console: graphql::Console {
            html: ::web::console::page("/graphql").into(),
            policy: ::web::console::POLICY,
        },
    };
    Ok((read, endpoint, notices_task))
}

/// The state the server derives from the logs and checkpoints.
#[derive(Clone)]
struct Derived {
    node: Arc<Node>,
    ingest: Arc<Ingest>,
    lineage: Arc<std::sync::RwLock<analytics::lineage::Lineage>>,
    /// Held while the files are written: a periodic round aborted at stop
    /// goes on writing on its blocking thread, and the last round waits for it.
    writing: Arc<std::sync::Mutex<()>>,
}

impl Derived {
    /// Writes every checkpoint: each shard's sequencer, ingest's identity
    /// state and eventID index, the lineage graph's sources.
    async fn checkpoint(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let shards = self.node.checkpoint(Duration::from_secs(30)).await?;
        let me = self.clone();
        actix_web::rt::task::spawn_blocking(move || -> Result<()> {
            let _writing = me.writing.lock().expect("checkpoint lock");
            me.ingest.checkpoint()?;
            analytics::lineage::checkpoint::save(
                &me.node,
                &me.lineage.read().expect("lineage lock"),
            )?;
            Ok(())
        })
        .await
        .context("writing checkpoints")??;
        tracing::info!(
            shards,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoints written"
        );
        Ok(())
    }
}

/// `coldtrail serve` with its settings (printed once it listens).
pub fn serve(config: crate::config::Config) -> Result<ExitCode> {
    let data_dir = config.data_dir.clone().ok_or_else(|| {
        anyhow::anyhow!("say where the node lives: --data-dir DIR, data_dir in the --config file, or COLDTRAIL_DATA_DIR")
    })?;
    let edge = Edge {
        metrics: config.metrics,
        checkpoint_every: (config.checkpoint_interval_ms > 0)
            .then(|| Duration::from_millis(config.checkpoint_interval_ms)),
        witnesses: config.witnesses.witnessing(),
        receipts: config.receipts_jetstream(),
        network: config.networking(),
        listen: config.listen.clone(),
        limits: config.ingest_limits(),
        gql: config.graphql_limits(),
        web: ::web::Options {
            public_url: config.public_url.clone(),
            catalogue: Arc::new(::web::catalogue::Catalogue::load(&data_dir)?),
        },
    };
    actix_web::rt::System::new().block_on(async move {
        let node_config = NodeConfig {
            shards: config.shards,
            store: config.store_config(),
            ..NodeConfig::new(&data_dir)
        };
        let settings = config.clone();
        let open = move || {
            let dir = node_config.data_dir.clone();
            // Connecting (and migrating) is part of opening: the edge
            // answers /readyz meanwhile.
            let node_config = NodeConfig {
                backend: settings.backend()?,
                ..node_config
            };
            Ok(Arc::new(Node::open(node_config).with_context(|| {
                format!("opening the node in {}", dir.display())
            })?))
        };
        let shown = config.to_toml_shown();
        let public = edge.web.public_url.clone();
        run_server(open, edge, move |addr, _, _| {
            println!("coldtrail serving {} on http://{addr}", data_dir.display());
            println!("  write API   http://{addr}/v1/   (OpenAPI: http://{addr}/v1/openapi.json)");
            println!("  GraphQL     http://{addr}/graphql   (GraphiQL in a browser; subscriptions over WebSocket)");
            println!(
                "  pages       {}/01/{{gtin}}/10/{{lot}}   (GS1 Digital Link; QR codes under /qr/)",
                public.unwrap_or_else(|| format!("http://{addr}"))
            );
            println!("  settings    (defaults < --config file < COLDTRAIL_* environment < flags)");
            for line in shown.lines() {
                println!("    {line}");
            }
        })
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn parse_role(s: &str) -> Result<OrgRole> {
    Ok(match s {
        "grower" => OrgRole::Grower,
        "packer" => OrgRole::Packer,
        "processor" => OrgRole::Processor,
        "carrier" => OrgRole::Carrier,
        "dc" | "distribution-centre" => OrgRole::DistributionCentre,
        "retailer" => OrgRole::Retailer,
        "manufacturer" => OrgRole::Manufacturer,
        "clinic" => OrgRole::Clinic,
        "investigator" => OrgRole::Investigator,
        "operator" => OrgRole::Operator,
        other => anyhow::bail!(
            "unknown role {other:?}: use grower, packer, processor, carrier, dc, retailer, manufacturer, clinic, investigator or operator"
        ),
    })
}

/// Registers an organisation: an identity entry on its home shard.
pub fn org_add(
    data_dir: PathBuf,
    gln: String,
    name: String,
    role: String,
    shards: Option<u32>,
) -> Result<ExitCode> {
    let role = parse_role(&role)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let node = open_node(&data_dir, shards)?;
        // A GLN names one organisation: a second registration would let a
        // newcomer speak for (and read as) the first.
        let ingest = Ingest::open(Arc::clone(&node), Limits::default())?;
        if let Some(existing) = ingest.registered_org(&gln) {
            anyhow::bail!(
                "{gln} is already registered (as {existing}); each GLN names one organisation: register the new one under its own GLN"
            );
        }
        let entry = Entry::Identity(IdentityChange::OrgRegistered {
            org: gln.clone(),
            name: name.clone(),
            role,
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        });
        let c = node.append(&gln, vec![entry]).await?;
        let (index, id) = c.entries[0];
        println!(
            "registered {gln} ({name}) on shard {} at index {index}, entry {id}",
            c.shard
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn token_issue(data_dir: PathBuf, org: String, role: String) -> Result<ExitCode> {
    let role = match role.as_str() {
        "partner" => Role::Partner,
        "investigator" => Role::Investigator,
        "operator" => Role::Operator,
        other => {
            anyhow::bail!("unknown token role {other:?}: use partner, investigator or operator")
        }
    };
    std::fs::create_dir_all(&data_dir)?;
    let (token, record) = TokenStore::new(&data_dir, ledger::clock::system()).issue(&org, role)?;
    println!("{token}");
    eprintln!(
        "issued a {:?} token for {org}; only its hash {} is stored: keep the token, it is not shown again",
        record.role,
        &record.hash[..16]
    );
    Ok(ExitCode::SUCCESS)
}

pub fn token_revoke(data_dir: PathBuf, hash: String) -> Result<ExitCode> {
    let n = TokenStore::new(&data_dir, ledger::clock::system()).revoke(&hash)?;
    println!("revoked {n} token(s)");
    Ok(ExitCode::SUCCESS)
}
