//! A server-wide budget of bytes: what every connection together may hold in frames still being
//! received and in replies still waiting to be written, beyond each connection's own small
//! allowance.
//!
//! Without it the bounds are per connection only (a 16 MiB frame, 64 calls in flight, a 1 MiB
//! queue), and multiplied by thousands of connections they bound nothing. A reader reserves a
//! large frame's length from the budget as soon as the length is read, before the body is, and
//! simply stops reading while the budget is spent: backpressure on that peer, never a crash. The
//! allowance keeps small frames flowing for everyone meanwhile, so many half-sent large frames
//! cannot starve a connection that sends small calls.
//!
//! A counter and a wake-up rather than a semaphore: a semaphore hands freed permits to the oldest
//! waiter first, so one waiting 16 MiB frame would hold back every small reservation behind it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Bytes that many holders draw on and give back.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
    freed: Notify,
    /// How many reservations had to wait for room (a sign the budget is what holds peers back).
    waited: AtomicU64,
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

impl Reservation {
    /// The bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            freed: Notify::new(),
            waited: AtomicU64::new(0),
        })
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// How many reservations have had to wait.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if that many are free now; `false` leaves the budget as it was.
    pub fn try_take_raw(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|&after| after <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` taken with [`try_take_raw`](Self::try_take_raw).
    pub fn give(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.freed.notify_waiters();
    }

    /// Completes when bytes are given back (register with `enable` before looking).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// `bytes` now, if free.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.try_take_raw(bytes).then(|| Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// `bytes`, waiting until they are free. A request larger than the whole budget takes the
    /// whole budget (the configuration makes the budget at least one frame, so this is a
    /// backstop, never a deadlock). Cancel safe: a waiter that gives up holds nothing.
    pub async fn take(self: &Arc<Self>, bytes: usize) -> Reservation {
        let bytes = bytes.min(self.limit);
        if let Some(reservation) = self.try_take(bytes) {
            return reservation;
        }
        self.waited.fetch_add(1, Ordering::Relaxed);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so room made in between still wakes us.
            freed.as_mut().enable();
            if let Some(reservation) = self.try_take(bytes) {
                return reservation;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn takes_within_the_limit_and_waits_past_it() {
        let budget = Budget::new(100);
        let a = budget.try_take(60).unwrap();
        assert!(budget.try_take(41).is_none(), "60 + 41 > 100");
        let b = budget.try_take(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        let waiter = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.take(50).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "waits while the budget is spent");
        drop(b);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "40 free is not 50");
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.bytes(), 50);
        assert_eq!(budget.in_use(), 50);
        assert_eq!(budget.waited(), 1);
        drop(c);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_request_over_the_whole_budget_takes_all_of_it() {
        let budget = Budget::new(10);
        let all = budget.take(1_000).await;
        assert_eq!(all.bytes(), 10);
        assert!(!budget.try_take_raw(1));
        drop(all);
        assert!(budget.try_take_raw(10));
        budget.give(10);
        assert_eq!(budget.in_use(), 0);
    }
}
