//! What both stores' writers share: the requests on their queues, and the
//! group one commit takes from the queue and answers.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::front::Gate;
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
        /// When it joined the queue.
        queued_at: Instant,
    },
    SignHead {
        reply: HeadReply,
        /// Asked by a reader that can share a head signed within
        /// `head_gap` ([`super::Store::request_head_soon`]), not at once.
        soon: bool,
    },
}

/// The appends one commit writes, and the head requests answered after it.
#[derive(Default)]
pub(crate) struct Group {
    pub appends: Vec<(Vec<Vec<u8>>, Vec<Digest>, AppendReply)>,
    pub head_waiters: Vec<HeadReply>,
    /// Requests that share the next head within `head_gap`: the writer
    /// keeps them until it signs one.
    pub soon_waiters: Vec<HeadReply>,
    pub entries: usize,
    bytes: usize,
}

impl Group {
    /// Drains the queue into one group: `first` (none when the wait for it
    /// timed out) and what has queued behind it (`next` takes without
    /// waiting), up to a few blocks' worth per commit. Its soon-waiters join
    /// `soon`, kept until the next head. `None` when the store has stopped:
    /// then every waiter, `soon`'s too, has been refused.
    pub fn gather(
        first: Option<Request>,
        mut next: impl FnMut() -> Option<Request>,
        gate: &Gate,
        config: &StoreConfig,
        soon: &mut Vec<HeadReply>,
    ) -> Option<Group> {
        let mut group = Group::default();
        let mut req = first;
        while let Some(r) = req.take() {
            gate.taken();
            if group.add(r, config) {
                break;
            }
            req = next();
        }
        soon.append(&mut group.soon_waiters);
        if let Some(why) = gate.stopped() {
            group.soon_waiters = std::mem::take(soon);
            group.refuse(&why);
            return None;
        }
        Some(group)
    }

    /// Takes a request; returns whether the group is full (four blocks'
    /// worth of entries or bytes: the most one commit writes).
    pub fn add(&mut self, req: Request, config: &StoreConfig) -> bool {
        match req {
            Request::Append {
                entries,
                ids,
                reply,
                queued_at,
            } => {
                metrics::histogram!(super::QUEUE_WAIT_SECONDS)
                    .record(queued_at.elapsed().as_secs_f64());
                self.entries += entries.len();
                self.bytes += entries.iter().map(Vec::len).sum::<usize>();
                self.appends.push((entries, ids, reply));
            }
            Request::SignHead { reply, soon: false } => self.head_waiters.push(reply),
            Request::SignHead { reply, soon: true } => self.soon_waiters.push(reply),
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
        for reply in self
            .head_waiters
            .drain(..)
            .chain(self.soon_waiters.drain(..))
        {
            let _ = reply.send(Err(StoreError::Stopped(why.to_string())));
        }
    }

    /// Answers the head requests once a head was signed (`force`: because
    /// one was asked for) or signing failed: this group's asks at once, and
    /// the readers waiting for the next head (`soon`) too, since a signed
    /// head covers everything committed.
    pub fn answer_heads(
        &mut self,
        soon: &mut Vec<HeadReply>,
        force: bool,
        res: &Result<Option<SignedTreeHead>, StoreError>,
    ) {
        answer(&mut self.head_waiters, res);
        if force || matches!(res, Ok(Some(_))) {
            answer(soon, res);
        }
    }
}

/// Answers head requests with what signing gave.
fn answer(replies: &mut Vec<HeadReply>, res: &Result<Option<SignedTreeHead>, StoreError>) {
    for reply in replies.drain(..) {
        let _ = reply.send(match res {
            Ok(Some(h)) => Ok(*h),
            Ok(None) => Err(StoreError::Stopped("no head was signed".into())),
            Err(e) => Err(StoreError::Stopped(e.to_string())),
        });
    }
}

/// How long a writer may wait for its next request before a head is due
/// (`None`: until a request comes). `since` is the time since its last head.
///
/// A writer signs a head at least every `head_interval` while entries are
/// unsigned (so within one of the log going idle), at once when asked with
/// `request_head`, and within `head_gap` of its last head when asked with
/// `request_head_soon`: asks in between share that head, so readers and the
/// receipt relay cannot make a log sign (and fsync) a head per ask.
pub(crate) fn head_wait(
    config: &StoreConfig,
    since: Duration,
    tail_unsigned: bool,
    soon_waiting: bool,
) -> Option<Duration> {
    let interval = tail_unsigned.then(|| config.head_interval.saturating_sub(since));
    let gap = soon_waiting.then(|| config.head_gap.saturating_sub(since));
    match (interval, gap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a head is due after a group (see [`head_wait`]), and whether it
/// is asked for (signed even over no new entries).
pub(crate) fn head_due(
    config: &StoreConfig,
    since: Duration,
    asked_now: bool,
    soon_waiting: bool,
) -> Option<bool> {
    if asked_now || (soon_waiting && since >= config.head_gap) {
        Some(true)
    } else if since >= config.head_interval {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_due_by_interval_at_once_or_within_the_gap() {
        let config = StoreConfig {
            head_interval: Duration::from_millis(250),
            head_gap: Duration::from_millis(50),
            ..StoreConfig::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(
            head_wait(&config, ms(10), false, false),
            None,
            "idle and signed: sleep"
        );
        assert_eq!(head_wait(&config, ms(10), true, false), Some(ms(240)));
        assert_eq!(head_wait(&config, ms(10), true, true), Some(ms(40)));
        assert_eq!(head_wait(&config, ms(60), false, true), Some(ms(0)));
        assert_eq!(
            head_due(&config, ms(10), true, false),
            Some(true),
            "asked: at once"
        );
        assert_eq!(
            head_due(&config, ms(10), false, true),
            None,
            "soon: not before the gap"
        );
        assert_eq!(head_due(&config, ms(50), false, true), Some(true));
        assert_eq!(head_due(&config, ms(100), false, false), None);
        assert_eq!(head_due(&config, ms(250), false, false), Some(false));
    }
}
