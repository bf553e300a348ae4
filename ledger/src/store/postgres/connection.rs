//! Reaching the database: the configuration, the one `Database` per process (its runtime, reader pool and schema), connecting, classifying failures as transient or not, the retry budget, and the log's advisory lock.

use super::*;

/// How the store reaches PostgreSQL. Every wait is bounded.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db` or key-value form (TLS is not
    /// supported: use a local socket or a trusted network).
    pub url: String,
    /// Reader connections in the pool.
    pub pool_size: usize,
    /// Connecting, and waiting for a pooled connection, give up after this.
    pub connect_timeout: Duration,
    /// A statement running longer is cancelled by the server.
    pub statement_timeout: Duration,
    /// The writer retries a failed group (reconnecting) for this long, then
    /// stops the store.
    pub retry_for: Duration,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(60),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// Is this store location a PostgreSQL URL?
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A PostgreSQL error with what we were doing, and the server's code and
/// message when it sent one.
pub(crate) fn db_error(doing: &str, e: tokio_postgres::Error) -> StoreError {
    let detail = match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                s.push_str(": ");
                s.push_str(&x.to_string());
                src = x.source();
            }
            s
        }
    };
    StoreError::Database(format!("{doing}: {detail}"))
}

/// Whether retrying after a reconnect can help: the connection is gone, or
/// the server is shutting down, starting, out of resources, or aborted the
/// transaction for a conflict.
pub(super) fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Transient(_))
}

pub(super) fn classify(doing: &str, e: tokio_postgres::Error) -> StoreError {
    let retry = match e.code() {
        None => true,
        Some(c) => matches!(&c.code()[..2], "08" | "57" | "53" | "40"),
    };
    let err = db_error(doing, e);
    match err {
        StoreError::Database(what) if retry => StoreError::Transient(what),
        other => other,
    }
}

impl Database {
    /// Connects, and brings the schema up to date (refusing a newer one).
    pub fn connect(config: PgConfig) -> Result<Arc<Database>, StoreError> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::Config(format!(
                "the PostgreSQL URL does not parse ({e}); expected postgres://user@host:port/database"
            ))
        })?;
        pg.connect_timeout(config.connect_timeout);
        // Every commit waits for the WAL flush, whatever the server's
        // default: an acknowledged entry must survive a server crash.
        let options = format!(
            "{} -c synchronous_commit=on -c statement_timeout={}",
            pg.get_options().unwrap_or(""),
            config.statement_timeout.as_millis()
        );
        pg.options(options.trim());
        pg.application_name("coldtrail");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ledger-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("starting its runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = deadpool_postgres::Manager::from_config(
            pg.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("the PostgreSQL pool: {e}")))?;
        let mut db = Database {
            runtime: Some(runtime),
            handle,
            pool,
            pg,
            config,
            migrated: Migrated {
                from: 0,
                applied: Vec::new(),
            },
        };
        let pg = db.pg.clone();
        db.migrated = db.run(async move {
            let mut client = connect(&pg).await?;
            schema::migrate(&mut client).await
        })?;
        Ok(Arc::new(db))
    }

    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        let mut s = String::from("postgres://");
        if let Some(u) = self.pg.get_user() {
            s.push_str(u);
            s.push('@');
        }
        for h in self.pg.get_hosts() {
            match h {
                tokio_postgres::config::Host::Tcp(h) => s.push_str(h),
                tokio_postgres::config::Host::Unix(p) => s.push_str(&p.display().to_string()),
            }
        }
        if let Some(p) = self.pg.get_ports().first() {
            s.push_str(&format!(":{p}"));
        }
        s.push('/');
        s.push_str(self.pg.get_dbname().unwrap_or(""));
        s
    }

    /// What connecting found and applied.
    pub fn migrated(&self) -> &Migrated {
        &self.migrated
    }

    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// Runs `fut` on the database's runtime and waits for it: callable from
    /// any thread, async or not, except the database runtime's own.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Stopped("the database runtime ended".into())))
    }

    pub(super) async fn reader(
        pool: &deadpool_postgres::Pool,
    ) -> Result<deadpool_postgres::Object, StoreError> {
        pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => classify("connecting", e),
            other => StoreError::Transient(format!("waiting for a pooled connection: {other}")),
        })
    }

    /// Runs a read on a pooled connection. A transient failure (a pooled
    /// connection the server closed on restart, a server starting) is
    /// retried on a fresh connection for up to `connect_timeout`.
    pub(crate) fn query(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let (pool, limit) = (self.pool.clone(), self.config.connect_timeout);
        self.run(async move {
            let mut retry = Retry::new(limit);
            loop {
                let res = async {
                    let c = Database::reader(&pool).await?;
                    let p: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    c.query(sql, &p).await.map_err(|e| classify(what, e))
                }
                .await;
                match res {
                    Ok(rows) => return Ok(rows),
                    Err(e) => retry.pause(what, e).await?,
                }
            }
        })
    }

    /// The logs in the database: `(name, public key, entries)`.
    pub fn logs(&self) -> Result<Vec<(String, VerifyingKey, u64)>, StoreError> {
        let rows = self.query(
            "listing logs",
            "SELECT l.name, l.public_key,
                    coalesce((SELECT max(e.idx) + 1 FROM coldtrail_entries e WHERE e.log = l.log), 0)
             FROM coldtrail_logs l ORDER BY l.name",
            Vec::new(),
        )?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let key = verifying_key(r.get(1), &name)?;
                Ok((name, key, r.get::<_, i64>(2) as u64))
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Not a blocking shutdown: the last handle may be dropped on an
        // async thread, where blocking is refused.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A connection of its own (not pooled), driven on the current runtime.
pub(super) async fn connect(pg: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, conn) = pg
        .connect(NoTls)
        .await
        .map_err(|e| classify("connecting", e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Takes the log's session advisory lock, trying again for `patience`: a
/// process that just ended may still hold it until its server session
/// notices.
pub(super) async fn lock_log(
    client: &Client,
    log: i32,
    patience: Duration,
) -> Result<bool, StoreError> {
    let deadline = Instant::now() + patience;
    loop {
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LOG_LOCK_CLASS, &log],
            )
            .await
            .map_err(|e| classify("locking the log", e))?
            .get(0);
        if locked || Instant::now() >= deadline {
            return Ok(locked);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Transient failures are retried with growing pauses until `retry_for`
/// has passed; anything else ends the retries at once.
pub(super) struct Retry {
    deadline: Instant,
    pause: Duration,
    limit: Duration,
}

impl Retry {
    pub(super) fn new(limit: Duration) -> Retry {
        Retry {
            deadline: Instant::now() + limit,
            pause: Duration::from_millis(50),
            limit,
        }
    }

    pub(super) async fn pause(&mut self, what: &str, err: StoreError) -> Result<(), StoreError> {
        if !transient(&err) {
            return Err(err);
        }
        if Instant::now() + self.pause > self.deadline {
            return Err(StoreError::Database(format!(
                "{what} kept failing for {:?}: {err}",
                self.limit
            )));
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        Ok(())
    }
}
