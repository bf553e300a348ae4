//! Row codecs: entry bodies (raw or lz4), ids, keys and head records as the tables hold them, each checked as it is read; the inserts of a group and of a head; the leaves the tree reads from the rows.

use super::*;

pub(super) fn verifying_key(bytes: &[u8], log: &str) -> Result<VerifyingKey, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| StoreError::Corrupt {
            path: format!("coldtrail_logs row {log}"),
            what: "public_key is not an ed25519 key".into(),
        })
}

pub(super) fn digest(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Digest, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(Digest)
        .map_err(|_| StoreError::Corrupt {
            path: what(),
            what: "not a 32-byte hash".into(),
        })
}

/// An entry's stored form: lz4 when that saves an eighth or more.
pub(super) fn encode_body(entry: &[u8]) -> (i16, Vec<u8>) {
    if entry.len() >= 64 {
        let c = lz4_flex::compress_prepend_size(entry);
        if c.len() <= entry.len() - entry.len() / 8 {
            return (CODEC_LZ4, c);
        }
    }
    (CODEC_RAW, entry.to_vec())
}

pub(super) fn decode_body(codec: i16, body: &[u8], max: usize) -> Result<Vec<u8>, &'static str> {
    match codec {
        CODEC_RAW => Ok(body.to_vec()),
        CODEC_LZ4 => {
            let len = body
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or("compressed body is cut short")?;
            if len > max {
                return Err("compressed body claims more bytes than an entry may hold");
            }
            lz4_flex::decompress_size_prepended(body)
                .map_err(|_| "compressed body does not decompress")
        }
        _ => Err("unknown codec"),
    }
}

impl LeafSource for PgLeaves {
    fn leaves(&self, start: u64, n: u64) -> std::io::Result<Vec<Digest>> {
        if let Some((at, cached)) = &*self.last.lock().expect("leaf cache lock") {
            if *at == start && cached.len() as u64 == n {
                return Ok(cached.clone());
            }
        }
        let rows = self
            .db
            .query(
                "reading leaf hashes",
                "SELECT idx, id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                vec![Box::new(self.log), Box::new(start as i64), Box::new((start + n) as i64)],
            )
            .map_err(std::io::Error::other)?;
        let name = &self.name;
        let mut out = Vec::with_capacity(rows.len());
        for (r, want) in rows.iter().zip(start..) {
            let idx: i64 = r.get(0);
            if idx as u64 != want {
                return Err(std::io::Error::other(missing(name, want)));
            }
            out.push(digest(r.get(1), || entry_place(name, want)).map_err(std::io::Error::other)?);
        }
        if out.len() as u64 != n {
            return Err(std::io::Error::other(missing(
                name,
                start + out.len() as u64,
            )));
        }
        *self.last.lock().expect("leaf cache lock") = Some((start, out.clone()));
        Ok(out)
    }
}

pub(super) fn entry_place(log: &str, idx: u64) -> String {
    format!("coldtrail_entries row (log {log}, idx {idx})")
}

pub(super) fn missing(log: &str, idx: u64) -> StoreError {
    StoreError::Corrupt {
        path: entry_place(log, idx),
        what: "the row is missing".into(),
    }
}

/// A `coldtrail_heads` row, checked: it decodes, is signed by the log's key
/// for this log, and its size column agrees.
pub(super) fn decode_head_row(
    name: &str,
    seq: i64,
    size: i64,
    record: &[u8],
    key: &VerifyingKey,
) -> Result<SignedTreeHead, StoreError> {
    let h = parse_head_row(name, seq, record)?;
    h.verify(key)
        .map_err(|e| head_row_error(name, seq, format!("{e}")))?;
    check_head_size(name, seq, size, &h)?;
    Ok(h)
}

/// A heads row's record decoded; its signature and size not yet checked
/// (the audit checks signatures on every core).
pub(super) fn parse_head_row(
    name: &str,
    seq: i64,
    record: &[u8],
) -> Result<SignedTreeHead, StoreError> {
    SignedTreeHead::from_bytes(record)
        .map_err(|e| head_row_error(name, seq, format!("does not decode: {e}")))
}

pub(super) fn check_head_size(
    name: &str,
    seq: i64,
    size: i64,
    h: &SignedTreeHead,
) -> Result<(), StoreError> {
    if h.head.size != size as u64 {
        return Err(head_row_error(
            name,
            seq,
            format!(
                "its size column says {size} but the signed head says {}",
                h.head.size
            ),
        ));
    }
    Ok(())
}

pub(super) fn head_row_error(name: &str, seq: i64, what: String) -> StoreError {
    StoreError::Corrupt {
        path: format!("coldtrail_heads row (log {name}, seq {seq})"),
        what,
    }
}

/// Inserts a group in one transaction. Rows already there are skipped:
/// if all of them are, an earlier try committed before its answer was lost,
/// which is success if they are these rows; any other overlap is refused
/// (and rolled back).
pub(super) async fn insert_group(
    c: &mut Client,
    name: &str,
    g: &GroupRows,
) -> Result<(), StoreError> {
    let n = g.idx.len() as u64;
    let tx = c
        .transaction()
        .await
        .map_err(|e| classify("beginning", e))?;
    let inserted = tx
        .execute(
            "INSERT INTO coldtrail_entries (log, idx, id, codec, body)
             SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::smallint[], $5::bytea[])
             ON CONFLICT DO NOTHING",
            &[&g.log, &g.idx, &g.ids, &g.codecs, &g.bodies],
        )
        .await
        .map_err(|e| classify("inserting entries", e))?;
    if inserted == n {
        tx.execute(
            "INSERT INTO coldtrail_nodes (log, run, root)
             SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
            &[&g.log, &g.runs, &g.roots],
        )
        .await
        .map_err(|e| classify("inserting subtree roots", e))?;
        return tx.commit().await.map_err(|e| classify("committing", e));
    }
    drop(tx);
    let first = g.idx[0];
    let stored = c
        .query(
            "SELECT id FROM coldtrail_entries WHERE log = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            &[&g.log, &first, &(first + n as i64)],
        )
        .await
        .map_err(|e| classify("checking an earlier try", e))?;
    let same = inserted == 0
        && stored.len() as u64 == n
        && stored
            .iter()
            .zip(&g.ids)
            .all(|(r, id)| r.get::<_, &[u8]>(0) == id.as_slice());
    if same {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: entry_place(name, first as u64),
        what: format!(
            "{} of these {n} entries' rows were already there and differ from what this store wrote: another writer? the log is stopped",
            n - inserted
        ),
    })
}

/// Records a signed head; a retry finding it already there is success.
pub(super) async fn insert_head(
    c: &mut Client,
    log: i32,
    seq: i64,
    size: u64,
    record: &[u8],
) -> Result<(), StoreError> {
    let n = c
        .execute(
            "INSERT INTO coldtrail_heads (log, seq, size, record) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&log, &seq, &(size as i64), &record],
        )
        .await
        .map_err(|e| classify("inserting a signed head", e))?;
    if n == 1 {
        return Ok(());
    }
    let there = c
        .query_one(
            "SELECT record FROM coldtrail_heads WHERE log = $1 AND seq = $2",
            &[&log, &seq],
        )
        .await
        .map_err(|e| classify("checking an earlier try", e))?;
    if there.get::<_, &[u8]>(0) == record {
        Ok(())
    } else {
        Err(StoreError::Stopped(format!(
            "signed head {seq} was already recorded by another writer"
        )))
    }
}
