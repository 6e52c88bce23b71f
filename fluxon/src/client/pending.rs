//! Calls waiting for their replies: matched by id, failed together when a link drops, and timed
//! out by one sweeper task per client instead of a timer per call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::CallError;

/// What a waiting call receives: the reply's bytes, or why there is none.
pub(super) type Delivery = Result<Bytes, CallError>;

struct Waiting {
    waiter: oneshot::Sender<Delivery>,
    deadline: Instant,
    timeout: Duration,
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

    /// Registers call `id`, which times out at `deadline`; also says whether it is the only call
    /// waiting now.
    pub fn insert(
        &self,
        id: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> (oneshot::Receiver<Delivery>, bool) {
        let (waiter, delivery) = oneshot::channel();
        let mut table = self.lock();
        let alone = table.calls.is_empty();
        table.calls.insert(
            id,
            Waiting {
                waiter,
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
        (delivery, alone)
    }

    /// Forgets call `id` (its caller gave up).
    pub fn remove(&self, id: u64) {
        self.lock().calls.remove(&id);
    }

    /// Hands a reply (or the server's error) to the call waiting for it, if it still waits.
    pub fn complete(&self, id: u64, delivery: Delivery) {
        let waiting = self.lock().calls.remove(&id);
        match waiting {
            Some(waiting) => {
                if waiting.waiter.send(delivery).is_ok() {
                    self.woken.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => tracing::debug!(id, "reply for a call no longer waiting"),
        }
    }

    /// Fails every waiting call: the link they went out on is gone.
    pub fn fail_all(&self) {
        let calls = std::mem::take(&mut self.lock().calls);
        for (_, waiting) in calls {
            let _ = waiting.waiter.send(Err(CallError::Disconnected));
        }
    }

    /// Times out calls past their deadline, until `closed`. Sleeps until the earliest deadline it
    /// knows of; wakes early only when a call with an earlier one arrives.
    pub async fn sweep(self: Arc<Self>, closed: CancellationToken) {
        loop {
            let next = {
                let now = Instant::now();
                let mut table = self.lock();
                let expired: Vec<u64> = table
                    .calls
                    .iter()
                    .filter(|(_, waiting)| waiting.deadline <= now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    if let Some(waiting) = table.calls.remove(&id) {
                        let _ = waiting
                            .waiter
                            .send(Err(CallError::Timeout(waiting.timeout)));
                    }
                }
                table.sweep_at = table.calls.values().map(|w| w.deadline).min();
                table.sweep_at
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
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_reach_their_call_and_late_calls_time_out() {
        let pending = Arc::new(PendingCalls::default());
        let closed = CancellationToken::new();
        tokio::spawn(Arc::clone(&pending).sweep(closed.clone()));
        let now = Instant::now();
        let (slow, alone) = pending.insert(
            1,
            now + Duration::from_millis(50),
            Duration::from_millis(50),
        );
        assert!(alone);
        let (fast, alone) =
            pending.insert(2, now + Duration::from_secs(60), Duration::from_secs(60));
        assert!(!alone);
        pending.complete(2, Ok(Bytes::from_static(b"ok")));
        assert_eq!(&fast.await.unwrap().unwrap()[..], b"ok");
        let started = std::time::Instant::now();
        match slow.await.unwrap() {
            Err(CallError::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // An earlier deadline than the sweeper's next look wakes it.
        let (far, _) = pending.insert(
            3,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let (near, _) = pending.insert(
            4,
            Instant::now() + Duration::from_millis(20),
            Duration::from_millis(20),
        );
        assert!(matches!(near.await.unwrap(), Err(CallError::Timeout(_))));
        closed.cancel();
        assert!(matches!(far.await.unwrap(), Err(CallError::Disconnected)));
    }
}
