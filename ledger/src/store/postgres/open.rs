//! Opening a log: finding or creating its row, taking its lock, loading the run roots and the tail's ids, checking them against the latest signed head, and starting the writer task.

use super::*;

impl PgStore {
    /// Opens the log called `name`, creating it under `key` if the database
    /// has none by that name.
    pub fn open(
        db: &Arc<Database>,
        name: &str,
        key: SigningKey,
        config: StoreConfig,
    ) -> Result<PgStore, StoreError> {
        if config.queue_depth == 0 {
            return Err(StoreError::Config(
                "the queue depth must be positive".into(),
            ));
        }
        let (pg, name_owned, vk) = (db.pg.clone(), name.to_string(), key.verifying_key());
        let patience = db.config.connect_timeout;
        let opened = db.run(async move { open_log(&pg, &name_owned, &vk, patience).await })?;
        let Opened {
            client,
            log,
            size,
            runs,
            tail,
            latest_head,
            head_seq,
        } = opened;
        let leaves = PgLeaves {
            db: Arc::clone(db),
            log,
            name: name.to_string(),
            last: Mutex::new(None),
        };
        let tree = StoredTree::new(leaves, size, runs, tail);
        if let Some(h) = &latest_head {
            let root = tree
                .prover()
                .root(h.head.size)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            if root != h.head.root {
                return Err(StoreError::Corrupt {
                    path: format!("log {name}"),
                    what: format!(
                        "the tree rebuilt from the rows does not match the signed head at size {}; run `coldtrail verify --store …`",
                        h.head.size
                    ),
                });
            }
        }
        let shared = Arc::new(Shared {
            db: Arc::clone(db),
            log,
            name: name.to_string(),
            key: key.verifying_key(),
            state: RwLock::new(State { tree, latest_head }),
            gate: Arc::default(),
            max_entry_bytes: config.max_entry_bytes,
        });
        let (tx, rx) = mpsc::channel(config.queue_depth);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let writer = Writer {
            shared: Arc::clone(&shared),
            log_id: log_id(&key.verifying_key()),
            key,
            config: config.clone(),
            client: Some(client),
            head_seq,
            last_head_at: Instant::now(),
        };
        db.handle.spawn(async move {
            writer.run(rx).await;
            let _ = done_tx.send(());
        });
        Ok(PgStore {
            front: Front::new(Arc::clone(&shared.gate), tx, &config),
            shared,
            done: Mutex::new(Some(done)),
        })
    }
}

pub(super) async fn open_log(
    pg: &tokio_postgres::Config,
    name: &str,
    key: &VerifyingKey,
    patience: Duration,
) -> Result<Opened, StoreError> {
    let client = connect(pg).await?;
    let q = |what: &'static str| move |e| db_error(what, e);
    let id = log_id(key);
    client
        .execute(
            "INSERT INTO coldtrail_logs (name, public_key, log_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&name, &key.as_bytes().as_slice(), &id.0.as_slice()],
        )
        .await
        .map_err(q("creating the log"))?;
    let row = client
        .query_opt(
            "SELECT log, public_key FROM coldtrail_logs WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(q("finding the log"))?
        .ok_or_else(|| {
            StoreError::Config(format!(
                "log {name} could not be created: another log already has the key given"
            ))
        })?;
    let log: i32 = row.get(0);
    let stored = verifying_key(row.get(1), name)?;
    if stored != *key {
        return Err(StoreError::Config(format!(
            "log {name} in the database belongs to log {}, not to the key given (log {})",
            log_id(&stored),
            id
        )));
    }
    if !lock_log(&client, log, patience).await? {
        return Err(StoreError::Config(format!(
            "log {name} is in use by another process (a running server?); stop it first"
        )));
    }
    let size: i64 = client
        .query_one(
            "SELECT coalesce(max(idx) + 1, 0) FROM coldtrail_entries WHERE log = $1",
            &[&log],
        )
        .await
        .map_err(q("reading the log's size"))?
        .get(0);
    let size = size as u64;
    let runs = read_runs(&client, log, name, size).await?;
    let tail = read_tail(&client, log, name, size).await?;
    let (latest_head, head_seq) = read_latest_head(&client, log, name, key, size).await?;
    Ok(Opened {
        client,
        log,
        size,
        runs,
        tail,
        latest_head,
        head_seq,
    })
}

/// The roots of the log's complete 16-entry runs, in order; a missing one
/// is damage.
async fn read_runs(
    client: &Client,
    log: i32,
    name: &str,
    size: u64,
) -> Result<Vec<Digest>, StoreError> {
    let q = |what: &'static str| move |e| db_error(what, e);
    let mut runs = Vec::with_capacity((size / RUN) as usize);
    for (r, want) in client
        .query(
            "SELECT run, root FROM coldtrail_nodes WHERE log = $1 AND run < $2 ORDER BY run",
            &[&log, &((size / RUN) as i64)],
        )
        .await
        .map_err(q("reading subtree roots"))?
        .iter()
        .zip(0u64..)
    {
        let run: i64 = r.get(0);
        if run as u64 != want {
            break;
        }
        runs.push(digest(r.get(1), || {
            format!("coldtrail_nodes row (log {name}, run {want})")
        })?);
    }
    if runs.len() as u64 != size / RUN {
        return Err(StoreError::Corrupt {
            path: format!("coldtrail_nodes row (log {name}, run {})", runs.len()),
            what: "the row is missing".into(),
        });
    }
    Ok(runs)
}

/// The ids of the entries after the last complete run, in order; a missing
/// one is damage.
async fn read_tail(
    client: &Client,
    log: i32,
    name: &str,
    size: u64,
) -> Result<Vec<Digest>, StoreError> {
    let q = |what: &'static str| move |e| db_error(what, e);
    let tail_start = size - size % RUN;
    let mut tail = Vec::new();
    for (r, want) in client
        .query(
            "SELECT idx, id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 ORDER BY idx",
            &[&log, &(tail_start as i64)],
        )
        .await
        .map_err(q("reading the newest entries"))?
        .iter()
        .zip(tail_start..)
    {
        if r.get::<_, i64>(0) as u64 != want {
            return Err(missing(name, want));
        }
        tail.push(digest(r.get(1), || entry_place(name, want))?);
    }
    if tail.len() as u64 != size - tail_start {
        return Err(missing(name, tail_start + tail.len() as u64));
    }
    Ok(tail)
}

/// The latest signed head (checked under `key`, and committing to no more
/// than the log's `size` entries) and the next head's sequence number.
async fn read_latest_head(
    client: &Client,
    log: i32,
    name: &str,
    key: &VerifyingKey,
    size: u64,
) -> Result<(Option<SignedTreeHead>, i64), StoreError> {
    let q = |what: &'static str| move |e| db_error(what, e);
    let head = client
        .query_opt(
            "SELECT seq, size, record FROM coldtrail_heads WHERE log = $1 ORDER BY seq DESC LIMIT 1",
            &[&log],
        )
        .await
        .map_err(q("reading the latest head"))?;
    Ok(match head {
        None => (None, 0),
        Some(r) => {
            let seq: i64 = r.get(0);
            let h = decode_head_row(name, seq, r.get(1), r.get(2), key)?;
            if h.head.size > size {
                return Err(StoreError::Corrupt {
                    path: format!("coldtrail_heads row (log {name}, seq {seq})"),
                    what: format!(
                        "a signed head commits to {} entries but the log has {size}: acknowledged entries are missing",
                        h.head.size
                    ),
                });
            }
            (Some(h), seq + 1)
        }
    })
}
