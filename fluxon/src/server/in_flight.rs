//! The per-connection bound on calls running at once: an atomic count, and a wake-up for the reader
//! waiting at the limit. Cheaper than a semaphore on the hot path (no lock to release a slot).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Calls running on one connection.
pub(crate) struct InFlight {
    running: AtomicUsize,
    max: usize,
    freed: Notify,
}

/// One running call; frees its slot when dropped.
pub(crate) struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == self.0.max {
            // The reader may be waiting for a free slot.
            self.0.freed.notify_one();
        }
    }
}

impl InFlight {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(InFlight {
            running: AtomicUsize::new(0),
            max,
            freed: Notify::new(),
        })
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Whether a slot is free now.
    pub fn has_room(&self) -> bool {
        self.running.load(Ordering::Acquire) < self.max
    }

    /// A slot if one is free now.
    pub fn try_start(self: &Arc<Self>) -> Option<Slot> {
        let mut running = self.running.load(Ordering::Acquire);
        loop {
            if running >= self.max {
                return None;
            }
            match self.running.compare_exchange_weak(
                running,
                running + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Slot(Arc::clone(self))),
                Err(now) => running = now,
            }
        }
    }

    /// Waits for a free slot.
    pub async fn start(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(slot) = self.try_start() {
                return slot;
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
    async fn bounded_and_freed_on_drop() {
        let in_flight = InFlight::new(2);
        let a = in_flight.try_start().unwrap();
        let _b = in_flight.try_start().unwrap();
        assert!(in_flight.try_start().is_none());
        assert_eq!(in_flight.running(), 2);
        let waiter = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            async move { in_flight.start().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "waits while full");
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(in_flight.running(), 2);
        drop(c);
        assert_eq!(in_flight.running(), 1);
    }
}
