//! Calls waiting for their replies: matched by id, failed together when a link drops, and timed
//! out by one sweeper task per client instead of a timer per call.
//!
//! A reply read by another task is left in its call's entry and the call's task woken; the call
//! takes it out. No channel per call: the table is the meeting point, under the lock it takes
//! anyway. (A call that reads its own reply, see `reading`, only removes its entry.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::CallError;

/// What a waiting call receives: the reply's bytes, or why there is none.
pub(super) type Delivery = Result<Bytes, CallError>;

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

#[derive(Default)]
struct Table {
    calls: HashMap<u64, Waiting, std::hash::BuildHasherDefault<IdHasher>>,
    /// When the sweeper will next look; `None` while it sleeps with nothing to wait for.
    sweep_at: Option<Instant>,
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

impl PendingCalls {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section is one map operation: a poisoned lock holds consistent data.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers call `id`, which times out at `deadline`; says whether it is the only call
    /// waiting now.
    pub fn insert(&self, id: u64, deadline: Instant, timeout: Duration) -> bool {
        let mut table = self.lock();
        let alone = table.calls.is_empty();
        table.calls.insert(
            id,
            Waiting {
                slot: Slot::Open(None),
                deadline,
                timeout,
            },
        );
        let earlier = table.sweep_at.is_none_or(|at| deadline < at);
        if earlier {
            table.sweep_at = Some(deadline);
        }
        drop(table);
        if earlier {
            self.sweep.notify_one();
        }
        alone
    }

    /// Call `id`'s delivery if it was handed over (taking it removes the entry); otherwise
    /// leaves `cx`'s waker in the entry for whoever hands it over.
    pub fn poll_slot(&self, id: u64, cx: &mut Context<'_>) -> Poll<Delivery> {
        let mut table = self.lock();
        let Some(waiting) = table.calls.get_mut(&id) else {
            // Never inserted, or forgotten: there is no reply to wait for.
            return Poll::Ready(Err(CallError::Disconnected));
        };
        match &mut waiting.slot {
            Slot::Open(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Filled(_) => match table.calls.remove(&id) {
                Some(Waiting {
                    slot: Slot::Filled(delivery),
                    ..
                }) => Poll::Ready(delivery),
                _ => Poll::Ready(Err(CallError::Disconnected)),
            },
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
        assert!(pending.insert(
            1,
            now + Duration::from_millis(50),
            Duration::from_millis(50),
        ));
        assert!(!pending.insert(2, now + Duration::from_secs(60), Duration::from_secs(60)));
        pending.complete(2, Ok(Bytes::from_static(b"ok")));
        assert_eq!(&slot(&pending, 2).await.unwrap()[..], b"ok");
        let started = std::time::Instant::now();
        match slot(&pending, 1).await {
            Err(CallError::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // An earlier deadline than the sweeper's next look wakes it.
        pending.insert(
            3,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        );
        pending.insert(
            4,
            Instant::now() + Duration::from_millis(20),
            Duration::from_millis(20),
        );
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
