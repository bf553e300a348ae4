//! What subscribers follow: verdict and recall entries as they commit,
//! read from the committed-entry feed (never from the rules' memory), so a
//! subscriber sees exactly what the ledger records.

use std::sync::Arc;

use analytics::lineage::{At, VerdictView};
use futures_util::Stream;
use ledger::entry::{Entry, RecallChange};
use tokio::sync::broadcast;

use crate::model::{Entry as EntryNode, RecallNotice, Verdict};

/// A committed entry subscribers may want.
#[derive(Debug, Clone)]
pub enum Notice {
    Verdict(Arc<VerdictView>),
    Recall(Arc<RecallNotice>),
}

/// The node's notices, for every subscription.
#[derive(Clone)]
pub struct Notices(broadcast::Sender<Notice>);

/// Notices a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 4096;

impl Notices {
    /// Follows `node` from what is committed now on.
    pub fn follow(
        node: Arc<shards::Node>,
    ) -> Result<(Notices, tokio::task::JoinHandle<()>), shards::ShardError> {
        let from: Vec<u64> = node.shards().iter().map(|s| s.committed()).collect();
        let mut feed = shards::feed::Subscription::follow(node, from, 1024)?;
        let (tx, _) = broadcast::channel(BACKLOG);
        let sender = tx.clone();
        let task = tokio::spawn(async move {
            while let Ok(batch) = feed.next().await {
                for (bytes, index) in batch.entries.iter().zip(batch.first_index..) {
                    let kind = ledger::entry::kind_of(bytes);
                    if !matches!(kind, Some("verdict" | "recall")) {
                        continue;
                    }
                    let at = At {
                        shard: batch.shard,
                        index,
                        id: ledger::entry_id(bytes).0,
                    };
                    let notice = match Entry::from_bytes(bytes) {
                        Ok(Entry::Verdict(v)) => Notice::Verdict(Arc::new(VerdictView {
                            entry: at,
                            subject: v.subject,
                            rule: v.rule,
                            kind: v.kind.name(),
                            from_ms: v.from_ms,
                            to_ms: v.to_ms,
                            explanation: v.explanation,
                            evidence: v.evidence.iter().map(At::from).collect(),
                        })),
                        Ok(Entry::Recall(c)) => Notice::Recall(Arc::new(recall_notice(at, c))),
                        _ => continue,
                    };
                    // No subscriber: nothing to do.
                    let _ = sender.send(notice);
                }
            }
        });
        Ok((Notices(tx), task))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.subscribe()
    }
}

fn recall_notice(at: At, c: RecallChange) -> RecallNotice {
    let entry = EntryNode(at);
    match c {
        RecallChange::Opened {
            lot, reason, by, ..
        } => RecallNotice {
            change: "opened".into(),
            recall_id: ledger::Digest(at.id).to_hex(),
            lot: Some(lot),
            reason,
            by,
            entry,
        },
        RecallChange::Widened {
            recall,
            reason,
            by,
            added,
            ..
        } => RecallNotice {
            change: "widened".into(),
            recall_id: recall.to_hex(),
            lot: added.into_iter().next(),
            reason,
            by,
            entry,
        },
        RecallChange::Closed {
            recall, reason, by, ..
        } => RecallNotice {
            change: "closed".into(),
            recall_id: recall.to_hex(),
            lot: None,
            reason,
            by,
            entry,
        },
    }
}

/// Breach verdicts that pass `keep`.
pub fn breaches(
    rx: broadcast::Receiver<Notice>,
    keep: impl Fn(&VerdictView) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Verdict> {
    futures_util::stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(Notice::Verdict(v)) if v.kind == "breach" && keep(&v) => {
                    return Some((Verdict((*v).clone()), (rx, keep)))
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// Every recall change.
pub fn recalls(rx: broadcast::Receiver<Notice>) -> impl Stream<Item = RecallNotice> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Notice::Recall(r)) => return Some(((*r).clone(), rx)),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
