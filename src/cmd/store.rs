//! `migrate` and `copy-store`: the operator's tools for the PostgreSQL store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::store::postgres::{is_postgres_url, Database, PgConfig};
use ledger::store::{Backend, Store, StoreConfig};

use crate::config::redact_password;

/// `coldtrail migrate --store URL`.
pub fn migrate(url: &str) -> Result<ExitCode> {
    if !is_postgres_url(url) {
        bail!("--store takes a PostgreSQL URL (postgres://user@host:port/database)");
    }
    let db = Database::connect(PgConfig::new(url))
        .with_context(|| format!("connecting to {}", redact_password(url)))?;
    let m = db.migrated();
    if m.applied.is_empty() {
        println!(
            "{}: the coldtrail schema is at version {}, the newest this binary knows",
            db.display_url(),
            m.from
        );
    } else {
        for (v, what) in &m.applied {
            println!("applied migration {v}: {what}");
        }
        println!(
            "{}: the coldtrail schema went from version {} to {}",
            db.display_url(),
            m.from,
            m.version()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One side of a copy: the node's data directory (embedded logs) or a database.
enum Side {
    Dir(PathBuf),
    Database(String),
}

impl Side {
    fn parse(s: &str) -> Side {
        if is_postgres_url(s) {
            Side::Database(s.to_string())
        } else {
            Side::Dir(PathBuf::from(s))
        }
    }

    fn backend(&self) -> Result<Backend> {
        match self {
            Side::Dir(_) => Ok(Backend::Embedded),
            Side::Database(url) => {
                crate::config::backend(Some(url), &crate::config::StoreSettings::default())
            }
        }
    }
}

/// `coldtrail copy-store --from DIR --to postgres://…` (or back): copies
/// every shard's log of the stopped node in DIR, entry by entry, into empty
/// logs of the other store under the same keys; checks each copy's root
/// against the source's root and latest signed head; then points the
/// node's `NODE` file at the copy. The source is left as it was.
pub fn copy_store(from: &str, to: &str) -> Result<ExitCode> {
    let (from, to) = (Side::parse(from), Side::parse(to));
    let dir: &Path = match (&from, &to) {
        (Side::Dir(d), Side::Database(_)) | (Side::Database(_), Side::Dir(d)) => d,
        _ => bail!("copy between the node's data directory and a postgres:// URL: one of --from and --to is each"),
    };
    let Some((shards, pinned)) = shards::pinned(dir)? else {
        bail!("{} holds no coldtrail node (no NODE file)", dir.display());
    };
    let (src, dst) = (from.backend()?, to.backend()?);
    if pinned != src.kind() {
        bail!(
            "{} keeps its logs in the {pinned} store, not the {} one: copy from where they are",
            dir.display(),
            src.kind()
        );
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} copying {msg} [{bar:30}] {pos}/{len} entries {per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let mut total = 0;
    for id in 0..shards {
        let name = format!("shard-{id:03}");
        let key = ledger::keys::read_key_file(&dir.join("keys").join(format!("{name}.key")))?;
        let shard_dir = dir.join(&name);
        let source = src.open(&shard_dir, &name, key.clone(), StoreConfig::default())?;
        let copy = dst.open(&shard_dir, &name, key, StoreConfig::default())?;
        if !copy.is_empty() {
            bail!(
                "{name} already has {} entries in the {} store: copy into an empty one",
                copy.len(),
                dst.kind()
            );
        }
        let n = source.len();
        bar.set_message(name.clone());
        bar.set_length(n);
        bar.set_position(0);
        copy_log(source.as_ref(), copy.as_ref(), &|k| bar.inc(k))?;
        let head = copy.sign_head()?;
        if n > 0 && copy.root(n)? != source.root(n)? {
            bail!("{name}: the copy's root differs from the source's; nothing was repointed");
        }
        if let Some(h) = source.latest_head() {
            if copy.root(h.head.size)? != h.head.root {
                bail!(
                    "{name}: the copy does not match the source's signed head at size {}",
                    h.head.size
                );
            }
        }
        bar.suspend(|| {
            println!(
                "{name}: {n} entries copied; root {} at size {} matches the source",
                head.head.root, head.head.size
            )
        });
        total += n;
    }
    bar.finish_and_clear();
    shards::repoint_store(dir, &dst)?;
    println!(
        "copied {total} entries of {shards} logs; {} now keeps its logs in the {} store (the source is untouched: remove it when you no longer need it)",
        dir.display(),
        dst.kind()
    );
    if let Side::Database(url) = &to {
        println!(
            "start it with: coldtrail serve --data-dir {} --store {}",
            dir.display(),
            redact_password(url)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends `source`'s entries to `copy` in order, a few chunks in flight.
fn copy_log(source: &dyn Store, copy: &dyn Store, progress: &dyn Fn(u64)) -> Result<()> {
    const CHUNK: u64 = 2048;
    let n = source.len();
    let mut pending = std::collections::VecDeque::new();
    let mut from = 0;
    while from < n || !pending.is_empty() {
        if from < n && pending.len() < 4 {
            let to = (from + CHUNK).min(n);
            let entries = source.entries(from, to)?;
            pending.push_back((from, to - from, copy.submit(entries)?));
            from = to;
            continue;
        }
        let (at, k, p) = pending.pop_front().expect("something is in flight");
        let appended = p.wait()?;
        if appended.first_index != at {
            bail!("the copy put entry {at} at index {}", appended.first_index);
        }
        progress(k);
    }
    Ok(())
}
