//! Calls waiting for their replies: matched by id, failed together when a link drops, and timed
//! out by one sweeper task per client instead of a timer per call.
//!
//! A reply read by another task is left in its call's entry and the call's task woken; the call
//! takes it out. No channel per call: the table is the meeting point, under the lock it takes
//! anyway. (A call that reads its own reply, see `reading`, only removes its entry.)
//!
//! The table also holds the link calls go out on, and numbers the calls: a call is numbered,
//! registered with its waker and queued on the link under one taking of the lock
//! ([`PendingCalls::start`]), and is looked at again only once it is woken.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reading::ReadSide;
use super::CallError;
use crate::wire::{Outbox, SendError};

/// What a waiting call receives: the reply's bytes, or why there is none.
pub(super) type Delivery = Result<Bytes, CallError<Bytes>>;

struct Waiting {
    slot: Slot,
    deadline: Instant,
    timeout: Duration,
}

/// Where a call's reply meets the call.
enum Slot {
    /// No reply yet; the task to wake when it comes.
    Open(Option<Waker>),
    /// The reply (or why there is none), for the call to take.
    Filled(Delivery),
}

impl Slot {
    /// Puts the delivery in an open slot; the waker to wake. `None` if it was filled already.
    fn fill(&mut self, delivery: Delivery) -> Option<Option<Waker>> {
        match self {
            Slot::Open(waker) => {
                let waker = waker.take();
                *self = Slot::Filled(delivery);
                Some(waker)
            }
            Slot::Filled(_) => None,
        }
    }
}

/// Call ids are our own sequential numbers, never a peer's: a multiplicative hash is enough, and
/// much cheaper than SipHash on this path.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
        self.0 = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Table {
    calls: Calls,
    /// The next call's id (ids start at 1).
    next_id: u64,
    /// The link calls go out on now; `None` between connections.
    link: Option<Up>,
    /// When the sweeper will next look; `None` while it sleeps with nothing to wait for.
    sweep_at: Option<Instant>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            calls: HashMap::default(),
            next_id: 1,
            link: None,
            sweep_at: None,
        }
    }
}

/// A connected link, as calls use it.
#[derive(Clone)]
pub(super) struct Up {
    /// Where calls are queued.
    pub outbox: Arc<Outbox>,
    /// Where a call reads its own reply when it is the only one waiting.
    pub read: Arc<ReadSide>,
    /// The largest frame either side takes.
    pub max_frame: usize,
}

/// What [`PendingCalls::start`] did with a call.
pub(super) enum Started {
    /// Registered and queued on the link behind other calls.
    Queued { id: u64 },
    /// Registered, not queued: the only call waiting, which writes itself straight to the socket
    /// and reads its own reply (outside the table's lock: the reply comes back to a reader that
    /// is already looking).
    Alone { id: u64, link: Up },
    /// Registered, but the link's queue refused it: full (wait for room) or over the frame limit.
    Refused {
        id: u64,
        why: SendError,
        outbox: Arc<Outbox>,
        max: usize,
    },
    /// Between connections; not registered.
    Down,
}

/// The calls of one client that await replies.
#[derive(Default)]
pub(super) struct PendingCalls {
    table: Mutex<Table>,
    /// Wakes the sweeper when a call's deadline is earlier than its next look.
    sweep: Notify,
    /// Replies handed to callers since the writer last looked (a hint for batching writes).
    pub woken: Arc<AtomicUsize>,
}

type Calls = HashMap<u64, Waiting, std::hash::BuildHasherDefault<IdHasher>>;

/// Numbers a call from `next_id` and registers it in `calls`; its id, and whether it is the only
/// one waiting.
fn register(
    calls: &mut Calls,
    next_id: &mut u64,
    waker: Option<Waker>,
    deadline: Instant,
    timeout: Duration,
) -> (u64, bool) {
    let id = *next_id;
    *next_id += 1;
    let alone = calls.is_empty();
    let waiting = Waiting {
        slot: Slot::Open(waker),
        deadline,
        timeout,
    };
    calls.insert(id, waiting);
    (id, alone)
}

/// Whether `deadline` is earlier than the sweeper's next look (which it then becomes).
fn take_earlier(sweep_at: &mut Option<Instant>, deadline: Instant) -> bool {
    let earlier = sweep_at.is_none_or(|at| deadline < at);
    if earlier {
        *sweep_at = Some(deadline);
    }
    earlier
}

impl PendingCalls {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section is one map operation: a poisoned lock holds consistent data.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The link calls go out on from now (`None`: none until the next connection).
    pub fn set_link(&self, link: Option<Up>) {
        self.lock().link = link;
    }

    /// Numbers a call that times out at `deadline` and registers it with `waker`; if a link is up
    /// and other calls wait, queues it there with `send` (its id and the queue), all under one
    /// taking of the lock. Whatever comes back with an id is registered: the caller removes it if
    /// it gives up.
    pub fn start(
        &self,
        waker: &Waker,
        deadline: Instant,
        timeout: Duration,
        send: impl FnOnce(u64, &Outbox) -> Result<(), SendError>,
    ) -> Started {
        let mut guard = self.lock();
        let table = &mut *guard;
        let Some(link) = &table.link else {
            return Started::Down;
        };
        let (id, alone) = register(
            &mut table.calls,
            &mut table.next_id,
            Some(waker.clone()),
            deadline,
            timeout,
        );
        // Queued under the table's lock, so numbering and queueing keep one order.
        let started = if alone {
            Started::Alone {
                id,
                link: link.clone(),
            }
        } else {
            match send(id, &link.outbox) {
                Ok(()) => Started::Queued { id },
                Err(why) => Started::Refused {
                    id,
                    why,
                    outbox: Arc::clone(&link.outbox),
                    max: link.max_frame,
                },
            }
        };
        let earlier = take_earlier(&mut table.sweep_at, deadline);
        drop(guard);
        if earlier {
            self.sweep.notify_one();
        }
        started
    }

    /// Numbers and registers a call that times out at `deadline` (its waker comes with its first
    /// poll); its id.
    pub fn insert(&self, deadline: Instant, timeout: Duration) -> u64 {
        let mut guard = self.lock();
        let table = &mut *guard;
        let (id, _) = register(
            &mut table.calls,
            &mut table.next_id,
            None,
            deadline,
            timeout,
        );
        let earlier = take_earlier(&mut table.sweep_at, deadline);
        drop(guard);
        if earlier {
            self.sweep.notify_one();
        }
        id
    }

    /// Call `id`'s delivery if it was handed over (taking it removes the entry); otherwise
    /// leaves `cx`'s waker in the entry for whoever hands it over.
    pub fn poll_slot(&self, id: u64, cx: &mut Context<'_>) -> Poll<Delivery> {
        let mut table = self.lock();
        let Entry::Occupied(mut entry) = table.calls.entry(id) else {
            // Never inserted, or forgotten: there is no reply to wait for.
            return Poll::Ready(Err(CallError::Disconnected));
        };
        if let Slot::Open(waker) = &mut entry.get_mut().slot {
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        match entry.remove().slot {
            Slot::Filled(delivery) => Poll::Ready(delivery),
            Slot::Open(_) => Poll::Ready(Err(CallError::Disconnected)),
        }
    }

    /// Forgets call `id` (its caller gave up, or read its reply itself).
    pub fn remove(&self, id: u64) {
        self.lock().calls.remove(&id);
    }

    /// Hands a reply (or the server's error) to the call waiting for it, if it still waits.
    pub fn complete(&self, id: u64, delivery: Delivery) {
        let filled = self
            .lock()
            .calls
            .get_mut(&id)
            .and_then(|waiting| waiting.slot.fill(delivery));
        match filled {
            Some(waker) => {
                self.woken.fetch_add(1, Ordering::Relaxed);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => tracing::debug!(id, "reply for a call no longer waiting"),
        }
    }

    /// Fails every waiting call: the link they went out on is gone.
    pub fn fail_all(&self) {
        let wakers: Vec<Waker> = self
            .lock()
            .calls
            .values_mut()
            .filter_map(|waiting| waiting.slot.fill(Err(CallError::Disconnected)).flatten())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Times out calls past their deadline, until `closed`. Sleeps until the earliest deadline it
    /// knows of; wakes early only when a call with an earlier one arrives.
    pub async fn sweep(self: Arc<Self>, closed: CancellationToken) {
        loop {
            let next = {
                let now = Instant::now();
                let mut wakers = Vec::new();
                let mut table = self.lock();
                let mut next: Option<Instant> = None;
                for waiting in table.calls.values_mut() {
                    if !matches!(waiting.slot, Slot::Open(_)) {
                        continue;
                    }
                    if waiting.deadline <= now {
                        let timeout = Err(CallError::Timeout(waiting.timeout));
                        wakers.extend(waiting.slot.fill(timeout).flatten());
                    } else {
                        next = Some(next.map_or(waiting.deadline, |n| n.min(waiting.deadline)));
                    }
                }
                table.sweep_at = next;
                drop(table);
                for waker in wakers {
                    waker.wake();
                }
                next
            };
            // A call inserted from here on with an earlier deadline leaves a permit in `sweep`.
            tokio::select! {
                () = closed.cancelled() => break,
                () = self.sweep.notified() => {}
                () = sleep_until(next) => {}
            }
        }
        self.fail_all();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        // Off tokio's timer wheel (see `timer`): a timer there costs every park of the runtime.
        Some(at) => crate::timer::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn slot(pending: &PendingCalls, id: u64) -> Delivery {
        std::future::poll_fn(|cx| pending.poll_slot(id, cx)).await
    }

    #[tokio::test]
    async fn replies_reach_their_call_and_late_calls_time_out() {
        let pending = Arc::new(PendingCalls::default());
        let closed = CancellationToken::new();
        tokio::spawn(Arc::clone(&pending).sweep(closed.clone()));
        let now = Instant::now();
        assert_eq!(
            pending.insert(now + Duration::from_millis(50), Duration::from_millis(50)),
            1
        );
        assert_eq!(
            pending.insert(now + Duration::from_secs(60), Duration::from_secs(60)),
            2
        );
        pending.complete(2, Ok(Bytes::from_static(b"ok")));
        assert_eq!(&slot(&pending, 2).await.unwrap()[..], b"ok");
        let started = std::time::Instant::now();
        match slot(&pending, 1).await {
            Err(CallError::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // An earlier deadline than the sweeper's next look wakes it.
        let id = pending.insert(
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert_eq!(id, 3);
        let id = pending.insert(
            Instant::now() + Duration::from_millis(20),
            Duration::from_millis(20),
        );
        assert_eq!(id, 4);
        assert!(matches!(
            slot(&pending, 4).await,
            Err(CallError::Timeout(_))
        ));
        closed.cancel();
        assert!(matches!(
            slot(&pending, 3).await,
            Err(CallError::Disconnected)
        ));
    }
}
