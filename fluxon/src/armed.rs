//! Rare events in a hot loop, at the price of a flag check: a connection's reader waits for its
//! next frame and, beside it, for a shutdown, a kick or a timer, which almost never fire. Polling
//! each of those on every frame costs locks and timer lookups; but once polled they keep the
//! task's waker and wake it when they fire. So each is polled until its waker is in place, and
//! after that only when a cheap check (an atomic flag, an elapsed timer) says it may be done.
//! [`Stop`] is such a flag beside a cancellation token.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

/// Whether one such event's waker is in place.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    armed: bool,
}

impl Armed {
    /// Whether the event `fut` has happened. `fut` is polled while not yet armed, and after that
    /// only when `maybe` says it may have happened (`maybe` must never miss a completion).
    pub fn ready<F: Future<Output = ()>>(
        &mut self,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
        maybe: impl FnOnce() -> bool,
    ) -> bool {
        if self.armed && !maybe() {
            return false;
        }
        if fut.poll(cx).is_ready() {
            return true;
        }
        self.armed = true;
        false
    }

    /// The future was replaced or reset (a timer moved): poll it again to arm it.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

/// A cancellation token with a flag beside it, for loops that check it on every frame: asking the
/// token takes a lock, the flag is one load. Clones share both.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    token: tokio_util::sync::CancellationToken,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stop {
    /// Sets the flag, then cancels the token (waking whoever awaits it).
    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.token.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Completes once cancelled.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The token itself, for code that takes one.
    pub fn token(&self) -> &tokio_util::sync::CancellationToken {
        &self.token
    }
}
