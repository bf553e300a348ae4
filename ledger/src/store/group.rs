//! What both stores' writers share: the requests on their queues, and the
//! group one commit takes from the queue and answers.

use tokio::sync::oneshot;

use super::{Appended, StoreConfig, StoreError};
use crate::hash::Digest;
use crate::head::SignedTreeHead;

pub(crate) type AppendReply = oneshot::Sender<Result<Appended, StoreError>>;
pub(crate) type HeadReply = oneshot::Sender<Result<SignedTreeHead, StoreError>>;

/// A request to a store's writer.
pub(crate) enum Request {
    Append {
        entries: Vec<Vec<u8>>,
        ids: Vec<Digest>,
        reply: AppendReply,
    },
    SignHead {
        reply: HeadReply,
    },
}

/// The appends one commit writes, and the head requests answered after it.
#[derive(Default)]
pub(crate) struct Group {
    pub appends: Vec<(Vec<Vec<u8>>, Vec<Digest>, AppendReply)>,
    pub head_waiters: Vec<HeadReply>,
    pub entries: usize,
    bytes: usize,
}

impl Group {
    /// Takes a request; returns whether the group is full (four blocks'
    /// worth of entries or bytes: the most one commit writes).
    pub fn add(&mut self, req: Request, config: &StoreConfig) -> bool {
        match req {
            Request::Append {
                entries,
                ids,
                reply,
            } => {
                self.entries += entries.len();
                self.bytes += entries.iter().map(Vec::len).sum::<usize>();
                self.appends.push((entries, ids, reply));
            }
            Request::SignHead { reply } => self.head_waiters.push(reply),
        }
        self.entries >= 4 * config.max_block_entries || self.bytes >= 4 * config.max_block_bytes
    }

    /// The group's entry ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &Digest> {
        self.appends.iter().flat_map(|(_, ids, _)| ids.iter())
    }

    /// The group's entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.appends
            .iter()
            .flat_map(|(entries, _, _)| entries.iter())
    }

    /// Answers the appends: committed from `first_index` on, in order.
    pub fn committed(&mut self, first_index: u64) {
        let mut at = first_index;
        for (entries, ids, reply) in self.appends.drain(..) {
            let n = entries.len() as u64;
            let _ = reply.send(Ok(Appended {
                first_index: at,
                ids,
            }));
            at += n;
        }
    }

    /// Answers the appends: not written, the store stopped.
    pub fn refuse_appends(&mut self, why: &str) {
        for (_, _, reply) in self.appends.drain(..) {
            let _ = reply.send(Err(StoreError::Stopped(why.to_string())));
        }
    }

    /// Answers everything: nothing written, the store had stopped.
    pub fn refuse(&mut self, why: &str) {
        self.refuse_appends(why);
        for reply in self.head_waiters.drain(..) {
            let _ = reply.send(Err(StoreError::Stopped(why.to_string())));
        }
    }

    /// Answers the head requests with what signing gave.
    pub fn answer_heads(&mut self, res: &Result<Option<SignedTreeHead>, StoreError>) {
        for reply in self.head_waiters.drain(..) {
            let _ = reply.send(match res {
                Ok(Some(h)) => Ok(*h),
                Ok(None) => Err(StoreError::Stopped("no head was signed".into())),
                Err(e) => Err(StoreError::Stopped(e.to_string())),
            });
        }
    }
}
