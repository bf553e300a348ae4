//! `coldtrail serve`'s settings as one typed `Config`: the defaults, then a
//! TOML file (`--config FILE`), then `COLDTRAIL_*` environment variables,
//! then flags, each overriding the one before. The server prints the result
//! at start.
//!
//! Environment names are the setting's path in upper case, sections joined
//! with `_`: `COLDTRAIL_LISTEN`, `COLDTRAIL_INGEST_MAX_IN_FLIGHT`,
//! `COLDTRAIL_STORE_SEGMENT_BYTES`. Other `COLDTRAIL_*` variables are not
//! settings and are left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the node's logs and state live.
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// The public base URL consumer pages and QR codes are written under.
    pub public_url: Option<String>,
    /// Shards of a new node (default: one per core); existing data keeps its count.
    pub shards: Option<u32>,
    /// Record metrics for `GET /metrics` (off: nothing is recorded).
    pub metrics: bool,
    /// Checkpoints of derived state (sequencers, identity state, the lineage
    /// graph) are written this often while the server runs, and at a clean
    /// stop, ms; a start reads only the logs after them. 0: at a clean stop only.
    pub checkpoint_interval_ms: u64,
    pub ingest: IngestSettings,
    pub graphql: GraphqlSettings,
    pub store: StoreSettings,
    pub witnesses: WitnessSettings,
    pub receipts: ReceiptSettings,
    pub network: NetworkSettings,
}

/// The node as a member of a network (`[network]` in the TOML file): the
/// network file (`coldtrail network`) and which of its members this node
/// is. The node then publishes its logs over the NATS JetStream that
/// `[receipts] nats` names, and keeps a verified mirror of every other
/// member's. Unset: a node on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSettings {
    /// The network file; its newest adopted version is the membership.
    pub file: Option<PathBuf>,
    /// This node's member name in it.
    pub member: Option<String>,
    /// How often the node publishes its logs' new entries and heads, ms.
    pub publish_interval_ms: u64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            file: None,
            member: None,
            publish_interval_ms: 200,
        }
    }
}

/// How receipts travel between shards: in-process (the default), or over
/// NATS JetStream when `nats` names its servers (`[receipts]` in the TOML
/// file; `COLDTRAIL_RECEIPTS_NATS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptSettings {
    /// NATS servers, comma-separated (`nats://127.0.0.1:4222`).
    pub nats: Option<String>,
    /// The JetStream stream receipts are kept in.
    pub stream: String,
    /// The first token of the receipts' subjects.
    pub prefix: String,
    /// Copies the stream keeps (3 on a three-server cluster).
    pub replicas: usize,
}

impl Default for ReceiptSettings {
    fn default() -> Self {
        ReceiptSettings {
            nats: None,
            stream: "COLDTRAIL_RECEIPTS".into(),
            prefix: "coldtrail".into(),
            replicas: 1,
        }
    }
}

impl ReceiptSettings {
    /// What `serve` does with them: `None` for in-process receipts.
    pub fn jetstream(&self) -> Option<shards::jetstream::JetStreamConfig> {
        self.nats
            .as_ref()
            .map(|servers| shards::jetstream::JetStreamConfig {
                servers: servers.clone(),
                stream: self.stream.clone(),
                prefix: self.prefix.clone(),
                replicas: self.replicas,
                member: None,
            })
    }
}

/// The witnesses the node sends its checkpoints to, to cosign
/// (`[[witnesses.peers]]` with `url`, `name` and `key` in the TOML file),
/// and how many of them a client needs (`quorum`), which the node publishes
/// in its signed key set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessSettings {
    /// How often each shard's newest head is offered to each witness, ms.
    pub interval_ms: u64,
    /// Cosignatures a client needs (default: a majority of the peers).
    pub quorum: Option<u32>,
    pub peers: Vec<witness::client::Peer>,
}

impl Default for WitnessSettings {
    fn default() -> Self {
        WitnessSettings {
            interval_ms: 1_000,
            quorum: None,
            peers: Vec::new(),
        }
    }
}

impl WitnessSettings {
    /// What `serve` does with them: `None` without peers.
    pub fn witnessing(&self) -> Option<crate::witnessing::Witnessing> {
        (!self.peers.is_empty()).then(|| crate::witnessing::Witnessing {
            peers: self.peers.clone(),
            every: std::time::Duration::from_millis(self.interval_ms.max(10)),
            quorum: self.quorum.unwrap_or(self.peers.len() as u32 / 2 + 1),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// Write requests processed at once (429 with Retry-After above).
    pub max_in_flight: usize,
    /// How far ahead of the server clock a reading may be, ms (422 above).
    pub future_slack_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlSettings {
    /// A query or mutation running longer is stopped, ms.
    pub timeout_ms: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Largest `first` of a connection.
    pub max_page: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Where the shards' logs live: unset, segment files under `data_dir`;
    /// `postgres://user@host:port/db`, rows in that PostgreSQL database.
    pub url: Option<String>,
    /// PostgreSQL: reader connections in the pool.
    pub pool_size: usize,
    /// PostgreSQL: connecting (and waiting for a pooled connection) gives up after this, ms.
    pub connect_timeout_ms: u64,
    /// PostgreSQL: a failed group commit is retried, reconnecting, for this long, ms;
    /// then the log stops taking writes.
    pub retry_ms: u64,
    /// A segment is sealed at this many bytes (the first ones sooner: 1 MiB,
    /// doubling at each segment, so a small log zeroes little ahead)…
    pub segment_bytes: u64,
    /// …or this many entries.
    pub segment_entries: u64,
    pub max_block_entries: usize,
    pub max_block_bytes: usize,
    pub max_entry_bytes: usize,
    /// Appends that may wait for a shard's writer; more are refused.
    pub queue_depth: usize,
    /// While appends arrive, a head is signed at least this often, ms.
    pub head_interval_ms: u64,
    /// Heads asked for by readers (proofs, the receipt relay) are signed at
    /// most this often, ms; asks in between share one.
    pub head_gap_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: None,
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            shards: None,
            metrics: true,
            checkpoint_interval_ms: 300_000,
            ingest: IngestSettings::default(),
            graphql: GraphqlSettings::default(),
            store: StoreSettings::default(),
            witnesses: WitnessSettings::default(),
            receipts: ReceiptSettings::default(),
            network: NetworkSettings::default(),
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        let l = ingest::Limits::default();
        IngestSettings {
            max_body_bytes: l.max_body_bytes,
            max_in_flight: l.max_in_flight,
            future_slack_ms: l.future_slack_ms,
        }
    }
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        let l = graphql::Limits::default();
        GraphqlSettings {
            timeout_ms: l.timeout.as_millis() as u64,
            max_depth: l.max_depth,
            max_complexity: l.max_complexity,
            max_page: l.max_page,
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        let s = ledger::store::StoreConfig::default();
        let pg = ledger::store::postgres::PgConfig::new("");
        StoreSettings {
            url: None,
            pool_size: pg.pool_size,
            connect_timeout_ms: pg.connect_timeout.as_millis() as u64,
            retry_ms: pg.retry_for.as_millis() as u64,
            segment_bytes: s.segment_bytes,
            segment_entries: s.segment_entries,
            max_block_entries: s.max_block_entries,
            max_block_bytes: s.max_block_bytes,
            max_entry_bytes: s.max_entry_bytes,
            queue_depth: s.queue_depth,
            head_interval_ms: s.head_interval.as_millis() as u64,
            head_gap_ms: s.head_gap.as_millis() as u64,
        }
    }
}

/// Settings that may be absent from a serialised config (`None`), so they
/// cannot be discovered from the defaults' keys.
const OPTIONAL: [&[&str]; 7] = [
    &["data_dir"],
    &["public_url"],
    &["shards"],
    &["store", "url"],
    &["receipts", "nats"],
    &["network", "file"],
    &["network", "member"],
];

impl Config {
    /// Defaults, overridden by the file (if any), then by `env` (name, value
    /// pairs; pass `std::env::vars()`). Flags are applied by the caller.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut table = toml::Table::try_from(Config::default()).expect("the defaults serialise");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config file {}", path.display()))?;
            let from_file: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not TOML", path.display()))?;
            // Refuse unknown or mistyped settings, pointing at the line,
            // before the environment could hide them.
            toml::from_str::<Config>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            merge(&mut table, from_file);
        }
        let keys = setting_paths(&table);
        for (name, value) in env {
            let Some(path) = name
                .strip_prefix("COLDTRAIL_")
                .map(str::to_ascii_lowercase)
                .and_then(|p| keys.iter().find(|k| k.join("_") == p))
            else {
                continue;
            };
            // A TOML literal (number, boolean, quoted string) or else a bare string.
            let v = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value.clone()));
            set(&mut table, path, v);
            table
                .clone()
                .try_into::<Config>()
                .map_err(|e| anyhow::anyhow!("{name}={value:?}: {}", e.message()))?;
        }
        let config: Config = table.try_into().context("the settings")?;
        config.check()?;
        Ok(config)
    }

    /// What no type can say: ranges and the public URL's form.
    pub fn check(&self) -> Result<()> {
        if let Some(u) = &self.public_url {
            web::parse_public_url(u).map_err(anyhow::Error::msg)?;
        }
        if self.ingest.max_in_flight == 0 || self.ingest.max_body_bytes == 0 {
            bail!("ingest.max_in_flight and ingest.max_body_bytes must be at least 1");
        }
        // A timeout of 0 is allowed: every query stops at once (tests use it).
        if self.graphql.max_page == 0 {
            bail!("graphql.max_page must be at least 1");
        }
        if self.receipts.replicas == 0 || self.receipts.replicas > 5 {
            bail!("receipts.replicas must be 1 to 5 (JetStream keeps at most 5 copies)");
        }
        if self.receipts.stream.is_empty()
            || self.receipts.stream.contains(['.', ' ', '*', '>'])
            || self.receipts.prefix.is_empty()
            || self.receipts.prefix.contains([' ', '*', '>'])
        {
            bail!("receipts.stream must be a JetStream stream name (no '.', ' ', '*' or '>') and receipts.prefix a subject token");
        }
        match (&self.network.file, &self.network.member) {
            (None, None) => {}
            (Some(_), Some(_)) if self.receipts.nats.is_none() => bail!(
                "network: a member publishes and follows logs over NATS JetStream; name its servers in receipts.nats"
            ),
            (Some(_), Some(m)) if m.is_empty() => bail!("network.member must name a member"),
            (Some(_), Some(_)) => {}
            _ => bail!(
                "network.file and network.member go together: the network file, and which of its members this node is"
            ),
        }
        if self.store.queue_depth == 0
            || self.store.max_block_entries == 0
            || self.store.max_block_bytes == 0
        {
            bail!("store.queue_depth, store.max_block_entries and store.max_block_bytes must be at least 1");
        }
        Ok(())
    }

    /// How `serve`'s receipts travel between its shards: `None` in-process.
    /// A member's channels carry its name (members share the stream).
    pub fn receipts_jetstream(&self) -> Option<shards::jetstream::JetStreamConfig> {
        let mut js = self.receipts.jetstream()?;
        if self.network.file.is_some() {
            js.member = self.network.member.clone();
        }
        Some(js)
    }

    /// What `serve` does as a member of a network: `None` on its own.
    pub fn networking(&self) -> Option<crate::networking::Networking> {
        let (file, member) = (self.network.file.clone()?, self.network.member.clone()?);
        Some(crate::networking::Networking {
            file,
            member,
            jetstream: self.receipts.jetstream()?,
            every: Duration::from_millis(self.network.publish_interval_ms.max(10)),
        })
    }

    /// The settings as TOML, as a config file would hold them.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings serialise")
    }

    /// The settings as TOML with the database password hidden, to print.
    pub fn to_toml_shown(&self) -> String {
        let mut c = self.clone();
        c.store.url = c.store.url.as_deref().map(redact_password);
        c.to_toml()
    }

    /// Where the shards' logs live: connects to (and migrates) the
    /// database when `store.url` names one.
    pub fn backend(&self) -> Result<ledger::store::Backend> {
        backend(self.store.url.as_deref(), &self.store)
    }

    pub fn ingest_limits(&self) -> ingest::Limits {
        ingest::Limits {
            max_body_bytes: self.ingest.max_body_bytes,
            max_in_flight: self.ingest.max_in_flight,
            future_slack_ms: self.ingest.future_slack_ms,
        }
    }

    pub fn graphql_limits(&self) -> graphql::Limits {
        graphql::Limits {
            timeout: Duration::from_millis(self.graphql.timeout_ms),
            max_depth: self.graphql.max_depth,
            max_complexity: self.graphql.max_complexity,
            max_page: self.graphql.max_page,
            default_page: graphql::Limits::default()
                .default_page
                .min(self.graphql.max_page),
        }
    }

    pub fn store_config(&self) -> ledger::store::StoreConfig {
        let s = &self.store;
        ledger::store::StoreConfig {
            segment_bytes: s.segment_bytes,
            segment_entries: s.segment_entries,
            max_block_entries: s.max_block_entries,
            max_block_bytes: s.max_block_bytes,
            max_entry_bytes: s.max_entry_bytes,
            queue_depth: s.queue_depth,
            head_interval: Duration::from_millis(s.head_interval_ms),
            head_gap: Duration::from_millis(s.head_gap_ms),
            ..ledger::store::StoreConfig::default()
        }
    }
}

/// The backend for a store URL (`None`: embedded). Refuses anything but a
/// PostgreSQL URL, naming what is expected.
pub fn backend(url: Option<&str>, s: &StoreSettings) -> Result<ledger::store::Backend> {
    use ledger::store::postgres::{is_postgres_url, Database, PgConfig};
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(ledger::store::Backend::Embedded);
    };
    if !is_postgres_url(url) {
        bail!("store.url {:?} is not a PostgreSQL URL: use postgres://user@host:port/database, or leave it unset for the embedded store", redact_password(url));
    }
    let config = PgConfig {
        pool_size: s.pool_size.max(1),
        connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        retry_for: Duration::from_millis(s.retry_ms),
        ..PgConfig::new(url)
    };
    let db = Database::connect(config)
        .with_context(|| format!("connecting to {}", redact_password(url)))?;
    Ok(ledger::store::Backend::Postgres(db))
}

/// `scheme://user:secret@host/…` shown as `scheme://user:***@host/…`.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Overlays `top` on `base`, section by section.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Every setting's path (`["listen"]`, `["ingest", "max_in_flight"]`).
fn setting_paths(table: &toml::Table) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = OPTIONAL
        .iter()
        .map(|p| p.iter().map(|k| k.to_string()).collect())
        .collect();
    for (k, v) in table {
        let new = match v {
            toml::Value::Table(t) => t.keys().map(|k2| vec![k.clone(), k2.clone()]).collect(),
            _ => vec![vec![k.clone()]],
        };
        out.extend(
            new.into_iter()
                .filter(|p| !out.contains(p))
                .collect::<Vec<_>>(),
        );
    }
    out
}

fn set(table: &mut toml::Table, path: &[String], v: toml::Value) {
    match path {
        [k] => {
            table.insert(k.clone(), v);
        }
        [section, rest @ ..] => {
            if let Some(toml::Value::Table(t)) = table.get_mut(section) {
                set(t, rest, v);
            }
        }
        [] => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment_override_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("coldtrail.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/coldtrail\"\n[ingest]\nmax_in_flight = 64\nmax_body_bytes = 1000\n[store]\nhead_interval_ms = 250\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("COLDTRAIL_INGEST_MAX_IN_FLIGHT", "7"),
                ("COLDTRAIL_PUBLIC_URL", "https://fresh.example"),
                ("COLDTRAIL_SHARED", "../shared"), // not a setting: left alone
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/srv/coldtrail")));
        assert_eq!(c.ingest.max_in_flight, 7, "the environment beats the file");
        assert_eq!(c.ingest.max_body_bytes, 1000);
        assert_eq!(c.public_url.as_deref(), Some("https://fresh.example"));
        assert_eq!(c.store_config().head_interval, Duration::from_millis(250));
        assert_eq!(c.graphql, GraphqlSettings::default());
        // What is printed reads back as the same settings.
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn the_store_url_comes_from_the_environment_and_its_password_is_not_shown() {
        let c = Config::load(
            None,
            env(&[(
                "COLDTRAIL_STORE_URL",
                "postgres://ct:s3cret@db.example:5433/ledger",
            )]),
        )
        .unwrap();
        assert_eq!(
            c.store.url.as_deref(),
            Some("postgres://ct:s3cret@db.example:5433/ledger")
        );
        let shown = c.to_toml_shown();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://ct:***@db.example:5433/ledger"),
            "{shown}"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
        let e = format!("{:#}", backend(Some("mysql://x"), &c.store).unwrap_err());
        assert!(e.contains("postgres://"), "{e}");
    }

    #[test]
    fn receipts_travel_in_process_unless_nats_is_named() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.receipts.jetstream(), None);
        let c = Config::load(
            None,
            env(&[
                (
                    "COLDTRAIL_RECEIPTS_NATS",
                    "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
                ),
                ("COLDTRAIL_RECEIPTS_REPLICAS", "3"),
            ]),
        )
        .unwrap();
        let js = c.receipts.jetstream().expect("over JetStream");
        assert_eq!(js.servers, "nats://127.0.0.1:4222,nats://127.0.0.1:4223");
        assert_eq!((js.replicas, js.stream.as_str()), (3, "COLDTRAIL_RECEIPTS"));
    }

    #[test]
    fn a_member_of_a_network_is_named_with_its_file_and_publishes_over_jetstream() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.networking().is_none(), "on its own by default");
        let c = Config::load(
            None,
            env(&[
                ("COLDTRAIL_RECEIPTS_NATS", "nats://127.0.0.1:4222"),
                ("COLDTRAIL_NETWORK_FILE", "/etc/coldtrail/network.json"),
                ("COLDTRAIL_NETWORK_MEMBER", "acme"),
                ("COLDTRAIL_NETWORK_PUBLISH_INTERVAL_MS", "50"),
            ]),
        )
        .unwrap();
        let n = c.networking().expect("a member");
        assert_eq!(
            (n.member.as_str(), n.file.as_path()),
            ("acme", Path::new("/etc/coldtrail/network.json"))
        );
        assert_eq!(n.jetstream.servers, "nats://127.0.0.1:4222");
        assert_eq!(n.every, Duration::from_millis(50));
        assert_eq!(
            c.receipts_jetstream().and_then(|j| j.member).as_deref(),
            Some("acme"),
            "a member's receipts are its own"
        );
    }

    #[test]
    fn mistakes_are_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        for (text, says) in [
            ("[ingest]\nmax_inflight = 3\n", "max_inflight"),
            ("listen = 8080\n", "listen"),
            ("public_url = \"ftp://x\"\n", "https://"),
            ("[graphql]\nmax_page = 0\n", "max_page"),
            ("[receipts]\nreplicas = 0\n", "receipts.replicas"),
            ("[receipts]\nstream = \"a.b\"\n", "receipts.stream"),
            ("[network]\nmember = \"a\"\n", "go together"),
            (
                "[network]\nmember = \"a\"\nfile = \"n.json\"\n",
                "receipts.nats",
            ),
            ("listen = \"a\"\n[[", "TOML"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = format!("{:#}", Config::load(Some(&file), env(&[])).unwrap_err());
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let e = format!(
            "{:#}",
            Config::load(None, env(&[("COLDTRAIL_STORE_QUEUE_DEPTH", "many")])).unwrap_err()
        );
        assert!(e.contains("COLDTRAIL_STORE_QUEUE_DEPTH"), "{e}");
        assert!(Config::load(Some(Path::new("/nonexistent.toml")), env(&[]))
            .unwrap_err()
            .to_string()
            .contains("/nonexistent.toml"));
    }
}
