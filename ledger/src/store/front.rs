//! The caller's side of both stores: the bounded queue to the store's one
//! writer, what it counts, and whether the store still runs. The embedded
//! store's writer is a thread and the PostgreSQL store's a task, so only
//! the queue's sending half differs ([`Queue`]); everything a caller asks
//! of a writer (an append, a head) goes through one [`Front`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::group::Request;
use super::{check_append, Pending, StoreError};
use crate::head::SignedTreeHead;

/// What a store's front and its writer both see.
#[derive(Default)]
pub(crate) struct Gate {
    /// Set when a write failed: after a failed fsync the page cache cannot
    /// be trusted, and after a database failure outlasting the retries the
    /// shard above has already numbered the group, so the store stops
    /// rather than guess (fail-stop).
    stopped: Mutex<Option<String>>,
    /// Requests sent to the writer and not yet taken by it.
    queued: AtomicUsize,
}

impl Gate {
    /// Why the store stopped, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.stopped.lock().expect("stopped lock").clone()
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.lock().expect("stopped lock").is_some()
    }

    /// Stops the store for `why`; a later failure replaces the reason.
    pub fn stop(&self, why: String) {
        *self.stopped.lock().expect("stopped lock") = Some(why);
    }

    /// Stops the store for `why` unless it is already stopped: the first
    /// failure is the cause worth reporting.
    #[cfg(feature = "postgres")]
    pub fn stop_first(&self, why: String) {
        self.stopped
            .lock()
            .expect("stopped lock")
            .get_or_insert(why);
    }

    pub fn check_running(&self) -> Result<(), StoreError> {
        match self.stopped() {
            Some(why) => Err(StoreError::Stopped(why)),
            None => Ok(()),
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A request joins the queue. Counted before sending: the writer may
    /// take it at once.
    fn joined(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// The writer took one request off the queue.
    pub fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a request did not join the queue.
pub(crate) enum Refused {
    Full,
    Closed,
}

/// The sending half of a writer's queue.
pub(crate) trait Queue {
    /// Queues `req` without waiting.
    fn try_push(&self, req: Request) -> Result<(), Refused>;
}

impl Queue for std::sync::mpsc::SyncSender<Request> {
    fn try_push(&self, req: Request) -> Result<(), Refused> {
        self.try_send(req).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => Refused::Full,
            std::sync::mpsc::TrySendError::Disconnected(_) => Refused::Closed,
        })
    }
}

impl Queue for tokio::sync::mpsc::Sender<Request> {
    fn try_push(&self, req: Request) -> Result<(), Refused> {
        self.try_send(req).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => Refused::Full,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }
}

/// A store's front: its callers' way to the writer.
pub(crate) struct Front<Q> {
    pub gate: Arc<Gate>,
    /// Dropped to stop the writer (it finishes what is queued first).
    tx: Option<Q>,
    queue_depth: usize,
    max_entry_bytes: usize,
}

impl<Q: Queue> Front<Q> {
    /// The front over `tx`, with `config`'s queue depth and entry limit.
    pub fn new(gate: Arc<Gate>, tx: Q, config: &super::StoreConfig) -> Front<Q> {
        Front {
            gate,
            tx: Some(tx),
            queue_depth: config.queue_depth,
            max_entry_bytes: config.max_entry_bytes,
        }
    }

    /// The queue's sending half, while the store is open.
    fn sender(&self) -> &Q {
        self.tx.as_ref().expect("sender lives until close")
    }

    /// Drops the sending half: the writer finishes what is queued and ends.
    pub fn close(&mut self) {
        self.tx = None;
    }

    /// Checks and hashes `entries` (on the caller's thread) into an append
    /// request, refusing at once when the store has stopped.
    pub fn prepare(&self, entries: Vec<Vec<u8>>) -> Result<(Request, Pending), StoreError> {
        self.gate.check_running()?;
        let ids = check_append(&entries, self.max_entry_bytes)?;
        let (reply, rx) = oneshot::channel();
        let req = Request::Append {
            entries,
            ids,
            reply,
            queued_at: Instant::now(),
        };
        Ok((req, Pending(rx)))
    }

    /// Queues a request; a full queue refuses it (`QueueFull`).
    pub fn send(&self, req: Request) -> Result<(), StoreError> {
        self.gate.joined();
        let sent = self.sender().try_push(req);
        if sent.is_err() {
            self.gate.taken();
        }
        match sent {
            Ok(()) => Ok(()),
            Err(Refused::Full) => Err(StoreError::QueueFull(self.queue_depth)),
            Err(Refused::Closed) => Err(StoreError::Stopped("the writer has ended".into())),
        }
    }

    /// [`super::Store::submit`].
    pub fn submit(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        let (req, pending) = self.prepare(entries)?;
        self.send(req)?;
        Ok(pending)
    }

    /// [`super::Store::request_head`] (`soon`: [`super::Store::request_head_soon`]).
    pub fn request_head(&self, soon: bool) -> Result<Pending<SignedTreeHead>, StoreError> {
        self.gate.check_running()?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::SignHead { reply, soon })?;
        Ok(Pending(rx))
    }
}

/// Whether entries exist that no signed head covers yet (a stopped store
/// signs nothing more, so it has none to cover).
pub(crate) fn tail_unsigned(gate: &Gate, latest_head: Option<&SignedTreeHead>, size: u64) -> bool {
    !gate.is_stopped() && latest_head.map_or(0, |h| h.head.size) < size
}

impl Front<std::sync::mpsc::SyncSender<Request>> {
    /// Like [`Front::submit`], but waits for room in the queue instead of
    /// refusing (a thread's queue only: waiting would block an async task).
    pub fn submit_waiting(&self, entries: Vec<Vec<u8>>) -> Result<Pending, StoreError> {
        let (req, pending) = self.prepare(entries)?;
        self.gate.joined();
        self.sender().send(req).map_err(|_| {
            self.gate.taken();
            StoreError::Stopped("the writer has ended".into())
        })?;
        Ok(pending)
    }
}
