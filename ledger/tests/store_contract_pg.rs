//! The `Store` contract (`contract/mod.rs`) on the PostgreSQL store, in a
//! database of its own on a throwaway cluster (or on `COLDTRAIL_TEST_PG`).
//! Every log is a fresh name in that database; stored bytes are changed
//! behind the store's back with plain SQL.

mod common;
mod contract;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use contract::{Audit, Harness, Place};
use ed25519_dalek::SigningKey;
use ledger::store::postgres::{audit_database, cluster, Database, PgConfig, PgStore};
use ledger::store::{Store, StoreError};

struct Postgres;

/// A log: a database URL and a name in it.
struct Log {
    url: String,
    name: String,
}

/// One connection (runtime and pool) per process and database.
fn database(url: &str) -> Arc<Database> {
    static DBS: Mutex<BTreeMap<String, Arc<Database>>> = Mutex::new(BTreeMap::new());
    let mut dbs = DBS.lock().unwrap();
    Arc::clone(
        dbs.entry(url.to_string())
            .or_insert_with(|| Database::connect(PgConfig::new(url)).expect("connects")),
    )
}

impl Harness for Postgres {
    type Place = Log;
    fn fresh(&self) -> Log {
        // A database per log: the contract opens every log with one key,
        // and a database refuses two logs with one key (one log id).
        Log {
            url: cluster::fresh_database().expect("a test database"),
            name: "log".to_string(),
        }
    }
    fn max_entry_bytes(&self) -> usize {
        common::small_config().max_entry_bytes
    }
}

impl Place for Log {
    fn open(&self, key: SigningKey) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(PgStore::open(
            &database(&self.url),
            &self.name,
            key,
            common::small_config(),
        )?))
    }

    fn locator(&self) -> String {
        format!("{} {}", self.url, self.name)
    }

    fn from_locator(locator: &str) -> Log {
        let (url, name) = locator.split_once(' ').expect("url and name");
        Log {
            url: url.to_string(),
            name: name.to_string(),
        }
    }

    /// Flips a bit in the middle of the entry's stored body, with plain SQL.
    fn alter_entry(&self, index: u64) {
        let db = database(&self.url);
        let n = sql(
            &db,
            format!(
                "UPDATE coldtrail_entries SET body = set_byte(body, length(body) / 2, get_byte(body, length(body) / 2) # 32)
                 WHERE log = (SELECT log FROM coldtrail_logs WHERE name = '{}') AND idx = {index}",
                self.name
            ),
        );
        assert_eq!(n, 1, "entry {index} has a row");
    }

    fn audit(&self) -> Audit {
        let db = database(&self.url);
        let mut reports =
            audit_database(&db, Some(&self.name), &|_| {}).expect("the database reads");
        // A child killed before it created the log leaves none: nothing to damage.
        let Some(r) = reports.pop() else {
            return Audit::Intact;
        };
        match r.problem {
            Some(p) => Audit::Damaged {
                entries: p.entries,
                what: p.to_string(),
            },
            None if r.unsigned == 0 => Audit::Intact,
            None => Audit::Recoverable(vec![format!(
                "{} entries are not yet under a signed head",
                r.unsigned
            )]),
        }
    }
}

/// Runs one statement through a connection of the harness's own; returns
/// the rows it changed.
fn sql(db: &Database, statement: String) -> u64 {
    let url = db.config().url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.execute(&statement, &[]).await.unwrap()
        })
    })
    .join()
    .unwrap()
}

store_contract!(Postgres);

/// The same entries appended to both stores give the same indices, ids,
/// roots, inclusion and consistency proofs, and heads: byte for byte, the
/// heads once their signing times are made equal (a head signs its time).
#[test]
fn both_stores_agree_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = ledger::store::EmbeddedStore::create(
        &dir.path().join("log"),
        common::key(),
        common::small_config(),
    )
    .unwrap();
    let place = Postgres.fresh();
    let pg = place.open(common::key()).unwrap();
    let mut n = 0u64;
    for batch in 0..30u64 {
        let entries: Vec<Vec<u8>> = (0..batch % 9 + 1)
            .map(|i| common::tagged_entry(batch * 1000 + i))
            .collect();
        n += entries.len() as u64;
        assert_eq!(
            embedded.append(entries.clone()).unwrap(),
            pg.append(entries).unwrap()
        );
    }
    assert_eq!(embedded.entries(0, n).unwrap(), pg.entries(0, n).unwrap());
    for size in 1..=n {
        assert_eq!(
            embedded.root(size).unwrap(),
            pg.root(size).unwrap(),
            "root at {size}"
        );
        for index in [0, size / 2, size - 1] {
            assert_eq!(
                embedded.inclusion_proof(index, size).unwrap(),
                pg.inclusion_proof(index, size).unwrap(),
                "inclusion of {index} in {size}"
            );
        }
        for first in [1, size / 3 + 1, size] {
            assert_eq!(
                embedded.consistency_proof(first, size).unwrap(),
                pg.consistency_proof(first, size).unwrap(),
                "consistency {first}..{size}"
            );
        }
    }
    for index in [0, n / 2, n - 1] {
        let id = embedded.entry_id(index).unwrap();
        assert_eq!(pg.entry_id(index).unwrap(), id);
        assert_eq!(pg.find(&id).unwrap(), embedded.find(&id).unwrap());
    }
    let (a, b) = (embedded.sign_head().unwrap(), pg.sign_head().unwrap());
    assert_eq!(a.head.size, n);
    let b_at_a_time = ledger::TreeHead {
        timestamp_ms: a.head.timestamp_ms,
        ..b.head
    }
    .sign(&common::key());
    assert_eq!(b_at_a_time.to_bytes(), a.to_bytes());
    b.verify(&common::key().verifying_key()).unwrap();
}

/// Head rows changed with plain SQL are named by the first changed row,
/// whichever core checked its signature; within one row the signature is
/// named before its size column.
#[test]
fn altered_head_rows_are_named_by_their_first_row() {
    let place = Postgres.fresh();
    let store = place.open(common::key()).unwrap();
    for i in 0..200u64 {
        store.append(vec![common::tagged_entry(i)]).unwrap();
        store.sign_head().unwrap();
    }
    drop(store);
    assert!(matches!(place.audit(), Audit::Intact));
    let db = database(&place.url);
    let row = |seq: u64| {
        format!(
            "log = (SELECT log FROM coldtrail_logs WHERE name = '{}') AND seq = {seq}",
            place.name
        )
    };
    // The record's last byte is its signature's.
    let flip_signature = |seq: u64| {
        let n = sql(
            &db,
            format!(
                "UPDATE coldtrail_heads SET record = set_byte(record, length(record) - 1, get_byte(record, length(record) - 1) # 1) WHERE {}",
                row(seq)
            ),
        );
        assert_eq!(n, 1, "head {seq} has a row");
    };
    let named = || match place.audit() {
        Audit::Damaged { what, .. } => what,
        _ => panic!("the change was not found"),
    };
    flip_signature(150);
    let said = named();
    assert!(said.contains("seq 150)"), "{said}");
    sql(
        &db,
        format!(
            "UPDATE coldtrail_heads SET size = size + 1 WHERE {}",
            row(120)
        ),
    );
    let said = named();
    assert!(
        said.contains("seq 120)") && said.contains("size column"),
        "{said}"
    );
    flip_signature(120);
    let said = named();
    assert!(
        said.contains("seq 120)") && !said.contains("size column"),
        "{said}"
    );
}
