//! The PostgreSQL store's schema and its versioned migrations.
//!
//! Each migration runs once, in order, inside one transaction that holds a
//! transaction-scoped advisory lock, so two processes starting together
//! apply it once. A database whose schema is newer than this binary knows is
//! refused: an older binary must not write rows a newer one reads differently.

use tokio_postgres::Client;

use super::db_error;
use crate::store::StoreError;

/// `pg_advisory_xact_lock` key of the migration step ("ctmg").
const MIGRATION_LOCK: i64 = 0x6374_6d67;

pub(super) struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add one.
pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "logs, entries, 16-entry subtree roots, signed heads",
    sql: r#"
CREATE TABLE coldtrail_logs (
    log         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    log_id      bytea NOT NULL UNIQUE CHECK (length(log_id) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- One row per entry. `id` is the entry's Merkle leaf hash; `body` is the
-- entry's canonical bytes, lz4-compressed when `codec` = 1 (when that saves
-- an eighth or more). Compressed here, so PostgreSQL's own TOAST compression
-- is turned off for the column.
CREATE TABLE coldtrail_entries (
    log    integer NOT NULL REFERENCES coldtrail_logs,
    idx    bigint NOT NULL CHECK (idx >= 0),
    id     bytea NOT NULL CHECK (length(id) = 32),
    codec  smallint NOT NULL CHECK (codec IN (0, 1)),
    body   bytea NOT NULL,
    PRIMARY KEY (log, idx)
);
ALTER TABLE coldtrail_entries ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX coldtrail_entries_by_id ON coldtrail_entries USING hash (id);
-- The root of each complete run of 16 entries (run r = entries 16r..16r+16):
-- a store opens by loading these, not every leaf hash.
CREATE TABLE coldtrail_nodes (
    log   integer NOT NULL REFERENCES coldtrail_logs,
    run   bigint NOT NULL CHECK (run >= 0),
    root  bytea NOT NULL CHECK (length(root) = 32),
    PRIMARY KEY (log, run)
);
-- Every signed head, in signing order; `record` is the head's canonical
-- encoding (VERIFYING.md), `size` repeats its size for lookups.
CREATE TABLE coldtrail_heads (
    log     integer NOT NULL REFERENCES coldtrail_logs,
    seq     bigint NOT NULL CHECK (seq >= 0),
    size    bigint NOT NULL CHECK (size >= 0),
    record  bytea NOT NULL,
    PRIMARY KEY (log, seq)
);
CREATE INDEX coldtrail_heads_by_size ON coldtrail_heads (log, size);
"#,
}];

/// The newest schema version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What [`migrate`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// Migrations applied now, as `(version, description)`.
    pub applied: Vec<(i32, &'static str)>,
}

impl Migrated {
    pub fn version(&self) -> i32 {
        self.applied.last().map_or(self.from, |a| a.0)
    }
}

/// Brings the schema up to [`latest_version`], or refuses a newer one.
pub(super) async fn migrate(client: &mut Client) -> Result<Migrated, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("starting the migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db_error("locking for the migration", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS coldtrail_schema (
            version     integer PRIMARY KEY,
            description text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| db_error("creating coldtrail_schema", e))?;
    let from: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM coldtrail_schema",
            &[],
        )
        .await
        .map_err(|e| db_error("reading the schema version", e))?
        .get(0);
    let latest = latest_version();
    if from > latest {
        return Err(StoreError::Config(format!(
            "the database's coldtrail schema is version {from}, newer than this coldtrail knows (version {latest}): upgrade coldtrail, or point it at another database"
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| db_error(&format!("applying migration {}", m.version), e))?;
        tx.execute(
            "INSERT INTO coldtrail_schema (version, description) VALUES ($1, $2)",
            &[&m.version, &m.description],
        )
        .await
        .map_err(|e| db_error("recording the migration", e))?;
        applied.push((m.version, m.description));
    }
    tx.commit()
        .await
        .map_err(|e| db_error("committing the migration", e))?;
    Ok(Migrated { from, applied })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rise_by_one_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
    }
}
