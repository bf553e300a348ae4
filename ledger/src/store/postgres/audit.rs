//! `coldtrail verify --store postgres://…`: every log in the database
//! recomputed from its rows. Each entry's bytes are hashed and compared with
//! its stored id; the tree is folded as the rows stream by and every stored
//! 16-entry run root and every signed head (signature, order, root) is
//! compared with it. It stops at the first problem and names the row.
//!
//! Read in one REPEATABLE READ transaction: a consistent snapshot even while
//! a server appends. Memory: the run roots and heads of one log, not its
//! entries.

use std::collections::BTreeMap;
use std::fmt;

use super::{db_error, decode_body, Database, RUN};
use crate::entry::{entry_id, kind_label, ENCODING_VERSION};
use crate::hash::Digest;
use crate::head::{log_id, SignedTreeHead};
use crate::merkle::Frontier;
use crate::store::format;
use crate::store::{AuditProgress, StoreError};

/// The first row that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgProblem {
    pub table: &'static str,
    /// The row, as its key (`idx 41`, `run 2`, `seq 7`).
    pub row: String,
    /// Entries `[from, to)` it concerns, when it can say.
    pub entries: Option<(u64, u64)>,
    pub what: String,
}

impl fmt::Display for PgProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row {}: {}", self.table, self.row, self.what)
    }
}

/// What the audit of one log checked, and its first problem.
#[derive(Debug, Clone, Default)]
pub struct PgAudit {
    pub name: String,
    pub log_id: Digest,
    pub entries: u64,
    /// Stored body bytes read, and entry bytes (uncompressed) hashed.
    pub bytes: u64,
    pub entry_bytes: u64,
    pub heads: u64,
    pub latest_head: Option<SignedTreeHead>,
    pub kinds: BTreeMap<&'static str, u64>,
    /// Entries after the latest signed head (the next open signs them).
    pub unsigned: u64,
    pub problem: Option<PgProblem>,
}

fn problem(
    table: &'static str,
    row: String,
    entries: Option<(u64, u64)>,
    what: impl Into<String>,
) -> PgProblem {
    PgProblem {
        table,
        row,
        entries,
        what: what.into(),
    }
}

/// Audits every log in the database (or only `only`, by name). `Err` only
/// when the database cannot be read at all.
pub fn audit_database(
    db: &Database,
    only: Option<&str>,
    progress: &dyn AuditProgress,
) -> Result<Vec<PgAudit>, StoreError> {
    let mut out = Vec::new();
    for (name, key, _) in db.logs()? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let pg = db.pg.clone();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let n = name.clone();
        db.handle.spawn(async move {
            let _ = done_tx.send(audit_log(&pg, &n, key, tx).await);
        });
        // Progress is told from this thread while the audit streams; the
        // channel closes when the audit returns.
        for b in rx {
            progress.advance(b);
        }
        let report = done
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Stopped("the database runtime ended".into())))?;
        out.push(report);
    }
    Ok(out)
}

/// Why an audit stopped early: the first problem found, or a database that
/// could not be read.
enum Stop {
    Problem(PgProblem),
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Store(e)
    }
}

impl From<PgProblem> for Stop {
    fn from(p: PgProblem) -> Stop {
        Stop::Problem(p)
    }
}

async fn audit_log(
    pg: &tokio_postgres::Config,
    name: &str,
    key: ed25519_dalek::VerifyingKey,
    progress: std::sync::mpsc::Sender<u64>,
) -> Result<PgAudit, StoreError> {
    let mut client = super::connect(pg).await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| db_error("starting the audit", e))?;
    let mut report = PgAudit {
        name: name.to_string(),
        log_id: log_id(&key),
        ..PgAudit::default()
    };
    match audit_rows(&tx, name, &key, &mut report, &progress).await {
        Ok(()) => Ok(report),
        Err(Stop::Problem(p)) => {
            report.problem = Some(p);
            Ok(report)
        }
        Err(Stop::Store(e)) => Err(e),
    }
}

/// The audit's phases in order: the log's row, its heads, its run roots, then
/// its entries folded against both.
async fn audit_rows(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    key: &ed25519_dalek::VerifyingKey,
    report: &mut PgAudit,
    progress: &std::sync::mpsc::Sender<u64>,
) -> Result<(), Stop> {
    let row = tx
        .query_one(
            "SELECT log, log_id FROM coldtrail_logs WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(|e| db_error("finding the log", e))?;
    let (log, stored_id): (i32, Vec<u8>) = (row.get(0), row.get(1));
    if stored_id != report.log_id.0 {
        let row = format!("name {name}");
        let what = "log_id is not the hash of public_key";
        return Err(problem("coldtrail_logs", row, None, what).into());
    }
    let heads = read_heads(tx, name, log, key).await?;
    report.heads = heads.len() as u64;
    report.latest_head = heads.last().map(|(_, h)| *h);
    let roots = read_roots(tx, name, log).await?;
    let frontier = fold_entries(tx, name, log, &heads, &roots, report, progress).await?;
    if roots.len() as u64 > frontier.size() / RUN {
        let row = format!("(log {name}, run {})", frontier.size() / RUN);
        let what = "a subtree root for entries the log does not have: rows were deleted";
        return Err(problem("coldtrail_nodes", row, None, what).into());
    }
    report.unsigned = frontier.size() - report.latest_head.map_or(0, |h| h.head.size);
    Ok(())
}

/// The log's signed heads, by `seq`. Each decodes, is signed by the log's key
/// for this log, and none is smaller than the one before. Signatures are
/// checked on every core once the rows are read; the first row with a problem
/// is named, and within a row decoding comes first, then the signature, then
/// its size column and its order.
async fn read_heads(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    log: i32,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<Vec<(i64, SignedTreeHead)>, Stop> {
    let mut heads: Vec<(i64, SignedTreeHead)> = Vec::new();
    // The first problem other than a signature, and the row it is in.
    let mut unsigned_problem: Option<(usize, PgProblem)> = None;
    for r in tx
        .query(
            "SELECT seq, size, record FROM coldtrail_heads WHERE log = $1 ORDER BY seq",
            &[&log],
        )
        .await
        .map_err(|e| db_error("reading signed heads", e))?
    {
        let seq: i64 = r.get(0);
        let at = heads.len();
        let row = format!("(log {name}, seq {seq})");
        if seq != at as i64 {
            let row = format!("(log {name}, seq {at})");
            unsigned_problem = Some((
                at,
                problem("coldtrail_heads", row, None, "the row is missing"),
            ));
            break;
        }
        let h = match super::parse_head_row(name, seq, r.get(2)) {
            Ok(h) => h,
            Err(e) => {
                unsigned_problem = Some((at, problem("coldtrail_heads", row, None, strip(&e))));
                break;
            }
        };
        let older = heads.last().is_some_and(|(_, prev)| {
            h.head.size < prev.head.size || h.head.timestamp_ms < prev.head.timestamp_ms
        });
        heads.push((seq, h));
        if let Err(e) = super::check_head_size(name, seq, r.get(1), &h) {
            unsigned_problem = Some((at, problem("coldtrail_heads", row, None, strip(&e))));
            break;
        }
        if older {
            let what = "signed before the head in the row before it, yet smaller or older";
            unsigned_problem = Some((at, problem("coldtrail_heads", row, None, what)));
            break;
        }
    }
    let decoded: Vec<SignedTreeHead> = heads.iter().map(|(_, h)| *h).collect();
    let unverified = crate::store::audit::first_unverified(&decoded, key);
    match (unverified, unsigned_problem) {
        (Some((i, e)), other) if other.as_ref().is_none_or(|(at, _)| i <= *at) => {
            let row = format!("(log {name}, seq {})", heads[i].0);
            Err(problem("coldtrail_heads", row, None, e.to_string()).into())
        }
        (_, Some((_, p))) => Err(p.into()),
        _ => Ok(heads),
    }
}

/// The stored root of every complete 16-entry run, by run number.
async fn read_roots(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    log: i32,
) -> Result<Vec<Digest>, Stop> {
    let mut roots: Vec<Digest> = Vec::new();
    for (r, want) in tx
        .query(
            "SELECT run, root FROM coldtrail_nodes WHERE log = $1 ORDER BY run",
            &[&log],
        )
        .await
        .map_err(|e| db_error("reading subtree roots", e))?
        .iter()
        .zip(0i64..)
    {
        let run: i64 = r.get(0);
        let row = format!("(log {name}, run {want})");
        if run != want {
            return Err(problem("coldtrail_nodes", row, None, "the row is missing").into());
        }
        match <[u8; 32]>::try_from(r.get::<_, &[u8]>(1)) {
            Ok(b) => roots.push(Digest(b)),
            Err(_) => {
                let what = "root is not a 32-byte hash";
                return Err(problem("coldtrail_nodes", row, None, what).into());
            }
        }
    }
    Ok(roots)
}

/// Streams the entries in order, hashing each and folding the tree, and
/// compares every completed run with its stored root and every signed head
/// with the tree at its size. Returns the tree over all the entries.
async fn fold_entries(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    log: i32,
    heads: &[(i64, SignedTreeHead)],
    roots: &[Digest],
    report: &mut PgAudit,
    progress: &std::sync::mpsc::Sender<u64>,
) -> Result<Frontier, Stop> {
    let mut frontier = Frontier::default();
    // Heads over the empty log.
    let mut next_head = check_heads_at(name, heads, 0, &frontier)?;
    // A portal streams the rows in pages: memory holds one page.
    let portal = tx
        .bind(
            "SELECT idx, id, codec, body FROM coldtrail_entries WHERE log = $1 ORDER BY idx",
            &[&log],
        )
        .await
        .map_err(|e| db_error("reading entries", e))?;
    let mut pending_bytes = 0u64;
    loop {
        let page = tx
            .query_portal(&portal, 1024)
            .await
            .map_err(|e| db_error("reading entries", e))?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            let body: &[u8] = r.get(3);
            pending_bytes += body.len() as u64;
            let leaf = check_entry(name, r, frontier.size(), report)?;
            if let Some(run_root) = frontier.push_completing(leaf, format::NODE_LEVEL) {
                check_run(name, roots, frontier.size() - 1, run_root)?;
            }
            next_head = check_heads_at(name, heads, next_head, &frontier)?;
            if pending_bytes >= 1 << 20 {
                let _ = progress.send(pending_bytes);
                pending_bytes = 0;
            }
        }
    }
    let _ = progress.send(pending_bytes);
    report.entries = frontier.size();
    if let Some((seq, h)) = heads.get(next_head) {
        let row = format!("(log {name}, seq {seq})");
        let what = format!(
            "a signed head commits to {} entries but the log has {}: acknowledged rows were deleted",
            h.head.size, frontier.size()
        );
        return Err(problem(
            "coldtrail_heads",
            row,
            Some((frontier.size(), h.head.size)),
            what,
        )
        .into());
    }
    Ok(frontier)
}

/// One entry row, expected at index `want`: its place, its body, its id.
/// Counts it into `report` and returns its leaf hash.
fn check_entry(
    name: &str,
    r: &tokio_postgres::Row,
    want: u64,
    report: &mut PgAudit,
) -> Result<Digest, PgProblem> {
    const MAX_ENTRY: usize = 64 << 20;
    let idx: i64 = r.get(0);
    let row = format!("(log {name}, idx {want})");
    let here = Some((want, want + 1));
    if idx as u64 != want {
        let what = format!("the row is missing (the next row is idx {idx})");
        return Err(problem("coldtrail_entries", row, here, what));
    }
    let body: &[u8] = r.get(3);
    report.bytes += body.len() as u64;
    let entry = decode_body(r.get(2), body, MAX_ENTRY)
        .map_err(|what| problem("coldtrail_entries", row.clone(), here, what))?;
    report.entry_bytes += entry.len() as u64;
    let label = match entry.as_slice() {
        [ENCODING_VERSION, k, ..] => kind_label(*k).unwrap_or("unknown"),
        _ => "unknown",
    };
    *report.kinds.entry(label).or_insert(0) += 1;
    let leaf = entry_id(&entry);
    if r.get::<_, &[u8]>(1) != leaf.0.as_slice() {
        let what = "its bytes do not hash to its id: the body or the id was changed";
        return Err(problem("coldtrail_entries", row, here, what));
    }
    Ok(leaf)
}

/// The run that entry `last` completed hashes to its stored root.
fn check_run(name: &str, roots: &[Digest], last: u64, run_root: Digest) -> Result<(), PgProblem> {
    let run = last / RUN;
    if roots.get(run as usize) == Some(&run_root) {
        return Ok(());
    }
    let (from, to) = (run * RUN, run * RUN + RUN);
    let what = if roots.len() as u64 <= run {
        "the row is missing".to_string()
    } else {
        format!("entries {from}..{to} hash to another root: an entry and its id were both changed, or the root was")
    };
    let row = format!("(log {name}, run {run})");
    Err(problem("coldtrail_nodes", row, Some((from, to)), what))
}

/// Every signed head from `next` on whose size is the tree's size signs the
/// tree's root. Returns the first head still ahead of the tree.
fn check_heads_at(
    name: &str,
    heads: &[(i64, SignedTreeHead)],
    mut next: usize,
    frontier: &Frontier,
) -> Result<usize, PgProblem> {
    while let Some((seq, h)) = heads
        .get(next)
        .filter(|(_, h)| h.head.size == frontier.size())
    {
        if h.head.root != frontier.root() {
            let row = format!("(log {name}, seq {seq})");
            if frontier.size() == 0 {
                let what = "the empty tree's root does not match";
                return Err(problem("coldtrail_heads", row, None, what));
            }
            let from = next.checked_sub(1).map_or(0, |p| heads[p].1.head.size);
            let what = format!(
                "the entries' root does not match this signed head: rows among idx {from}..{} were changed",
                h.head.size
            );
            return Err(problem(
                "coldtrail_heads",
                row,
                Some((from, h.head.size)),
                what,
            ));
        }
        next += 1;
    }
    Ok(next)
}

/// A store error's message without its place (the problem names the row).
fn strip(e: &StoreError) -> String {
    match e {
        StoreError::Corrupt { what, .. } => what.clone(),
        other => other.to_string(),
    }
}
