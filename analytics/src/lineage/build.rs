//! Building the graph from a node: from its checkpoint and the logs after it, from the whole logs, or kept current from the committed-entry feed.

use super::*;

/// The graph from its checkpoint when one matches the logs, else from a scan
/// of every log; and the position on each shard it was built up to.
pub fn open(node: &shards::Node) -> Result<(Lineage, Vec<u64>), shards::ShardError> {
    match checkpoint::load(node) {
        Some(loaded) => Ok(loaded),
        None => scan(node),
    }
}

/// The graph of everything committed on `node`, and the position on each
/// shard it was built up to (where [`follow`] continues).
pub fn scan(node: &shards::Node) -> Result<(Lineage, Vec<u64>), shards::ShardError> {
    let mut lineage = Lineage::new();
    let mut scanned = Vec::with_capacity(node.shards().len());
    for shard in node.shards() {
        let len = shard.committed();
        scanned.push(len);
        let mut from = 0;
        while from < len {
            let to = (from + 4096).min(len);
            for (bytes, index) in shard.store().entries(from, to)?.into_iter().zip(from..) {
                apply_bytes(&mut lineage, shard.id(), index, &bytes);
            }
            from = to;
        }
    }
    lineage.positions = scanned.clone();
    Ok((lineage, scanned))
}

/// Applies an encoded entry if it is a custody event, a recall, a verdict
/// or an identity change (read without decoding anything else).
pub(crate) fn apply_bytes(lineage: &mut Lineage, shard: u32, index: u64, bytes: &[u8]) {
    if !matches!(
        ledger::entry::kind_of(bytes),
        Some("custody" | "recall" | "identity" | "verdict")
    ) {
        return;
    }
    let at = EntryRef {
        shard,
        index,
        id: ledger::entry_id(bytes),
    };
    lineage.sources.push((shard, index));
    match ledger::Entry::from_bytes(bytes) {
        Ok(ledger::Entry::Custody(e)) => lineage.apply(&at, &e),
        Ok(ledger::Entry::Recall(c)) => lineage.apply_recall(&at, &c),
        Ok(ledger::Entry::Verdict(v)) => lineage.apply_verdict(&at, &v),
        Ok(ledger::Entry::Identity(ledger::entry::IdentityChange::OrgRegistered {
            org,
            name,
            role,
            ..
        })) => lineage.apply_org(&org, &name, role),
        Ok(ledger::Entry::Identity(ledger::entry::IdentityChange::DeviceRegistered {
            org,
            device,
            ..
        })) => {
            let (d, o) = (lineage.intern(&device), lineage.intern(&org));
            lineage.devices.push((d, o));
        }
        _ => {}
    }
}

/// Keeps `lineage` up to date with every custody event committed on `node`
/// after `from` (as [`scan`] returned it), until the task is aborted.
pub fn follow(
    node: std::sync::Arc<shards::Node>,
    lineage: std::sync::Arc<std::sync::RwLock<Lineage>>,
    from: Vec<u64>,
) -> Result<tokio::task::JoinHandle<()>, shards::ShardError> {
    let mut feed = shards::feed::Subscription::follow(node, from, 4096)?;
    Ok(tokio::spawn(async move {
        while let Ok(batch) = feed.next().await {
            let mut g = lineage.write().expect("lineage lock");
            for (bytes, index) in batch.entries.iter().zip(batch.first_index..) {
                apply_bytes(&mut g, batch.shard, index, bytes);
            }
            let end = batch.first_index + batch.entries.len() as u64;
            if let Some(p) = g.positions.get_mut(batch.shard as usize) {
                *p = (*p).max(end);
            }
        }
    }))
}
